import { randomBytes, timingSafeEqual } from "node:crypto";
import { type PqAlgorithm, algorithm, seedLength } from "./algorithms.ts";
import { fromPem, keyId, parsePkcs8, parseSpki, pkcs8Der, spkiDer, toPem } from "./encoding.ts";

/** A generated key pair, encoded for the Secret. privatePem is key material: never log, emit or report it. */
export interface EncodedKeyPair {
  algorithm: string;
  keyId: string;
  privatePem: string;
  publicPem: string;
}

/** A statement, signed by the previous key of a signature key set, that the new key succeeds it. */
export interface SuccessionStatement {
  statement: string;
  signature: string;
  signerKeyId: string;
}

export class KeyGenerationError extends Error {
  override name = "KeyGenerationError";
}

/**
 * Generates a key pair and proves it before anyone sees it: the pair must pass a pairwise consistency test
 * (encapsulate/decapsulate, or sign/verify), and the encoded PKCS#8 must decode back to the same material.
 */
export function generateKeyPair(name: string, random: (n: number) => Uint8Array = randomBytes): EncodedKeyPair {
  const a = algorithm(name);
  const seed = random(seedLength(a));
  const { publicKey, secretKey } = a.impl.keygen(seed);
  const material = a.form === "raw-secret" ? secretKey : seed;
  if (!pairwiseConsistent(a, publicKey, secretKey)) {
    throw new KeyGenerationError(`${name} key pair failed its pairwise consistency test`);
  }
  const spki = spkiDer(a, publicKey);
  const pkcs8 = pkcs8Der({ algorithm: a, material });
  // The material decodes back bit for bit, so the stored key derives exactly the pair just tested.
  const decoded = parsePkcs8(pkcs8);
  if (decoded.algorithm !== a || !equal(decoded.material, material)) {
    throw new KeyGenerationError(`${name} private key does not decode back to what was encoded`);
  }
  return {
    algorithm: a.name,
    keyId: keyId(spki),
    privatePem: toPem("PRIVATE KEY", pkcs8),
    publicPem: toPem("PUBLIC KEY", spki),
  };
}

/** The pair a PKCS#8 PEM holds, re-derived from its seed (or read from its raw key). */
export function loadPrivateKey(pem: string): { algorithm: PqAlgorithm; publicKey: Uint8Array; secretKey: Uint8Array } {
  const { algorithm: a, material } = parsePkcs8(fromPem("PRIVATE KEY", pem));
  return { algorithm: a, ...derive(a, material) };
}

export function loadPublicKey(pem: string): { algorithm: PqAlgorithm; publicKey: Uint8Array; keyId: string } {
  const der = fromPem("PUBLIC KEY", pem);
  return { ...parseSpki(der), keyId: keyId(der) };
}

function derive(a: PqAlgorithm, material: Uint8Array): { publicKey: Uint8Array; secretKey: Uint8Array } {
  if (a.form !== "raw-secret") return a.impl.keygen(material);
  // An SLH-DSA private key is SK.seed ‖ SK.prf ‖ PK.seed ‖ PK.root: the public key is its second half.
  return { secretKey: material, publicKey: material.subarray(material.length / 2) };
}

export function pairwiseConsistent(a: PqAlgorithm, publicKey: Uint8Array, secretKey: Uint8Array): boolean {
  try {
    if (a.use === "enc") {
      const { cipherText, sharedSecret } = a.impl.encapsulate(publicKey);
      return equal(a.impl.decapsulate(cipherText, secretKey), sharedSecret);
    }
    const message = randomBytes(32);
    return a.impl.verify(a.impl.sign(message, secretKey), message, publicKey);
  } catch {
    return false;
  }
}

/** Signs, with the previous key, the statement that next succeeds it (signature key sets only). */
export function signSuccession(
  previousPrivatePem: string,
  previousKeyId: string,
  next: EncodedKeyPair,
  createdAt: string,
): SuccessionStatement {
  const prev = loadPrivateKey(previousPrivatePem);
  if (prev.algorithm.use !== "sig") throw new Error(`${prev.algorithm.name} keys do not sign`);
  const statement = JSON.stringify({
    type: "nextgen.itechsmart.io/key-succession/v1",
    keyId: next.keyId,
    algorithm: next.algorithm,
    previousKeyId,
    createdAt,
  });
  const signature = prev.algorithm.impl.sign(new TextEncoder().encode(statement), prev.secretKey);
  return { statement, signature: Buffer.from(signature).toString("base64url"), signerKeyId: previousKeyId };
}

/** Whether a succession statement verifies under the signer's public key (what a consumer does). */
export function verifySuccession(s: SuccessionStatement, signerPublicPem: string): boolean {
  const signer = loadPublicKey(signerPublicPem);
  if (signer.algorithm.use !== "sig" || signer.keyId !== s.signerKeyId) return false;
  return signer.algorithm.impl.verify(
    Buffer.from(s.signature, "base64url"),
    new TextEncoder().encode(s.statement),
    signer.publicKey,
  );
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
