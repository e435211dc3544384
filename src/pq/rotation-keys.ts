import { type EncodedKeyPair, type SuccessionStatement, generateKeyPair, signSuccession } from "./keys.ts";

export interface KeygenRequest {
  algorithm: string;
  createdAt: string;
  /** The signature key being superseded (same algorithm): it signs the statement that the new key succeeds it. */
  signedBy?: { keyId: string; privatePem: string };
}

export interface KeygenResult {
  pair: EncodedKeyPair;
  succession?: SuccessionStatement;
  seconds: number;
}

/** One rotation's key material: a self-tested pair and, when asked, the previous key's statement on it. */
export function generateRotation(req: KeygenRequest): KeygenResult {
  const started = performance.now();
  const pair = generateKeyPair(req.algorithm);
  const succession = req.signedBy
    ? signSuccession(req.signedBy.privatePem, req.signedBy.keyId, pair, req.createdAt)
    : undefined;
  return { pair, succession, seconds: (performance.now() - started) / 1000 };
}
