import { createHash } from "node:crypto";
import type { PqAlgorithm } from "./algorithms.ts";
import { algorithmByOid } from "./algorithms.ts";
import {
  TAG,
  bitString,
  children,
  contextPrimitive,
  octetString,
  oid,
  oidToString,
  parse,
  sequence,
  smallInteger,
} from "./der.ts";

/** A private key as the operator keeps it: the algorithm and the material PKCS#8 carries (seed or raw key). */
export interface PrivateKeyMaterial {
  algorithm: PqAlgorithm;
  /** The seed (seed-choice, raw-seed forms) or the raw secret key (raw-secret form). */
  material: Uint8Array;
}

const algorithmIdentifier = (a: PqAlgorithm) => sequence(oid(a.oid));

/** SubjectPublicKeyInfo DER: the algorithm's OID with absent parameters, and the raw public key. */
export function spkiDer(a: PqAlgorithm, publicKey: Uint8Array): Uint8Array {
  return sequence(algorithmIdentifier(a), bitString(publicKey));
}

/** PKCS#8 (OneAsymmetricKey v1) DER in the algorithm's LAMPS private-key form. */
export function pkcs8Der(k: PrivateKeyMaterial): Uint8Array {
  const privateKey = k.algorithm.form === "seed-choice" ? contextPrimitive(0, k.material) : k.material;
  return sequence(smallInteger(0), algorithmIdentifier(k.algorithm), octetString(privateKey));
}

export function parseSpki(der: Uint8Array): { algorithm: PqAlgorithm; publicKey: Uint8Array } {
  const [algId, key] = expectChildren(parse(der), 2, "SubjectPublicKeyInfo");
  const algorithm = algorithmOf(algId);
  if (key?.tag !== TAG.BIT_STRING || key.value[0] !== 0) throw new Error("SubjectPublicKeyInfo: bad BIT STRING");
  return { algorithm, publicKey: key.value.subarray(1) };
}

export function parsePkcs8(der: Uint8Array): PrivateKeyMaterial {
  const [version, algId, privateKey] = expectChildren(parse(der), 3, "PKCS#8");
  if (version?.tag !== TAG.INTEGER || version.value.length !== 1 || version.value[0] !== 0) {
    throw new Error("PKCS#8: only version 0 (v1) is read");
  }
  const algorithm = algorithmOf(algId);
  if (privateKey?.tag !== TAG.OCTET_STRING) throw new Error("PKCS#8: privateKey is not an OCTET STRING");
  if (algorithm.form !== "seed-choice") return { algorithm, material: privateKey.value };
  const choice = parse(privateKey.value);
  if (choice.tag !== 0x80) throw new Error(`PKCS#8: ${algorithm.name} private key is not in the seed form`);
  return { algorithm, material: choice.value };
}

function algorithmOf(node: { tag: number; value: Uint8Array } | undefined): PqAlgorithm {
  if (!node || node.tag !== TAG.SEQUENCE) throw new Error("AlgorithmIdentifier: not a SEQUENCE");
  const [id, ...params] = children(node);
  if (id?.tag !== TAG.OID || params.length) throw new Error("AlgorithmIdentifier: expected an OID and no parameters");
  return algorithmByOid(oidToString(id.value));
}

function expectChildren(node: { tag: number; value: Uint8Array }, n: number, what: string) {
  if (node.tag !== TAG.SEQUENCE) throw new Error(`${what}: not a SEQUENCE`);
  const c = children(node);
  if (c.length !== n) throw new Error(`${what}: expected ${n} fields, found ${c.length}`);
  return c;
}

export function toPem(label: "PRIVATE KEY" | "PUBLIC KEY", der: Uint8Array): string {
  const b64 = Buffer.from(der).toString("base64").replace(/.{64}/g, "$&\n").replace(/\n$/, "");
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

export function fromPem(label: "PRIVATE KEY" | "PUBLIC KEY", pem: string): Uint8Array {
  const m = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+)-----END ${label}-----`).exec(pem);
  if (!m) throw new Error(`no ${label} PEM block`);
  return new Uint8Array(Buffer.from((m[1] as string).replace(/\s+/g, ""), "base64"));
}

/** The key ID: base64url (unpadded) SHA-256 of the SubjectPublicKeyInfo DER, so anyone can recompute it. */
export function keyId(spki: Uint8Array): string {
  return createHash("sha256").update(spki).digest("base64url");
}
