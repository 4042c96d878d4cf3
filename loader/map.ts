// Typed access to a BPF map through codecs for its key and value structs.
import { bpf, dupFd } from './bindings.js';
import { bytes, type Codec } from './codec.js';
import { BpfError, check, Errno } from './errors.js';
import { OwnedFd } from './fd.js';
import { isPerCpu, mapInfo, type MapInfo } from './info.js';
import { ElemScratch } from './syscall.js';

export type UpdateFlag = 'any' | 'noexist' | 'exist';
const FLAG_VALUE: Record<UpdateFlag, number> = { any: 0, noexist: 1, exist: 2 };

const { ENOENT, EINVAL, EOPNOTSUPP, ENOTSUPP, ENOSPC } = Errno;
const BATCH_OPTS_SIZE = 24; // struct bpf_map_batch_opts { size_t sz; u64 elem_flags; u64 flags; }

let possibleCpus = 0;
export function numPossibleCpus(): number {
  if (!possibleCpus) possibleCpus = check('count possible CPUs', bpf().libbpf_num_possible_cpus() as number);
  return possibleCpus;
}

export class BpfMap<K, V> {
  readonly #fd: OwnedFd;
  readonly info: MapInfo;
  readonly perCpu: boolean;
  readonly #scratch: ElemScratch;
  readonly #keyBuf: Buffer;
  readonly #valueBuf: Buffer;
  /** Stride of one CPU's value in a per-CPU buffer: the kernel rounds to 8. */
  readonly #stride: number;
  readonly #label: string;

  private constructor(
    fd: number,
    readonly key: Codec<K>,
    readonly value: Codec<V>,
    label: string,
  ) {
    this.#fd = new OwnedFd(fd);
    try {
      this.info = mapInfo(fd);
      if (this.info.keySize !== key.size || this.info.valueSize !== value.size) {
        throw new BpfError(
          `open map ${label}`,
          EINVAL,
          `map has key ${this.info.keySize} / value ${this.info.valueSize} bytes, codecs expect ${key.size} / ${value.size}`,
        );
      }
    } catch (e) {
      this.#fd.close();
      throw e;
    }
    this.#label = this.info.name || label;
    this.perCpu = isPerCpu(this.info.type);
    this.#stride = this.perCpu ? Math.ceil(value.size / 8) * 8 : value.size;
    this.#scratch = new ElemScratch(fd, key.size, this.perCpu ? this.#stride * numPossibleCpus() : value.size);
    this.#keyBuf = this.#scratch.key;
    this.#valueBuf = this.#scratch.value;
  }

  static openPinned<K, V>(path: string, key: Codec<K>, value: Codec<V>): BpfMap<K, V> {
    const fd = check(`open pinned map ${path}`, bpf().bpf_obj_get(path) as number);
    return new BpfMap(fd, key, value, path);
  }

  /**
   * Opens a pinned map whose value layout is one of several (a map an older
   * release pinned): the first codec whose size matches the map's value size.
   */
  static openPinnedMatching<K, V>(path: string, key: Codec<K>, values: readonly Codec<V>[]): BpfMap<K, V> {
    const fd = check(`open pinned map ${path}`, bpf().bpf_obj_get(path) as number);
    let info: MapInfo;
    try {
      info = mapInfo(fd);
    } catch (e) {
      new OwnedFd(fd).close();
      throw e;
    }
    const value = values.find((v) => v.size === info.valueSize) ?? values[0]!;
    return new BpfMap(fd, key, value, path);
  }

  /** Opens a pinned map as the bytes of its keys and values, whatever its layout (a migration's copy). */
  static openPinnedRaw(path: string): BpfMap<Buffer, Buffer> {
    const fd = check(`open pinned map ${path}`, bpf().bpf_obj_get(path) as number);
    let info: MapInfo;
    try {
      info = mapInfo(fd);
    } catch (e) {
      new OwnedFd(fd).close();
      throw e;
    }
    return new BpfMap(fd, bytes(info.keySize), bytes(info.valueSize), path);
  }

  /** Wraps a duplicate of a descriptor someone else owns (e.g. a loaded object). */
  static fromBorrowedFd<K, V>(fd: number, key: Codec<K>, value: Codec<V>, label = `fd ${fd}`): BpfMap<K, V> {
    return new BpfMap(dupFd(fd), key, value, label);
  }

  get fd(): number {
    return this.#fd.fd;
  }

  lookup(key: K): V | undefined {
    this.#requireShared('lookup');
    this.key.encode(key, this.#keyBuf);
    const ret = this.#scratch.call('lookup');
    if (ret === -ENOENT) return undefined;
    if (ret < 0) check(`lookup in ${this.#label}`, ret);
    return this.value.decode(this.#valueBuf);
  }

  /** Per-CPU maps: one value per possible CPU. */
  lookupPerCpu(key: K): V[] | undefined {
    if (!this.perCpu) throw new TypeError(`${this.#label} is not a per-CPU map`);
    this.key.encode(key, this.#keyBuf);
    const ret = this.#scratch.call('lookup');
    if (ret === -ENOENT) return undefined;
    if (ret < 0) check(`lookup in ${this.#label}`, ret);
    const out: V[] = [];
    for (let cpu = 0; cpu < numPossibleCpus(); cpu++) out.push(this.value.decode(this.#valueBuf, cpu * this.#stride));
    return out;
  }

  /** Writes the value; for a per-CPU map, the same value on every CPU. */
  update(key: K, value: V, flag: UpdateFlag = 'any'): void {
    this.key.encode(key, this.#keyBuf);
    this.#encodeValue(value, this.#valueBuf, 0);
    const ret = this.#scratch.call('update', FLAG_VALUE[flag]);
    if (ret < 0) check(`update in ${this.#label}`, ret);
  }

  /** Per-CPU maps: one value per possible CPU, in CPU order. */
  updatePerCpu(key: K, values: readonly V[], flag: UpdateFlag = 'any'): void {
    if (!this.perCpu) throw new TypeError(`${this.#label} is not a per-CPU map`);
    if (values.length !== numPossibleCpus()) throw new RangeError(`${this.#label}: ${values.length} values for ${numPossibleCpus()} CPUs`);
    this.key.encode(key, this.#keyBuf);
    values.forEach((v, cpu) => this.value.encode(v, this.#valueBuf, cpu * this.#stride));
    const ret = this.#scratch.call('update', FLAG_VALUE[flag]);
    if (ret < 0) check(`update in ${this.#label}`, ret);
  }

  /** Returns false when the key was not there. */
  delete(key: K): boolean {
    this.key.encode(key, this.#keyBuf);
    const ret = this.#scratch.call('delete');
    if (ret === -ENOENT) return false;
    if (ret < 0) check(`delete in ${this.#label}`, ret);
    return true;
  }

  *#rawKeys(): IterableIterator<Buffer> {
    const s = this.#scratch;
    let ret = s.firstKey();
    while (ret === 0) {
      const k = Buffer.from(s.nextKey);
      yield k;
      // The consumer may have used the scratch key meanwhile.
      k.copy(s.key);
      ret = s.call('nextKey');
    }
    if (ret !== -ENOENT) check(`iterate ${this.#label}`, ret);
  }

  *keys(): IterableIterator<K> {
    for (const k of this.#rawKeys()) yield this.key.decode(k);
  }

  /** Entries as seen while iterating; keys deleted meanwhile are skipped. */
  *entries(): IterableIterator<[K, V]> {
    this.#requireShared('entries');
    for (const k of this.#rawKeys()) {
      k.copy(this.#keyBuf);
      const ret = this.#scratch.call('lookup');
      if (ret === -ENOENT) continue;
      if (ret < 0) check(`lookup in ${this.#label}`, ret);
      yield [this.key.decode(k), this.value.decode(this.#valueBuf)];
    }
  }

  /** Per-CPU maps: entries with one value per CPU. */
  *entriesPerCpu(): IterableIterator<[K, V[]]> {
    for (const k of this.#rawKeys()) {
      const key = this.key.decode(k);
      const values = this.lookupPerCpu(key);
      if (values) yield [key, values];
    }
  }

  /**
   * A walk over the map that counts its entries a batch at a time
   * (BPF_MAP_LOOKUP_BATCH), to be resumed between event-loop turns. Unlike
   * get_next_key, whose walk starts over from the first key when the key it
   * resumes from was deleted meanwhile (an LRU map under churn), a hash map's
   * batch cursor is a bucket index: entries added or deleted between steps
   * are counted or not, never twice. Undefined when the map type has no batch
   * lookup (the caller falls back to keys()).
   */
  batchCounter(batchSize: number): BatchCounter | undefined {
    const walk = new BatchCounter(this.fd, this.key.size, this.#valueStride(), batchSize, this.#label);
    return walk.probe() ? walk : undefined;
  }

  /** One syscall for many updates where the map type has it, else a loop. */
  updateBatch(entries: readonly (readonly [K, V])[], flag: UpdateFlag = 'any'): void {
    if (entries.length === 0) return;
    const keys = Buffer.alloc(entries.length * this.key.size);
    const values = Buffer.alloc(entries.length * this.#valueStride());
    entries.forEach(([k, v], i) => {
      this.key.encode(k, keys, i * this.key.size);
      this.#encodeValue(v, values, i * this.#valueStride());
    });
    const count = u32Buf(entries.length);
    const ret = bpf().bpf_map_update_batch(this.fd, keys, values, count, batchOpts(FLAG_VALUE[flag])) as number;
    if (ret === 0) return;
    if (!noBatch(ret)) check(`batch update in ${this.#label}`, ret);
    for (const [k, v] of entries) this.update(k, v, flag);
  }

  /**
   * Deletes the keys that exist; returns how many were deleted. One syscall
   * where the map type has a batch delete; the kernel stops at the first
   * missing key, so the rest is finished one by one.
   */
  deleteBatch(keys: readonly K[]): number {
    if (keys.length === 0) return 0;
    const buf = Buffer.alloc(keys.length * this.key.size);
    keys.forEach((k, i) => this.key.encode(k, buf, i * this.key.size));
    const count = u32Buf(keys.length);
    const ret = bpf().bpf_map_delete_batch(this.fd, buf, count, batchOpts(0)) as number;
    if (ret === 0) return keys.length;
    if (!noBatch(ret) && ret !== -ENOENT) check(`batch delete in ${this.#label}`, ret);
    const done = noBatch(ret) ? 0 : count.readUInt32LE(0);
    let deleted = done;
    for (const k of keys.slice(done)) if (this.delete(k)) deleted++;
    return deleted;
  }

  pin(path: string): void {
    check(`pin map ${this.#label} at ${path}`, bpf().bpf_obj_pin(this.fd, path) as number);
  }

  close(): void {
    this.#fd.close();
    this.#scratch.free();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #valueStride(): number {
    return this.perCpu ? this.#valueBuf.length : this.value.size;
  }

  #encodeValue(value: V, buf: Buffer, at: number): void {
    if (!this.perCpu) return this.value.encode(value, buf, at);
    for (let cpu = 0; cpu < numPossibleCpus(); cpu++) this.value.encode(value, buf, at + cpu * this.#stride);
  }

  #requireShared(op: string): void {
    if (this.perCpu) throw new TypeError(`${op} on per-CPU map ${this.#label}: use lookupPerCpu/entriesPerCpu`);
  }
}

function u32Buf(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

function batchOpts(elemFlags: number): Buffer {
  const b = Buffer.alloc(BATCH_OPTS_SIZE);
  b.writeBigUInt64LE(BigInt(BATCH_OPTS_SIZE), 0);
  b.writeBigUInt64LE(BigInt(elemFlags), 8);
  return b;
}

/** Map types without batch support answer EINVAL or (E)NOTSUPP. */
function noBatch(ret: number): boolean {
  return ret === -EINVAL || ret === -EOPNOTSUPP || ret === -ENOTSUPP;
}

/** See BpfMap.batchCounter. */
export class BatchCounter {
  #cursor: Buffer;
  #next: Buffer;
  #keys: Buffer;
  #values: Buffer;
  #batch: number;
  #started = false;
  #done = false;
  readonly #count = Buffer.alloc(4);
  readonly #opts = batchOpts(0);

  constructor(
    private readonly fd: number,
    private readonly keySize: number,
    private readonly valueStride: number,
    batchSize: number,
    private readonly label: string,
  ) {
    this.#batch = Math.max(1, Math.floor(batchSize));
    // Hash maps keep a u32 bucket index here, arrays a u32 index; key-sized covers both.
    this.#cursor = Buffer.alloc(Math.max(8, keySize));
    this.#next = Buffer.alloc(Math.max(8, keySize));
    this.#keys = Buffer.alloc(this.#batch * keySize);
    this.#values = Buffer.alloc(this.#batch * valueStride);
  }

  /** Whether the kernel does batch lookups on this map (a zero-length first step). */
  probe(): boolean {
    const r = this.#call(true, 0);
    return !noBatch(r.ret);
  }

  get done(): boolean {
    return this.#done;
  }

  /** Counts up to about batchSize more entries; 0 with done set at the end. */
  step(): number {
    if (this.#done) return 0;
    for (;;) {
      const { ret, count } = this.#call(!this.#started, this.#batch);
      if (ret === -ENOSPC && count === 0) {
        // One bucket holds more than a batch: a bigger buffer, same cursor.
        this.#batch *= 2;
        this.#keys = Buffer.alloc(this.#batch * this.keySize);
        this.#values = Buffer.alloc(this.#batch * this.valueStride);
        continue;
      }
      if (ret === -ENOENT) {
        this.#done = true;
        return count;
      }
      if (ret < 0) check(`batch lookup in ${this.label}`, ret);
      this.#started = true;
      [this.#cursor, this.#next] = [this.#next, this.#cursor];
      return count;
    }
  }

  #call(first: boolean, n: number): { ret: number; count: number } {
    this.#count.writeUInt32LE(n);
    const ret = bpf().bpf_map_lookup_batch(this.fd, first ? null : this.#cursor, this.#next, this.#keys, this.#values, this.#count, this.#opts) as number;
    return { ret, count: this.#count.readUInt32LE(0) };
  }
}
