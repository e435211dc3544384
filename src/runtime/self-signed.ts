/**
 * A self-signed serving certificate made in-process, as controller-runtime's metrics server makes one when it is
 * given no certificate directory (client-go's certutil.GenerateSelfSignedCertKey): node:crypto makes keys but not
 * certificates, and the image has no openssl. ECDSA P-256, X.509 v3, the host names as subjectAltNames, serverAuth.
 * A minimal DER writer, enough for this one structure (RFC 5280 section 4.1).
 */
import { X509Certificate, generateKeyPairSync, randomBytes, sign } from "node:crypto";
import { isIP } from "node:net";

const length = (n: number) =>
  n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
const tlv = (tag: number, ...parts: Buffer[]) => {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([tag]), length(body.length), body]);
};
const sequence = (...parts: Buffer[]) => tlv(0x30, ...parts);
const set = (...parts: Buffer[]) => tlv(0x31, ...parts);
const explicit = (n: number, ...parts: Buffer[]) => tlv(0xa0 + n, ...parts);
const octets = (b: Buffer) => tlv(0x04, b);
const bits = (b: Buffer) => tlv(0x03, Buffer.from([0]), b);
const integer = (b: Buffer) => tlv(0x02, (b[0] as number) & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b);
function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split(".").map(Number) as [number, number, ...number[]];
  const bytes = [40 * a + b];
  for (const n of rest) {
    const base128 = [n & 0x7f];
    for (let v = n >> 7; v > 0; v >>= 7) base128.unshift((v & 0x7f) | 0x80);
    bytes.push(...base128);
  }
  return tlv(0x06, Buffer.from(bytes));
}
/** UTCTime until 2049, GeneralizedTime after (RFC 5280 4.1.2.5). */
function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, "").slice(0, 14) + "Z";
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(iso.slice(2))) : tlv(0x18, Buffer.from(iso));
}
function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split(".").map(Number));
  const [head = "", tail = ""] = ip.split("::");
  const groups = (s: string) => (s ? s.split(":") : []);
  const fill = 8 - groups(head).length - groups(tail).length;
  const all = [...groups(head), ...Array<string>(ip.includes("::") ? fill : 0).fill("0"), ...groups(tail)];
  return Buffer.concat(all.map((g) => Buffer.from([parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff])));
}

const ECDSA_WITH_SHA256 = sequence(oid("1.2.840.10045.4.3.2"));

/** A certificate (PEM) for `hosts` (DNS names or IP addresses), valid for `days`, and its private key (PKCS#8 PEM). */
export function selfSignedCertificate(hosts: string[], days = 365): { cert: string; key: string } {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const name = sequence(set(sequence(oid("2.5.4.3"), tlv(0x0c, Buffer.from(hosts[0] ?? "nextgen-operator")))));
  const notBefore = new Date(Date.now() - 60_000); // a minute of slack for clocks behind ours
  const notAfter = new Date(notBefore.getTime() + days * 86_400_000);
  const serial = randomBytes(16);
  // Positive, and with a first byte that is not zero: DER wants the shortest encoding, and OpenSSL rejects a serial
  // whose leading zero byte is padding (about one certificate in 256 otherwise failed to parse).
  serial[0] = ((serial[0] as number) & 0x7f) | 0x40;
  const altNames = hosts.map((h) => (isIP(h) ? tlv(0x87, ipBytes(h)) : tlv(0x82, Buffer.from(h))));
  const extension = (id: string, critical: boolean, value: Buffer) =>
    sequence(oid(id), ...(critical ? [tlv(0x01, Buffer.from([0xff]))] : []), octets(value));
  const tbs = sequence(
    explicit(0, integer(Buffer.from([2]))),
    integer(serial),
    ECDSA_WITH_SHA256,
    name,
    sequence(time(notBefore), time(notAfter)),
    name,
    publicKey.export({ type: "spki", format: "der" }),
    explicit(
      3,
      sequence(
        extension("2.5.29.15", true, bits(Buffer.from([0x80]))), // keyUsage: digitalSignature
        extension("2.5.29.37", false, sequence(oid("1.3.6.1.5.5.7.3.1"))), // extKeyUsage: serverAuth
        extension("2.5.29.19", true, sequence()), // basicConstraints: not a CA
        extension("2.5.29.17", false, sequence(...altNames)), // subjectAltName
      ),
    ),
  );
  const der = sequence(tbs, ECDSA_WITH_SHA256, bits(sign("sha256", tbs, privateKey)));
  const cert = new X509Certificate(der).toString();
  return { cert, key: privateKey.export({ type: "pkcs8", format: "pem" }) as string };
}
