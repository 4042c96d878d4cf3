// The listening side of the drop events (bpf/lib/monitor.h): the lease that
// turns them on, the token bucket's rate, and the ring buffer read in place.
// One listener per node at a time: the ring buffer has one consumer position.
import { existsSync } from 'node:fs';
import { unlinkIfExists } from './pins.js';
import { BpfMap, RingBufReader, numPossibleCpus, u32 } from '../../loader/index.js';
import { dropEvent, MapName, monitorBucket, monitorConfig, type DropEvent, type MonitorBucket, type MonitorConfig } from './abi.js';
import { mapPin } from './maps.js';
import { monotonicNs } from './nat.js';

/** How long a lease lasts without renewal: a listener killed without cleaning up stops the events after this. */
export const MONITOR_LEASE_NS = 5_000_000_000n;
/** Defaults: events per second per CPU, and each CPU's burst. */
export const MONITOR_DEFAULT_RATE = 1000;
export const MONITOR_DEFAULT_BURST = 1000;

export interface MonitorOptions {
  /** Events per second refilled into each CPU's bucket (0: only the burst, once per listener). */
  rate?: number;
  /** Each CPU's bucket depth. */
  burst?: number;
}

/** Another listener holds the node's lease. */
export class MonitorBusy extends Error {
  constructor(readonly pid: number) {
    super(`another monitor (pid ${pid}) is listening on this node: the ring buffer has one reader`);
    this.name = 'MonitorBusy';
  }
}

/** The node's dataplane has no drop events (bvcnid of an earlier release, or not migrated yet). */
export class MonitorUnavailable extends Error {
  constructor(pinDir: string) {
    super(`no drop-event ring buffer (${MapName.events}) under ${pinDir}`);
    this.name = 'MonitorUnavailable';
  }
}

export function monitorAvailable(pinDir: string): boolean {
  return [MapName.events, MapName.monitor, MapName.monitorBucket].every((n) => existsSync(mapPin(pinDir, n)));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A decoded event with its time on the wall clock. */
export interface TimedDropEvent extends DropEvent {
  /** Milliseconds since the epoch, from the event's CLOCK_MONOTONIC time. */
  timeMs: number;
}

export class DropMonitor {
  readonly #config: BpfMap<number, MonitorConfig>;
  readonly #bucket: BpfMap<number, MonitorBucket>;
  readonly #ring: RingBufReader;
  readonly #rate: number;
  readonly #burst: number;
  #closed = false;

  private constructor(pinDir: string, opts: MonitorOptions) {
    this.#rate = opts.rate ?? MONITOR_DEFAULT_RATE;
    this.#burst = opts.burst ?? MONITOR_DEFAULT_BURST;
    for (const [what, v] of [['rate', this.#rate], ['burst', this.#burst]] as const)
      if (!Number.isInteger(v) || v < 0 || v > 1_000_000) throw new RangeError(`${what} must be an integer from 0 to 1000000, not ${v}`);
    this.#config = BpfMap.openPinned(mapPin(pinDir, MapName.monitor), u32, monitorConfig);
    try {
      this.#bucket = BpfMap.openPinned(mapPin(pinDir, MapName.monitorBucket), u32, monitorBucket);
      try {
        this.#ring = RingBufReader.openPinned(mapPin(pinDir, MapName.events));
      } catch (e) {
        this.#bucket.close();
        throw e;
      }
    } catch (e) {
      this.#config.close();
      throw e;
    }
  }

  /**
   * Takes the node's lease and starts the events: what the ring buffer held
   * before is skipped, each CPU's bucket starts full.
   */
  static open(pinDir: string, opts: MonitorOptions = {}): DropMonitor {
    if (!monitorAvailable(pinDir)) throw new MonitorUnavailable(pinDir);
    const m = new DropMonitor(pinDir, opts);
    try {
      const held = m.#config.lookup(0);
      if (held && held.listener_pid !== process.pid && held.listen_until_ns > monotonicNs() && alive(held.listener_pid)) throw new MonitorBusy(held.listener_pid);
      // Buckets first: the lease turns the events on, and they must start from a full bucket.
      m.#bucket.updatePerCpu(0, Array.from({ length: numPossibleCpus() }, () => ({ tokens: 0n, last_ns: 0n })));
      m.#ring.skipToEnd();
      m.renew();
      return m;
    } catch (e) {
      m.#release(false);
      throw e;
    }
  }

  /** Extends the lease; call more often than MONITOR_LEASE_NS (poll() does). */
  renew(): void {
    this.#config.update(0, { listen_until_ns: monotonicNs() + MONITOR_LEASE_NS, rate: this.#rate, burst: this.#burst, listener_pid: process.pid });
  }

  /** The events submitted since the last poll, oldest first; renews the lease. */
  poll(): TimedDropEvent[] {
    this.renew();
    const { records } = this.#ring.poll();
    if (!records.length) return [];
    const nowNs = monotonicNs();
    const nowMs = Date.now();
    return records
      .filter((r) => r.length >= dropEvent.size)
      .map((r) => {
        const ev = dropEvent.decode(r);
        return { ...ev, timeMs: nowMs - Number(nowNs - ev.ktime_ns) / 1e6 };
      });
  }

  /** Bytes submitted and not read yet. */
  get pending(): number {
    return this.#ring.pending;
  }

  /** Ends the lease (the programs stop building events at once) and closes the maps. */
  close(): void {
    this.#release(true);
  }

  #release(endLease: boolean): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      if (endLease && this.#config.lookup(0)?.listener_pid === process.pid)
        this.#config.update(0, { listen_until_ns: 0n, rate: this.#rate, burst: this.#burst, listener_pid: 0 });
    } finally {
      this.#ring.close();
      this.#bucket.close();
      this.#config.close();
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** The drop events' maps opened as plain maps (bvcnictl status): the config and the bucket with their codecs, the ring buffer raw. */
export function openMonitorConfigMap(pinDir: string): BpfMap<number, MonitorConfig> {
  return BpfMap.openPinned(mapPin(pinDir, MapName.monitor), u32, monitorConfig);
}
export function openMonitorBucketMap(pinDir: string): BpfMap<number, MonitorBucket> {
  return BpfMap.openPinned(mapPin(pinDir, MapName.monitorBucket), u32, monitorBucket);
}

/**
 * `bvcnid --prepare-downgrade`'s part for the drop events, which are ABI 2's:
 * the ABI 1 programs declare none of the three maps, so once they are in
 * place nothing uses them; unpinned so v0.1.0 finds only its own. Idempotent.
 */
export function removeMonitorMaps(pinDir: string): string[] {
  const removed: string[] = [];
  for (const name of [MapName.events, MapName.monitor, MapName.monitorBucket]) {
    const pin = mapPin(pinDir, name);
    if (!existsSync(pin)) continue;
    unlinkIfExists(pin);
    removed.push(name);
  }
  return removed;
}
