// host-local's store: one file per reserved IP under <dataDir>/<network>/,
// named by the address and holding "<containerID>\r\n<ifname>";
// last_reserved_ip.0 for round-robin; an flock on ./lock held by whoever
// allocates or releases. A reservation is created by link(2) of a fully
// written temp file, so it is atomic and never half-written even if the
// process is SIGKILLed; stale temp files are swept under the lock.
import { closeSync, constants, linkSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { intToIpv4, ipv4ToInt } from '../../../loader/codec.js';
import { libc, SysError } from '../../netlink/libc.js';

export interface Reservation {
  ip: number;
  containerId: string;
  ifname: string;
}

export interface Store {
  lock(): void;
  unlock(): void;
  /** Atomically reserves ip; false when it is taken. */
  reserve(r: Reservation): boolean;
  release(ip: number): void;
  list(): Reservation[];
  lastReserved(): number | undefined;
  setLastReserved(ip: number): void;
}

const LOCK_EX = 2;
const LAST = 'last_reserved_ip.0';
const TMP = '.tmp-';

export class DiskStore implements Store {
  readonly dir: string;
  private lockFd = -1;

  constructor(dataDir: string, network: string) {
    this.dir = join(dataDir, network);
  }

  lock(): void {
    if (this.lockFd >= 0) return;
    mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    const fd = openSync(join(this.dir, 'lock'), constants.O_RDWR | constants.O_CREAT, 0o600);
    const c = libc();
    for (;;) {
      if (c.flock(fd, LOCK_EX) === 0) break;
      const e = c.errno();
      if (e === 4) continue;
      closeSync(fd);
      throw new SysError(`flock ${this.dir}/lock`, e);
    }
    this.lockFd = fd;
    this.sweepTemp();
  }

  unlock(): void {
    if (this.lockFd < 0) return;
    closeSync(this.lockFd);
    this.lockFd = -1;
  }

  private sweepTemp(): void {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return;
    }
    for (const n of names) if (n.startsWith(TMP)) rmQuiet(join(this.dir, n));
  }

  reserve(r: Reservation): boolean {
    const tmp = join(this.dir, `${TMP}${process.pid}-${r.ip}`);
    writeFileSync(tmp, `${r.containerId}\r\n${r.ifname}`, { mode: 0o644 });
    try {
      linkSync(tmp, join(this.dir, intToIpv4(r.ip)));
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e;
    } finally {
      rmQuiet(tmp);
    }
  }

  release(ip: number): void {
    rmQuiet(join(this.dir, intToIpv4(ip)));
  }

  list(): Reservation[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const out: Reservation[] = [];
    for (const n of names) {
      if (!/^\d+\.\d+\.\d+\.\d+$/.test(n)) continue;
      let text = '';
      try {
        text = readFileSync(join(this.dir, n), 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw e;
      }
      const [containerId = '', ifname = ''] = text.split(/\r?\n/);
      out.push({ ip: ipv4ToInt(n), containerId: containerId.trim(), ifname: ifname.trim() });
    }
    return out;
  }

  lastReserved(): number | undefined {
    try {
      return ipv4ToInt(readFileSync(join(this.dir, LAST), 'utf8').trim());
    } catch {
      return undefined;
    }
  }

  setLastReserved(ip: number): void {
    const tmp = join(this.dir, `${TMP}${process.pid}-last`);
    writeFileSync(tmp, intToIpv4(ip));
    renameSync(tmp, join(this.dir, LAST));
  }
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
  release(ip: number): void {
    this.entries.delete(ip);
  }
  list(): Reservation[] {
    return [...this.entries.values()];
  }
  lastReserved(): number | undefined {
    return this.last;
  }
  setLastReserved(ip: number): void {
    this.last = ip;
  }
}
