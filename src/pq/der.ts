/**
 * The little DER that key containers need: SEQUENCE, INTEGER, OBJECT IDENTIFIER, OCTET STRING, BIT STRING and
 * context-specific primitive tags, encoded and parsed strictly (definite lengths, minimal length octets).
 */
export const TAG = { INTEGER: 0x02, BIT_STRING: 0x03, OCTET_STRING: 0x04, OID: 0x06, SEQUENCE: 0x30 } as const;

export interface DerNode {
  tag: number;
  /** The content octets. */
  value: Uint8Array;
}

function encodeLength(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

export function tlv(tag: number, ...contents: Uint8Array[]): Uint8Array {
  const value = concat(...contents);
  return concat(Uint8Array.of(tag), encodeLength(value.length), value);
}

export const sequence = (...items: Uint8Array[]) => tlv(TAG.SEQUENCE, ...items);
export const octetString = (b: Uint8Array) => tlv(TAG.OCTET_STRING, b);
export const bitString = (b: Uint8Array) => tlv(TAG.BIT_STRING, Uint8Array.of(0), b);
export const smallInteger = (n: number) => tlv(TAG.INTEGER, Uint8Array.of(n));
/** A context-specific primitive [n] IMPLICIT tag around raw content. */
export const contextPrimitive = (n: number, b: Uint8Array) => tlv(0x80 | n, b);

export function oid(dotted: string): Uint8Array {
  const arcs = dotted.split(".").map((a) => BigInt(a));
  if (arcs.length < 2) throw new Error(`invalid OID ${dotted}`);
  const out: number[] = [];
  const first = (arcs[0] as bigint) * 40n + (arcs[1] as bigint);
  for (const arc of [first, ...arcs.slice(2)]) {
    const chunk: number[] = [];
    let v = arc;
    do {
      chunk.unshift(Number(v & 0x7fn));
      v >>= 7n;
    } while (v > 0n);
    for (let i = 0; i < chunk.length - 1; i++) chunk[i] = (chunk[i] as number) | 0x80;
    out.push(...chunk);
  }
  return tlv(TAG.OID, Uint8Array.from(out));
}

export function oidToString(content: Uint8Array): string {
  const arcs: bigint[] = [];
  let v = 0n;
  for (const b of content) {
    v = (v << 7n) | BigInt(b & 0x7f);
    if (!(b & 0x80)) {
      arcs.push(v);
      v = 0n;
    }
  }
  const first = arcs.shift() ?? 0n;
  const a = first < 80n ? first / 40n : 2n;
  return [a, first - a * 40n, ...arcs].join(".");
}

/** Parses one TLV at offset, answering it and the offset after it. */
export function readNode(buf: Uint8Array, offset = 0): { node: DerNode; next: number } {
  const tag = buf[offset];
  let lenByte = buf[offset + 1];
  if (tag === undefined || lenByte === undefined) throw new Error("DER: truncated");
  let pos = offset + 2;
  let length = lenByte;
  if (lenByte & 0x80) {
    const n = lenByte & 0x7f;
    if (n === 0 || n > 4) throw new Error("DER: unsupported length");
    length = 0;
    for (let i = 0; i < n; i++) {
      lenByte = buf[pos++];
      if (lenByte === undefined) throw new Error("DER: truncated length");
      length = length * 256 + lenByte;
    }
    if (length < 0x80 || (n > 1 && length < 256 ** (n - 1))) throw new Error("DER: non-minimal length");
  }
  if (pos + length > buf.length) throw new Error("DER: content runs past the end");
  return { node: { tag, value: buf.subarray(pos, pos + length) }, next: pos + length };
}

/** The children of a constructed node, which must fill it exactly. */
export function children(node: DerNode): DerNode[] {
  const out: DerNode[] = [];
  for (let pos = 0; pos < node.value.length;) {
    const { node: child, next } = readNode(node.value, pos);
    out.push(child);
    pos = next;
  }
  return out;
}

/** Parses a whole buffer as exactly one node. */
export function parse(buf: Uint8Array): DerNode {
  const { node, next } = readNode(buf);
  if (next !== buf.length) throw new Error("DER: trailing bytes");
  return node;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
