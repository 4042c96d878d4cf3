// host-local's store: one file per reserved IP under <dataDir>/<network>/,
// named by the address and holding "<containerID>\r\n<ifname>", then, since
// v0.2, a third line: the attachment's record (JSON: the pin dir and bridge
// the ADD used), so DEL and GC undo the ADD where it was done whatever their
// own config says, as the tuning plugin restores what it saved at ADD rather
// than what DEL's config names. v0.1.0 reads the first two lines only (and
// this build reads a two-line file as a reservation without a record: the
// caller falls back to its config), so either release can read the other's.
// The directory is 0700 and every file 0600: reservations name the node's
// containers. A store an older build left open to all is closed on the next
// lock.
// last_reserved_ip.0 for round-robin; an flock on ./lock held by whoever
// allocates or releases. A reservation is created with O_EXCL, so claiming an
// address is atomic; a process SIGKILLed mid-write leaves a file that names no
// valid attachment, which GC releases. (Temp files of earlier versions are
// swept under the lock.)
// Beside it, an index symlink a-<hash(attachment)> -> IP lets ADD and DEL find
// an attachment's address without reading every reservation (O(1) instead of
// O(pods)); it is only a hint, checked against the reservation it names, and
// an IP file without one is still found by GC, which reads everything.
import { hash64hex } from '../hash.js';
import { chmodSync, closeSync, constants, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, statSync, symlinkSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { intToIpv4, ipv4ToInt } from '../../../loader/codec.js';
import { SysError } from '../../../loader/errors.js';
import { libc } from '../../../loader/libc.js';

/** What DEL and GC need to undo an ADD, as that ADD saw it. */
export interface AttachmentRecord {
  pinDir: string;
  bridge: string;
}

export interface Reservation {
  ip: number;
  containerId: string;
  ifname: string;
  /** Absent in a reservation written by v0.1.0 (or killed mid-write): undo with the caller's config. */
  record?: AttachmentRecord;
}

export interface Store {
  lock(): void;
  unlock(): void;
  /** Atomically reserves ip; false when it is taken. */
  reserve(r: Reservation): boolean;
  release(r: Reservation): void;
  /** Every reservation, read in full (GC, STATUS). */
  list(): Reservation[];
  /** Reserved addresses only (allocation). */
  usedIps(): number[];
  byAttachment(containerId: string, ifname: string): Reservation | undefined;
  /** Drops bookkeeping that no reservation backs any more (GC); returns how many entries went. */
  prune?(): number;
  lastReserved(): number | undefined;
  setLastReserved(ip: number): void;
}

const LOCK_EX = 2;
const LAST = 'last_reserved_ip.0';
/** The longest dotted quad: every write covers whatever an earlier one left. */
const LAST_WIDTH = 15;
const TMP = '.tmp-';
const INDEX = 'a-';
const IP_RE = /^\d+\.\d+\.\d+\.\d+$/;
const DIR_MODE = 0o700;
const FILE_MODE = 0o600;

function indexName(containerId: string, ifname: string): string {
  return INDEX + hash64hex(`${containerId}\0${ifname}`);
}

export class DiskStore implements Store {
  readonly dir: string;
  private readonly dataDir: string;
  private lockFd = -1;

  constructor(dataDir: string, network: string) {
    this.dataDir = dataDir;
    this.dir = join(dataDir, network);
  }

  lock(): void {
    if (this.lockFd >= 0) return;
    const path = join(this.dir, 'lock');
    let fd: number;
    try {
      fd = openSync(path, constants.O_RDWR | constants.O_CREAT, FILE_MODE);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      // dataDir is shared (the log, bvcnid's socket): only the store's own directory is closed.
      mkdirSync(this.dataDir, { recursive: true, mode: 0o755 });
      try {
        mkdirSync(this.dir, { mode: DIR_MODE });
      } catch (me) {
        if ((me as NodeJS.ErrnoException).code !== 'EEXIST') throw me;
      }
      fd = openSync(path, constants.O_RDWR | constants.O_CREAT, FILE_MODE);
    }
    const c = libc();
    for (;;) {
      if (c.flock(fd, LOCK_EX) === 0) break;
      const e = c.errno();
      if (e === 4) continue;
      closeSync(fd);
      throw new SysError(`flock ${this.dir}/lock`, e);
    }
    this.lockFd = fd;
    this.tighten();
  }

  /**
   * An older build made the directory 0755 and its files 0644: close them
   * (one stat per lock; the sweep runs once per store). Index links have
   * no mode of their own.
   */
  private tighten(): void {
    if ((statSync(this.dir).mode & 0o077) === 0) return;
    for (const n of this.names()) {
      const p = join(this.dir, n);
      try {
        const st = lstatSync(p);
        if (st.isFile() && (st.mode & 0o077) !== 0) chmodSync(p, FILE_MODE);
      } catch {
        /* released meanwhile */
      }
    }
    chmodSync(this.dir, DIR_MODE);
  }

  unlock(): void {
    if (this.lockFd < 0) return;
    closeSync(this.lockFd);
    this.lockFd = -1;
  }

  /** Directory entries; temp files left by killed processes are swept on the way (we hold the lock). */
  private names(): string[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    for (const n of names) if (n.startsWith(TMP)) rmQuiet(join(this.dir, n));
    return names;
  }

  reserve(r: Reservation): boolean {
    try {
      // O_EXCL claims the address atomically. A process killed before the
      // write completes leaves a file naming no valid attachment: GC frees it.
      writeFileSync(join(this.dir, intToIpv4(r.ip)), reservationText(r), { flag: 'wx', mode: FILE_MODE });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e;
    }
    const idx = join(this.dir, indexName(r.containerId, r.ifname));
    try {
      symlinkSync(intToIpv4(r.ip), idx);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      rmQuiet(idx);
      symlinkSync(intToIpv4(r.ip), idx);
    }
    return true;
  }

  release(r: Reservation): void {
    const idx = join(this.dir, indexName(r.containerId, r.ifname));
    try {
      if (readlinkSync(idx) === intToIpv4(r.ip)) rmQuiet(idx);
    } catch {
      /* no index */
    }
    rmQuiet(join(this.dir, intToIpv4(r.ip)));
  }

  private read(ipText: string): Reservation | undefined {
    let text: string;
    try {
      text = readFileSync(join(this.dir, ipText), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    const [containerId = '', ifname = '', record = ''] = text.split(/\r?\n/);
    const rec = parseRecord(record);
    return { ip: ipv4ToInt(ipText), containerId: containerId.trim(), ifname: ifname.trim(), ...(rec ? { record: rec } : {}) };
  }

  list(): Reservation[] {
    const out: Reservation[] = [];
    for (const n of this.names()) {
      if (!IP_RE.test(n)) continue;
      const r = this.read(n);
      if (r) out.push(r);
    }
    return out;
  }

  usedIps(): number[] {
    return this.names()
      .filter((n) => IP_RE.test(n))
      .map(ipv4ToInt);
  }

  prune(): number {
    let n = 0;
    for (const name of this.names()) {
      if (!name.startsWith(INDEX)) continue;
      let target = '';
      try {
        target = readlinkSync(join(this.dir, name));
      } catch {
        /* not a link: not ours to keep */
      }
      const r = IP_RE.test(target) ? this.read(target) : undefined;
      if (!r || indexName(r.containerId, r.ifname) !== name) {
        rmQuiet(join(this.dir, name));
        n++;
      }
    }
    return n;
  }

  byAttachment(containerId: string, ifname: string): Reservation | undefined {
    let target: string;
    try {
      target = readlinkSync(join(this.dir, indexName(containerId, ifname)));
    } catch {
      return undefined;
    }
    if (!IP_RE.test(target)) return undefined;
    const r = this.read(target);
    return r && r.containerId === containerId && r.ifname === ifname ? r : undefined;
  }

  lastReserved(): number | undefined {
    try {
      return ipv4ToInt(readFileSync(join(this.dir, LAST), 'utf8').trim());
    } catch {
      return undefined;
    }
  }

  setLastReserved(ip: number): void {
    // Overwritten in place at a fixed width, never truncated: ext4 writes a
    // file's pending data back when it is truncated and rewritten
    // (auto_da_alloc), which cost 0.6 ms (p90 3.5 ms) of every ADD here.
    // A torn write only moves where the next search starts.
    const fd = openSync(join(this.dir, LAST), constants.O_WRONLY | constants.O_CREAT, FILE_MODE);
    try {
      writeSync(fd, `${intToIpv4(ip).padEnd(LAST_WIDTH)}\n`, 0);
    } finally {
      closeSync(fd);
    }
  }
}

/** The file's text: the two lines v0.1.0 (and host-local's layout) reads, then the record, one JSON line. */
function reservationText(r: Reservation): string {
  const base = `${r.containerId}\r\n${r.ifname}`;
  return r.record ? `${base}\r\n${JSON.stringify({ pinDir: r.record.pinDir, bridge: r.record.bridge })}` : base;
}

/** A record this build wrote, or undefined (none, torn, or not ours): the caller then uses its config. */
function parseRecord(line: string): AttachmentRecord | undefined {
  if (!line.trim()) return undefined;
  try {
    const o = JSON.parse(line) as { pinDir?: unknown; bridge?: unknown } | null;
    if (o && typeof o.pinDir === 'string' && o.pinDir.startsWith('/') && typeof o.bridge === 'string' && o.bridge) return { pinDir: o.pinDir, bridge: o.bridge };
  } catch {
    /* torn write or foreign text */
  }
  return undefined;
}

function rmQuiet(p: string): void {
  try {
    unlinkSync(p);
  } catch {
    /* already gone */
  }
}

/** In-memory store for unit tests of the allocator. */
export class MemoryStore implements Store {
  readonly entries = new Map<number, Reservation>();
  last?: number;
  locked = false;
  lock(): void {
    if (this.locked) throw new Error('MemoryStore: lock taken twice');
    this.locked = true;
  }
  unlock(): void {
    this.locked = false;
  }
  reserve(r: Reservation): boolean {
    if (this.entries.has(r.ip)) return false;
    this.entries.set(r.ip, { ...r });
    return true;
  }
  release(r: Reservation): void {
    this.entries.delete(r.ip);
  }
  list(): Reservation[] {
    return [...this.entries.values()];
  }
  usedIps(): number[] {
    return [...this.entries.keys()];
  }
  byAttachment(containerId: string, ifname: string): Reservation | undefined {
    return this.list().find((r) => r.containerId === containerId && r.ifname === ifname);
  }
  lastReserved(): number | undefined {
    return this.last;
  }
  setLastReserved(ip: number): void {
    this.last = ip;
  }
}
