import { expect, test } from "vitest";
import { sessionGroup } from "../../src/runtime/tls.ts";

// Server-side sessions of Node 24 (OpenSSL 3.5) after TLS 1.3 handshakes with a client offering one group each.
const session = (tail: string) =>
  Buffer.from(
    `30${tail.length === 12 ? "47" : "46"}020101020203040402130204000400a10602046b1709ffa20402021c20a4220420` +
      "3764636433633334663031633563633265333766333466396231356561613832" +
      tail,
    "hex",
  );

test("the key-exchange group is read from a session's kex_group, [19]", () => {
  expect(sessionGroup(session("b304020211ec"))).toBe(0x11ec);
  expect(sessionGroup(session("b30302011d"))).toBe(0x1d);
  expect(sessionGroup(session("b303020117"))).toBe(0x17);
  expect(sessionGroup(Buffer.from("3003020101", "hex"))).toBeUndefined();
  expect(sessionGroup(undefined)).toBeUndefined();
});
