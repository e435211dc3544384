import { createRequire } from "node:module";
import type * as Hybrid from "@noble/post-quantum/hybrid.js";
import type * as MlDsa from "@noble/post-quantum/ml-dsa.js";
import type * as MlKem from "@noble/post-quantum/ml-kem.js";
import type * as SlhDsa from "@noble/post-quantum/slh-dsa.js";

/**
 * The implementations are loaded at their first use, synchronously (require of an ES module): the operator's main
 * thread reads only names, uses and OIDs (keys are generated in worker threads), and loading them there cost about
 * 14 MB of RSS.
 */
const require = createRequire(import.meta.url);
function lazy<T>(specifier: string): () => T {
  let loaded: T | undefined;
  return () => (loaded ??= require(specifier) as T);
}
const hybrid = lazy<typeof Hybrid>("@noble/post-quantum/hybrid.js");
const mlDsa = lazy<typeof MlDsa>("@noble/post-quantum/ml-dsa.js");
const mlKem = lazy<typeof MlKem>("@noble/post-quantum/ml-kem.js");
const slhDsa = lazy<typeof SlhDsa>("@noble/post-quantum/slh-dsa.js");

interface KeyGen {
  keygen(seed: Uint8Array): { publicKey: Uint8Array; secretKey: Uint8Array };
  lengths: { seed?: number };
}
interface Kem extends KeyGen {
  encapsulate(publicKey: Uint8Array): { cipherText: Uint8Array; sharedSecret: Uint8Array };
  decapsulate(cipherText: Uint8Array, secretKey: Uint8Array): Uint8Array;
}
interface Signer extends KeyGen {
  sign(message: Uint8Array, secretKey: Uint8Array): Uint8Array;
  verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean;
}

/**
 * How the private key is kept in PKCS#8, per the IETF LAMPS encodings: ML-KEM and ML-DSA as their seed in the
 * `seed [0]` choice, SLH-DSA as its raw private key, X-Wing as its 32-byte seed.
 */
export type PrivateKeyForm = "seed-choice" | "raw-secret" | "raw-seed";

export type PqAlgorithm =
  | { name: string; family: "ML-KEM" | "X-Wing"; use: "enc"; oid: string; form: PrivateKeyForm; impl: Kem }
  | { name: string; family: "ML-DSA" | "SLH-DSA"; use: "sig"; oid: string; form: PrivateKeyForm; impl: Signer };

const nist = (arc: string) => `2.16.840.1.101.3.4.${arc}`;

const table: PqAlgorithm[] = [
  {
    name: "ML-KEM-512",
    family: "ML-KEM",
    use: "enc",
    oid: nist("4.1"),
    form: "seed-choice",
    get impl() {
      return mlKem().ml_kem512;
    },
  },
  {
    name: "ML-KEM-768",
    family: "ML-KEM",
    use: "enc",
    oid: nist("4.2"),
    form: "seed-choice",
    get impl() {
      return mlKem().ml_kem768;
    },
  },
  {
    name: "ML-KEM-1024",
    family: "ML-KEM",
    use: "enc",
    oid: nist("4.3"),
    form: "seed-choice",
    get impl() {
      return mlKem().ml_kem1024;
    },
  },
  {
    name: "ML-DSA-44",
    family: "ML-DSA",
    use: "sig",
    oid: nist("3.17"),
    form: "seed-choice",
    get impl() {
      return mlDsa().ml_dsa44;
    },
  },
  {
    name: "ML-DSA-65",
    family: "ML-DSA",
    use: "sig",
    oid: nist("3.18"),
    form: "seed-choice",
    get impl() {
      return mlDsa().ml_dsa65;
    },
  },
  {
    name: "ML-DSA-87",
    family: "ML-DSA",
    use: "sig",
    oid: nist("3.19"),
    form: "seed-choice",
    get impl() {
      return mlDsa().ml_dsa87;
    },
  },
  {
    name: "SLH-DSA-SHA2-128s",
    family: "SLH-DSA",
    use: "sig",
    oid: nist("3.20"),
    form: "raw-secret",
    get impl() {
      return slhDsa().slh_dsa_sha2_128s;
    },
  },
  {
    name: "SLH-DSA-SHA2-128f",
    family: "SLH-DSA",
    use: "sig",
    oid: nist("3.21"),
    form: "raw-secret",
    get impl() {
      return slhDsa().slh_dsa_sha2_128f;
    },
  },
  {
    name: "SLH-DSA-SHAKE-128s",
    family: "SLH-DSA",
    use: "sig",
    oid: nist("3.26"),
    form: "raw-secret",
    get impl() {
      return slhDsa().slh_dsa_shake_128s;
    },
  },
  {
    name: "SLH-DSA-SHAKE-128f",
    family: "SLH-DSA",
    use: "sig",
    oid: nist("3.27"),
    form: "raw-secret",
    get impl() {
      return slhDsa().slh_dsa_shake_128f;
    },
  },
  // X25519 + ML-KEM-768 combined as X-Wing (draft-connolly-cfrg-xwing-kem), with the draft's OID.
  {
    name: "X-Wing",
    family: "X-Wing",
    use: "enc",
    oid: "1.3.6.1.4.1.62253.25722",
    form: "raw-seed",
    get impl() {
      return hybrid().ml_kem768_x25519;
    },
  },
];

export const ALGORITHMS: readonly string[] = table.map((a) => a.name);

export function algorithm(name: string): PqAlgorithm {
  const a = table.find((x) => x.name === name);
  if (!a) throw new Error(`unknown algorithm ${name}; expected one of ${ALGORITHMS.join(", ")}`);
  return a;
}

export function algorithmByOid(oid: string): PqAlgorithm {
  const a = table.find((x) => x.oid === oid);
  if (!a) throw new Error(`no supported algorithm has OID ${oid}`);
  return a;
}

/** Bytes of randomness keygen takes. */
export function seedLength(a: PqAlgorithm): number {
  const n = a.impl.lengths.seed;
  if (!n) throw new Error(`${a.name} takes no seed`);
  return n;
}
