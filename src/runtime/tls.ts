import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";

/**
 * The key-exchange groups offered, best first: the hybrid X25519MLKEM768 (ML-KEM-768 with X25519; OpenSSL 3.5
 * in Node 24, Go 1.24 in kube-apiserver and Prometheus) keeps recorded traffic safe from a future quantum computer
 * while X25519 still guards it if ML-KEM were broken; the classical groups follow for peers without it. Said
 * explicitly so that a Node or OpenSSL whose defaults change cannot drop the hybrid group silently.
 */
export const PREFERRED_GROUPS = "X25519MLKEM768:X25519:prime256v1:secp384r1";

/** IANA TLS Supported Groups code points, named as OpenSSL (and so Node's client side) names them. */
const GROUP_NAMES: Record<number, string> = {
  0x17: "prime256v1",
  0x18: "secp384r1",
  0x19: "secp521r1",
  0x1d: "X25519",
  0x1e: "X448",
  0x11eb: "SecP256r1MLKEM768",
  0x11ec: "X25519MLKEM768",
  0x11ed: "SecP384r1MLKEM1024",
};

/**
 * The group a TLS socket's handshake agreed on ("X25519MLKEM768"), or "none" (no ephemeral key exchange). A client
 * socket says it (getEphemeralKeyInfo); a server socket does not, so it is read from the session OpenSSL keeps:
 * its DER (OpenSSL's SSL_SESSION_ASN1) carries the group as the INTEGER in context tag [19], kex_group.
 */
export function negotiatedGroup(socket: Socket): string {
  const tls = socket as TLSSocket;
  const info = tls.getEphemeralKeyInfo?.();
  if (info) return ("name" in info && info.name) || "none";
  const id = sessionGroup(tls.getSession?.());
  return id === undefined ? "none" : (GROUP_NAMES[id] ?? `0x${id.toString(16)}`);
}

/** The kex_group of a DER SSL_SESSION: the top-level SEQUENCE's element [19] (0xb3), an INTEGER. */
export function sessionGroup(der: Buffer | undefined): number | undefined {
  if (!der || der[0] !== 0x30) return undefined;
  const header = (at: number): { length: number; body: number } | undefined => {
    const first = der[at + 1];
    if (first === undefined) return undefined;
    if (first < 0x80) return { length: first, body: at + 2 };
    const n = first & 0x7f;
    let length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + (der[at + 2 + i] ?? 0);
    return { length, body: at + 2 + n };
  };
  const outer = header(0);
  if (!outer) return undefined;
  for (let at = outer.body; at < outer.body + outer.length;) {
    const h = header(at);
    if (!h) return undefined;
    if (der[at] === 0xb3) {
      const int = header(h.body);
      if (!int || der[h.body] !== 0x02) return undefined;
      let value = 0;
      for (let i = 0; i < int.length; i++) value = value * 256 + (der[int.body + i] ?? 0);
      return value;
    }
    at = h.body + h.length;
  }
  return undefined;
}
