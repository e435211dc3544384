import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";

/**
 * The key-exchange groups offered, best first: the hybrid X25519MLKEM768 (ML-KEM-768 with X25519; OpenSSL 3.5
 * in Node 24, Go 1.24 in kube-apiserver and Prometheus) keeps recorded traffic safe from a future quantum computer
 * while X25519 still guards it if ML-KEM were broken; the classical groups follow for peers without it. Said
 * explicitly so that a Node or OpenSSL whose defaults change cannot drop the hybrid group silently.
 */
export const PREFERRED_GROUPS = "X25519MLKEM768:X25519:prime256v1:secp384r1";

/** The group a client-side TLS socket's handshake agreed on ("X25519MLKEM768"), or "none" (plain TCP, TLS 1.2 RSA). */
export function negotiatedGroup(socket: Socket): string {
  const info = (socket as TLSSocket).getEphemeralKeyInfo?.();
  return (info && "name" in info && info.name) || "none";
}
