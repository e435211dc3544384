import { algorithm } from "../../pq/algorithms.ts";
import { loadPublicKey } from "../../pq/keys.ts";
import type { KeyState } from "./secret-state.ts";

/**
 * The public ConfigMap's data: a PEM bundle (current first), a JSON key set (key ID, algorithm, use, creation
 * time and the raw public key as a JOSE "AKP" key), and, for signature keys, the succession statements.
 */
export function publicData(state: KeyState): Record<string, string> {
  const keys = state.keys.map((k, i) => ({
    kid: k.keyId,
    kty: "AKP",
    alg: k.algorithm,
    use: algorithm(k.algorithm).use,
    pub: Buffer.from(loadPublicKey(k.publicPem).publicKey).toString("base64url"),
    createdAt: k.createdAt,
    state: i === 0 ? "Active" : "Retained",
  }));
  const data: Record<string, string> = {
    "public.pem": state.keys.map((k) => k.publicPem).join(""),
    "keys.json": JSON.stringify({ keys }, null, 2),
  };
  if (state.succession.length) data["succession.json"] = JSON.stringify(state.succession, null, 2);
  return data;
}
