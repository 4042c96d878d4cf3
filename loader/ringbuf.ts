// Reading a BPF_MAP_TYPE_RINGBUF map from user space: its pages mapped into
// this process (the kernel's layout, <linux/bpf.h> and kernel/bpf/ringbuf.c)
// and read in place, without libbpf's ring_buffer__poll.
//
// Why not libbpf's reader: it delivers each record through a callback, which
// koffi makes a native-to-JS transition per record, and it waits in epoll_wait,
// which would block Node's event loop (or need a thread). Here a poll is a
// plain function the caller runs on a timer: no wake-up is needed from the
// programs (they submit with BPF_RB_NO_WAKEUP), and one poll copies out every
// record that is ready.
//
// Layout: page 0 the consumer position (the only page user space may write),
// page 1 the producer position, then the data area mapped twice in a row so a
// record that wraps reads as one piece. Each record: an 8-byte header (u32
// length with BUSY and DISCARD bits, u32 page offset), the data, padded to 8.
import { bpf } from './bindings.js';
import { koffi, libc as libcLib } from './ffi.js';
import { BpfError, check, Errno } from './errors.js';
import { OwnedFd } from './fd.js';
import { MapType, mapInfo } from './info.js';

const PROT_READ = 1;
const PROT_WRITE = 2;
const MAP_SHARED = 1;
const RINGBUF_BUSY_BIT = 1 << 31;
const RINGBUF_DISCARD_BIT = 1 << 30;
const RINGBUF_HDR_SZ = 8;

type Fn = (...args: unknown[]) => unknown;
let mm: { mmap: Fn; munmap: Fn; sysconf: Fn } | undefined;
function mmapCalls(): { mmap: Fn; munmap: Fn; sysconf: Fn } {
  if (!mm) {
    const l = libcLib();
    mm = {
      mmap: l.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, long off)') as Fn,
      munmap: l.func('int munmap(void *addr, size_t len)') as Fn,
      sysconf: l.func('long sysconf(int name)') as Fn,
    };
  }
  return mm;
}
const _SC_PAGESIZE = 30;

interface Mapping {
  ptr: unknown;
  len: number;
  view: DataView;
  bytes: Uint8Array;
}

function mapPages(fd: number, len: number, prot: number, offset: number, what: string): Mapping {
  const ptr = mmapCalls().mmap(null, len, prot, MAP_SHARED, fd, offset);
  if (ptr === null || koffi().address(ptr) === 0xffffffffffffffffn) throw new BpfError(`mmap ${what}`, koffi().errno());
  const buf = koffi().view(ptr, len);
  return { ptr, len, view: new DataView(buf), bytes: new Uint8Array(buf) };
}

/** What one poll found. */
export interface RingBufPoll {
  /** Records copied out (each its own Buffer: the ring's space is released). */
  records: Buffer[];
  /** Bytes of ring space released. */
  bytes: number;
}

export class RingBufReader {
  readonly #fd: OwnedFd;
  readonly size: number;
  #consumer: Mapping | undefined;
  #producer: Mapping | undefined;

  private constructor(fd: number, label: string) {
    this.#fd = new OwnedFd(fd);
    try {
      const info = mapInfo(fd);
      if (info.type !== MapType.ringbuf) throw new BpfError(`open ring buffer ${label}`, Errno.EINVAL, `map type ${info.type} is not a ring buffer`);
      this.size = info.maxEntries;
      const page = Number(mmapCalls().sysconf(_SC_PAGESIZE));
      this.#consumer = mapPages(fd, page, PROT_READ | PROT_WRITE, 0, `${label} consumer page`);
      this.#producer = mapPages(fd, page + 2 * this.size, PROT_READ, page, `${label} producer and data pages`);
    } catch (e) {
      this.close();
      throw e;
    }
  }

  static openPinned(path: string): RingBufReader {
    return new RingBufReader(check(`open pinned ring buffer ${path}`, bpf().bpf_obj_get(path) as number), path);
  }

  /** Bytes written but not yet consumed. */
  get pending(): number {
    const { consumer, producer } = this.#maps();
    return Number(producer.view.getBigUint64(0, true) - consumer.view.getBigUint64(0, true));
  }

  /** Drops everything written so far unread (a new reader's start: old events are no news). */
  skipToEnd(): void {
    const { consumer, producer } = this.#maps();
    // Only up to the first record still being written: the kernel needs the consumer behind it.
    const prod = producer.view.getBigUint64(0, true);
    let cons = consumer.view.getBigUint64(0, true);
    while (cons < prod) {
      const at = RingBufReader.#pageSizeOf(producer, this.size) + Number(cons % BigInt(this.size));
      const len = producer.view.getUint32(at, true);
      if (len & RINGBUF_BUSY_BIT) break;
      cons += BigInt(RingBufReader.#advance(len));
    }
    consumer.view.setBigUint64(0, cons, true);
  }

  /** Copies out every committed record, in order, and releases their space. At most maxRecords. */
  poll(maxRecords = Number.MAX_SAFE_INTEGER): RingBufPoll {
    const { consumer, producer } = this.#maps();
    const dataAt = RingBufReader.#pageSizeOf(producer, this.size);
    const prod = producer.view.getBigUint64(0, true);
    const start = consumer.view.getBigUint64(0, true);
    let cons = start;
    const records: Buffer[] = [];
    while (cons < prod && records.length < maxRecords) {
      const at = dataAt + Number(cons % BigInt(this.size));
      const len = producer.view.getUint32(at, true);
      if (len & RINGBUF_BUSY_BIT) break; // reserved, not yet submitted: records after it wait too
      if (!(len & RINGBUF_DISCARD_BIT)) {
        const n = len & ~(RINGBUF_BUSY_BIT | RINGBUF_DISCARD_BIT);
        records.push(Buffer.from(producer.bytes.subarray(at + RINGBUF_HDR_SZ, at + RINGBUF_HDR_SZ + n)));
      }
      cons += BigInt(RingBufReader.#advance(len));
    }
    // Releasing the space only after copying: the kernel may reuse it at once.
    if (cons !== start) consumer.view.setBigUint64(0, cons, true);
    return { records, bytes: Number(cons - start) };
  }

  static #advance(len: number): number {
    const n = (len & ~(RINGBUF_BUSY_BIT | RINGBUF_DISCARD_BIT)) >>> 0;
    return (n + RINGBUF_HDR_SZ + 7) & ~7;
  }

  /** The data area starts one page into the producer mapping. */
  static #pageSizeOf(producer: Mapping, size: number): number {
    return producer.len - 2 * size;
  }

  #maps(): { consumer: Mapping; producer: Mapping } {
    if (!this.#consumer || !this.#producer) throw new Error('ring buffer used after close');
    return { consumer: this.#consumer, producer: this.#producer };
  }

  close(): void {
    for (const m of [this.#consumer, this.#producer]) if (m) mmapCalls().munmap(m.ptr, m.len);
    this.#consumer = undefined;
    this.#producer = undefined;
    this.#fd.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
