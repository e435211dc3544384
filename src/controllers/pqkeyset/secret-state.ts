import type { SuccessionStatement } from "../../pq/keys.ts";
import type { KubeObject } from "../../runtime/objects.ts";

/** Bookkeeping the Secret carries, so that it alone says what has happened (it is the source of truth). */
export const ALGORITHM_ANNOTATION = "nextgen.itechsmart.io/algorithm";
export const REVISION_ANNOTATION = "nextgen.itechsmart.io/revision";
export const ROTATE_HANDLED_ANNOTATION = "nextgen.itechsmart.io/rotate-handled";
export const KEYSET_LABEL = "nextgen.itechsmart.io/pqkeyset";

export type Secret = KubeObject & { type?: string; data?: Record<string, string> };
export type ConfigMap = KubeObject & { data?: Record<string, string> };

export interface StoredKey {
  keyId: string;
  algorithm: string;
  createdAt: string;
  privatePem: string;
  publicPem: string;
}

/** What a key set's Secret holds: keys current first, and succession statements about them. */
export interface KeyState {
  algorithm: string;
  revision: number;
  rotateHandled: string;
  keys: StoredKey[];
  succession: SuccessionStatement[];
}

const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");
const unb64 = (s: string | undefined) => (s === undefined ? undefined : Buffer.from(s, "base64").toString("utf8"));

/**
 * The Secret's data for a state: the current pair under fixed names (current.key, current.pub, current.kid),
 * every retained pair under its key ID, the key list and the succession statements as JSON.
 */
export function secretData(state: KeyState): Record<string, string> {
  const [current, ...retained] = state.keys;
  if (!current) throw new Error("a key state has at least one key");
  const data: Record<string, string> = {
    "current.key": b64(current.privatePem),
    "current.pub": b64(current.publicPem),
    "current.kid": b64(current.keyId),
    "keys.json": b64(
      JSON.stringify(state.keys.map(({ keyId, algorithm, createdAt }) => ({ keyId, algorithm, createdAt }))),
    ),
  };
  for (const k of retained) {
    data[`${k.keyId}.key`] = b64(k.privatePem);
    data[`${k.keyId}.pub`] = b64(k.publicPem);
  }
  if (state.succession.length) data["succession.json"] = b64(JSON.stringify(state.succession));
  return data;
}

export function secretAnnotations(state: KeyState): Record<string, string> {
  return {
    [ALGORITHM_ANNOTATION]: state.algorithm,
    [REVISION_ANNOTATION]: String(state.revision),
    [ROTATE_HANDLED_ANNOTATION]: state.rotateHandled,
  };
}

/** Reads a key set's Secret back; throws with what is wrong when it is not one this operator wrote. */
export function readKeyState(secret: Secret): KeyState {
  const data = secret.data ?? {};
  const ann = secret.metadata.annotations ?? {};
  const list = JSON.parse(unb64(data["keys.json"]) ?? "null") as Array<
    Omit<StoredKey, "privatePem" | "publicPem">
  > | null;
  if (!Array.isArray(list) || list.length === 0) throw new Error("keys.json is missing or empty");
  const keys = list.map((k, i) => {
    const privatePem = unb64(i === 0 ? data["current.key"] : data[`${k.keyId}.key`]);
    const publicPem = unb64(i === 0 ? data["current.pub"] : data[`${k.keyId}.pub`]);
    if (!privatePem || !publicPem) throw new Error(`the key pair of ${k.keyId} is missing`);
    return { ...k, privatePem, publicPem };
  });
  if (unb64(data["current.kid"]) !== keys[0]?.keyId)
    throw new Error("current.kid does not name the first key of keys.json");
  const revision = Number(ann[REVISION_ANNOTATION]);
  return {
    algorithm: ann[ALGORITHM_ANNOTATION] ?? (keys[0] as StoredKey).algorithm,
    revision: Number.isInteger(revision) ? revision : keys.length,
    rotateHandled: ann[ROTATE_HANDLED_ANNOTATION] ?? "",
    keys,
    succession: JSON.parse(unb64(data["succession.json"]) ?? "[]") as SuccessionStatement[],
  };
}
