import {
  createHash,
  createPrivateKey,
  createPublicKey,
  decapsulate as opensslDecapsulate,
  encapsulate as opensslEncapsulate,
  verify as opensslVerify,
} from "node:crypto";
import { describe, expect, test } from "vitest";
import { ALGORITHMS, algorithm } from "../../src/pq/algorithms.ts";
import { oid, oidToString, parse } from "../../src/pq/der.ts";
import { fromPem, keyId, parsePkcs8, parseSpki, pkcs8Der, spkiDer } from "../../src/pq/encoding.ts";
import {
  generateKeyPair,
  loadPrivateKey,
  loadPublicKey,
  pairwiseConsistent,
  signSuccession,
  verifySuccession,
} from "../../src/pq/keys.ts";

// Node 24 links OpenSSL 3.5, which implements ML-KEM, ML-DSA and SLH-DSA with the LAMPS encodings: an
// independent implementation and parser to check ours against.
const opensslNames: Record<string, string> = {
  "ML-KEM-512": "ml-kem-512",
  "ML-KEM-768": "ml-kem-768",
  "ML-KEM-1024": "ml-kem-1024",
  "ML-DSA-44": "ml-dsa-44",
  "ML-DSA-65": "ml-dsa-65",
  "ML-DSA-87": "ml-dsa-87",
  "SLH-DSA-SHA2-128s": "slh-dsa-sha2-128s",
  "SLH-DSA-SHA2-128f": "slh-dsa-sha2-128f",
  "SLH-DSA-SHAKE-128s": "slh-dsa-shake-128s",
  "SLH-DSA-SHAKE-128f": "slh-dsa-shake-128f",
};
const counting = (n: number) => Uint8Array.from({ length: n }, (_, i) => i);

describe("DER", () => {
  test("OIDs encode as X.690 says and decode back", () => {
    // id-alg-ml-kem-768 as it appears in every ML-KEM-768 certificate.
    expect(Buffer.from(oid("2.16.840.1.101.3.4.4.2")).toString("hex")).toBe("0609608648016503040402");
    expect(oidToString(parse(oid("1.3.6.1.4.1.62253.25722")).value)).toBe("1.3.6.1.4.1.62253.25722");
  });

  test("rejects non-minimal lengths, truncation and trailing bytes", () => {
    expect(() => parse(Uint8Array.from([0x04, 0x81, 0x01, 0x00]))).toThrow(/non-minimal/);
    expect(() => parse(Uint8Array.from([0x04, 0x05, 0x00]))).toThrow(/past the end/);
    expect(() => parse(Uint8Array.from([0x04, 0x01, 0x00, 0x00]))).toThrow(/trailing/);
  });
});

describe.each(Object.keys(opensslNames))("%s keys as OpenSSL 3.5 reads them", (name) => {
  test("OpenSSL loads our PKCS#8 and SPKI, derives the same public key, and agrees on the key ID", () => {
    const pair = generateKeyPair(name);
    const priv = createPrivateKey(pair.privatePem);
    expect(priv.asymmetricKeyType).toBe(opensslNames[name]);
    const derivedSpki = createPublicKey(priv).export({ type: "spki", format: "der" });
    expect(Buffer.from(derivedSpki).equals(Buffer.from(fromPem("PUBLIC KEY", pair.publicPem)))).toBe(true);
    expect(createPublicKey(pair.publicPem).asymmetricKeyType).toBe(opensslNames[name]);
    expect(pair.keyId).toBe(createHash("sha256").update(derivedSpki).digest("base64url"));
  });

  test("a known seed gives the same key pair in both implementations", () => {
    const a = algorithm(name);
    if (a.form === "raw-secret") {
      // SLH-DSA keeps no seed form: OpenSSL must read our raw private key and answer its public half.
      const pair = generateKeyPair(name, counting);
      const spki = createPublicKey(createPrivateKey(pair.privatePem)).export({ type: "spki", format: "der" });
      expect(keyId(new Uint8Array(spki))).toBe(pair.keyId);
      return;
    }
    const seed = counting(a.impl.lengths.seed as number);
    const ours = a.impl.keygen(seed).publicKey;
    const pkcs8 = pkcs8Der({ algorithm: a, material: seed });
    const theirs = createPublicKey(createPrivateKey({ key: Buffer.from(pkcs8), format: "der", type: "pkcs8" }));
    expect(parseSpki(new Uint8Array(theirs.export({ type: "spki", format: "der" }))).publicKey).toEqual(ours);
  });

  test("what one implementation encapsulates or signs, the other decapsulates or verifies", () => {
    const pair = generateKeyPair(name);
    const ours = loadPrivateKey(pair.privatePem);
    const a = ours.algorithm;
    if (a.use === "enc") {
      const { ciphertext, sharedKey } = opensslEncapsulate(createPublicKey(pair.publicPem));
      expect(Buffer.from(a.impl.decapsulate(new Uint8Array(ciphertext), ours.secretKey))).toEqual(sharedKey);
      const { cipherText, sharedSecret } = a.impl.encapsulate(ours.publicKey);
      expect(opensslDecapsulate(createPrivateKey(pair.privatePem), Buffer.from(cipherText))).toEqual(
        Buffer.from(sharedSecret),
      );
    } else {
      const message = Buffer.from("rotate me");
      const signature = a.impl.sign(message, ours.secretKey);
      expect(opensslVerify(null, message, createPublicKey(pair.publicPem), Buffer.from(signature))).toBe(true);
      expect(
        opensslVerify(null, Buffer.from("rotate you"), createPublicKey(pair.publicPem), Buffer.from(signature)),
      ).toBe(false);
    }
  });
});

describe("X-Wing (X25519 + ML-KEM-768)", () => {
  test("round-trips through PKCS#8 and SPKI under the draft's OID, and decapsulates what is encapsulated to it", () => {
    const pair = generateKeyPair("X-Wing");
    const priv = parsePkcs8(fromPem("PRIVATE KEY", pair.privatePem));
    expect(priv.algorithm.oid).toBe("1.3.6.1.4.1.62253.25722");
    expect(priv.material).toHaveLength(32);
    const pub = loadPublicKey(pair.publicPem);
    expect(pub.publicKey).toHaveLength(1216);
    const { secretKey } = loadPrivateKey(pair.privatePem);
    const { cipherText, sharedSecret } =
      pub.algorithm.use === "enc" ? pub.algorithm.impl.encapsulate(pub.publicKey) : ({} as never);
    expect(pub.algorithm.use === "enc" && pub.algorithm.impl.decapsulate(cipherText, secretKey)).toEqual(sharedSecret);
  });
});

describe("keys", () => {
  test("every algorithm of the API generates a self-tested pair whose encodings parse back", () => {
    for (const name of ALGORITHMS) {
      const pair = generateKeyPair(name);
      expect(loadPublicKey(pair.publicPem).keyId).toBe(pair.keyId);
      expect(spkiDer(loadPrivateKey(pair.privatePem).algorithm, loadPrivateKey(pair.privatePem).publicKey)).toEqual(
        fromPem("PUBLIC KEY", pair.publicPem),
      );
    }
  });

  test("the consistency test fails a public key that is not the secret key's", () => {
    const a = algorithm("ML-DSA-44");
    const one = a.impl.keygen(counting(32));
    const other = a.impl.keygen(counting(32).reverse());
    expect(pairwiseConsistent(a, one.publicKey, one.secretKey)).toBe(true);
    expect(pairwiseConsistent(a, other.publicKey, one.secretKey)).toBe(false);
    const kem = algorithm("ML-KEM-512");
    const k1 = kem.impl.keygen(counting(64));
    const k2 = kem.impl.keygen(counting(64).reverse());
    expect(pairwiseConsistent(kem, k2.publicKey, k1.secretKey)).toBe(false);
  });

  test("a succession statement verifies under the previous key only, and not once altered", () => {
    const prev = generateKeyPair("ML-DSA-65");
    const next = generateKeyPair("ML-DSA-65");
    const s = signSuccession(prev.privatePem, prev.keyId, next, "2026-11-25T00:00:00Z");
    expect(JSON.parse(s.statement)).toMatchObject({ keyId: next.keyId, previousKeyId: prev.keyId });
    expect(verifySuccession(s, prev.publicPem)).toBe(true);
    expect(verifySuccession(s, next.publicPem)).toBe(false);
    expect(verifySuccession({ ...s, statement: s.statement.replace(next.keyId, prev.keyId) }, prev.publicPem)).toBe(
      false,
    );
  });
});
