import { X509Certificate, createPrivateKey } from "node:crypto";
import { expect, test } from "vitest";
import { selfSignedCertificate } from "../../src/runtime/self-signed.ts";

test("a self-signed serving certificate: signed by its own key, for its hosts, a server's, valid from now", () => {
  const { cert, key } = selfSignedCertificate(["nextgen-operator-metrics.ns.svc", "localhost", "127.0.0.1", "::1"], 30);
  const x509 = new X509Certificate(cert);
  expect(x509.verify(x509.publicKey)).toBe(true);
  expect(x509.checkPrivateKey(createPrivateKey(key))).toBe(true);
  expect(x509.subject).toBe("CN=nextgen-operator-metrics.ns.svc");
  expect(x509.subjectAltName).toBe(
    "DNS:nextgen-operator-metrics.ns.svc, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1",
  );
  expect(x509.checkHost("localhost")).toBe("localhost");
  expect(x509.checkIP("127.0.0.1")).toBe("127.0.0.1");
  expect(x509.keyUsage).toEqual(["1.3.6.1.5.5.7.3.1"]);
  expect(x509.ca).toBe(false);
  const from = Date.parse(x509.validFrom);
  expect(from).toBeLessThanOrEqual(Date.now());
  expect(Date.parse(x509.validTo) - from).toBe(30 * 86_400_000);
  expect(x509.serialNumber).not.toBe(new X509Certificate(selfSignedCertificate(["localhost"]).cert).serialNumber);
});
