// Fixed-layout binary codecs for BPF map keys and values.
// A codec describes a C struct field by field with explicit offsets, so the
// layout is checkable against the BTF clang emits (see test/unit/abi.test.ts).

export interface Codec<T> {
  /** Size in bytes of the encoded C struct, padding included. */
  readonly size: number;
  encode(value: T, buf: Buffer, offset?: number): void;
  decode(buf: Buffer, offset?: number): T;
}

export type FieldKind =
  | 'u8'
  | 'u16'
  | 'u32'
  | 'u64'
  | 'be16'
  | 'be32'
  | 'ipv4' // u32 in network order, exposed as dotted quad
  | 'mac' // 6 bytes, exposed as aa:bb:cc:dd:ee:ff
  | 'pad';

export interface FieldSpec {
  readonly name: string;
  readonly kind: FieldKind;
  readonly offset: number;
  /** Byte length; only for 'pad'. */
  readonly length?: number;
}

type FieldValue<K extends FieldKind> = K extends 'u64' ? bigint : K extends 'ipv4' | 'mac' ? string : number;

export type StructOf<F extends readonly FieldSpec[]> = {
  [E in F[number] as E['kind'] extends 'pad' ? never : E['name']]: FieldValue<E['kind']>;
};

const KIND_SIZE: Record<Exclude<FieldKind, 'pad'>, number> = {
  u8: 1,
  u16: 2,
  u32: 4,
  u64: 8,
  be16: 2,
  be32: 4,
  ipv4: 4,
  mac: 6,
};

export function fieldSize(f: FieldSpec): number {
  return f.kind === 'pad' ? (f.length ?? 0) : KIND_SIZE[f.kind];
}

/** The decoded value type of a codec: `CodecValue<typeof myStruct>`. */
export type CodecValue<C> = C extends Codec<infer T> ? T : never;

export interface StructCodec<T, F extends readonly FieldSpec[] = readonly FieldSpec[]> extends Codec<T> {
  readonly name: string;
  readonly fields: F;
}

/** A codec for a C struct whose fields are given with their offsets. */
export function struct<const F extends readonly FieldSpec[]>(
  name: string,
  size: number,
  fields: F,
): StructCodec<StructOf<F>, F> {
  let end = 0;
  for (const f of fields) {
    if (f.offset < end) throw new Error(`codec ${name}: field ${f.name} overlaps the previous field`);
    end = f.offset + fieldSize(f);
  }
  if (end > size) throw new Error(`codec ${name}: fields end at ${end}, beyond size ${size}`);
  const live = fields.filter((f) => f.kind !== 'pad');
  // Accessors are built once per struct so encode/decode are straight loops
  // over prepared closures: map operations sit on hot paths (reconcile of
  // thousands of nodes, the CNI plugin's start-up budget).
  const writers = live.map((f) => fieldWriter(f, name));
  const readers = live.map((f) => fieldReader(f));
  const names = live.map((f) => f.name);
  const padded = live.reduce((n, f) => n + fieldSize(f), 0) !== size;
  return {
    name,
    size,
    fields,
    encode(value: StructOf<F>, buf: Buffer, offset = 0): void {
      if (padded) buf.fill(0, offset, offset + size);
      const v = value as Record<string, unknown>;
      for (let i = 0; i < writers.length; i++) writers[i]!(buf, offset, v[names[i]!]);
    },
    decode(buf: Buffer, offset = 0): StructOf<F> {
      const out: Record<string, unknown> = {};
      for (let i = 0; i < readers.length; i++) out[names[i]!] = readers[i]!(buf, offset);
      return out as StructOf<F>;
    },
  };
}

/** A single unsigned 32-bit host-order integer (array map keys, counters). */
export const u32: Codec<number> = {
  size: 4,
  encode: (v, buf, off = 0) => void buf.writeUInt32LE(v >>> 0, off),
  decode: (buf, off = 0) => buf.readUInt32LE(off),
};

/** The bytes of a value as they are, for code that copies entries without knowing their struct. */
export function bytes(size: number): Codec<Buffer> {
  return {
    size,
    encode: (v, buf, offset = 0) => {
      if (v.length !== size) throw new RangeError(`bytes(${size}): got ${v.length} bytes`);
      v.copy(buf, offset);
    },
    decode: (buf, offset = 0) => Buffer.from(buf.subarray(offset, offset + size)),
  };
}

export const u64: Codec<bigint> = {
  size: 8,
  encode: (v, buf, off = 0) => void buf.writeBigUInt64LE(v, off),
  decode: (buf, off = 0) => buf.readBigUInt64LE(off),
};

type Writer = (buf: Buffer, base: number, raw: unknown) => void;
type Reader = (buf: Buffer, base: number) => unknown;

function fieldWriter(f: FieldSpec, codec: string): Writer {
  const at = f.offset;
  const bad = (raw: unknown): never => {
    throw new TypeError(`codec ${codec}: field ${f.name} (${f.kind}) cannot hold ${String(raw)}`);
  };
  const num = (write: (buf: Buffer, n: number, off: number) => void): Writer => (buf, base, raw) => {
    if (typeof raw !== 'number') bad(raw);
    write(buf, raw as number, base + at);
  };
  switch (f.kind) {
    case 'u8':
      return num((b, n, o) => b.writeUInt8(n, o));
    case 'u16':
      return num((b, n, o) => b.writeUInt16LE(n, o));
    case 'be16':
      return num((b, n, o) => b.writeUInt16BE(n, o));
    case 'u32':
      return num((b, n, o) => b.writeUInt32LE(n >>> 0, o));
    case 'be32':
      return num((b, n, o) => b.writeUInt32BE(n >>> 0, o));
    case 'u64':
      return (buf, base, raw) => {
        if (typeof raw !== 'bigint') bad(raw);
        buf.writeBigUInt64LE(raw as bigint, base + at);
      };
    case 'ipv4':
      return (buf, base, raw) => {
        if (typeof raw !== 'string') bad(raw);
        buf.writeUInt32BE(ipv4ToInt(raw as string), base + at);
      };
    case 'mac':
      return (buf, base, raw) => {
        if (typeof raw !== 'string') bad(raw);
        macToBuffer(raw as string).copy(buf, base + at);
      };
    case 'pad':
      return () => {};
  }
}

function fieldReader(f: FieldSpec): Reader {
  const at = f.offset;
  switch (f.kind) {
    case 'u8':
      return (b, o) => b.readUInt8(o + at);
    case 'u16':
      return (b, o) => b.readUInt16LE(o + at);
    case 'be16':
      return (b, o) => b.readUInt16BE(o + at);
    case 'u32':
      return (b, o) => b.readUInt32LE(o + at);
    case 'be32':
      return (b, o) => b.readUInt32BE(o + at);
    case 'u64':
      return (b, o) => b.readBigUInt64LE(o + at);
    case 'ipv4':
      return (b, o) => intToIpv4(b.readUInt32BE(o + at));
    case 'mac':
      return (b, o) => bufferToMac(b.subarray(o + at, o + at + 6));
    case 'pad':
      return () => undefined;
  }
}

const IPV4_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Parses a dotted quad into an unsigned 32-bit integer (host arithmetic, network meaning). */
export function ipv4ToInt(ip: string): number {
  const m = IPV4_RE.exec(ip);
  if (!m) throw new TypeError(`not an IPv4 address: ${JSON.stringify(ip)}`);
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const octet = Number(m[i]);
    if (octet > 255) throw new TypeError(`not an IPv4 address: ${JSON.stringify(ip)}`);
    n = n * 256 + octet;
  }
  return n >>> 0;
}

export function intToIpv4(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

const MAC_RE = /^([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2})$/i;

export function macToBuffer(mac: string): Buffer {
  const m = MAC_RE.exec(mac);
  if (!m) throw new TypeError(`not a MAC address: ${JSON.stringify(mac)}`);
  return Buffer.from(m.slice(1, 7).map((h) => parseInt(h, 16)));
}

export function bufferToMac(b: Uint8Array): string {
  return Array.from(b.subarray(0, 6), (x) => x.toString(16).padStart(2, '0')).join(':');
}
