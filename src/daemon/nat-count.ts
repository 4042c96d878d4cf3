// The NAT table's size for /metrics, counted in the background so that a
// scrape costs the same with 10 entries or 262,144: a scrape reads the last
// pass's result. A pass walks the map a slice at a time, one slice per
// event-loop turn, so the plugin's requests and the API watch are served
// between slices; passes start `intervalMs` after the previous one ended. The
// value therefore lags the map by at most intervalMs plus one pass (a full
// map's pass and its longest slice: test/bench/daemon-scrape.bench.ts), and
// /metrics says how old it is (bvcni_nat_entries_age_seconds).
import { realClock, type Clock } from '../common/backoff.js';

/** A resumable count of a map's entries (src/daemon/dataplane.ts). */
export interface EntryWalk {
  /** Counts the next slice; returns how many entries it held. */
  step(): number;
  readonly done: boolean;
}

export interface CountSnapshot {
  /** Entries found by the last complete pass; undefined before the first. */
  entries?: number;
  /** When that pass started (clock ms). */
  startedAt: number;
  /** How long it took (ms). */
  passMs: number;
}

export interface BackgroundCountOptions {
  /** A fresh walk over the map; undefined while there is no map (dataplane not attached). */
  open(): EntryWalk | undefined;
  intervalMs: number;
  clock?: Clock;
  /** Runs fn on a later event-loop turn (setImmediate; tests pass their own). */
  defer?: (fn: () => void) => void;
  onError?: (err: unknown) => void;
}

export class BackgroundCount {
  private snap: CountSnapshot = { startedAt: 0, passMs: 0 };
  private timer?: unknown;
  private running = false;
  private stopped = true;
  private readonly clock: Clock;
  private readonly defer: (fn: () => void) => void;
  /** Completed passes (for tests). */
  passes = 0;

  constructor(private readonly opts: BackgroundCountOptions) {
    this.clock = opts.clock ?? realClock;
    this.defer = opts.defer ?? ((fn) => void setImmediate(fn));
  }

  get snapshot(): CountSnapshot {
    return this.snap;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.pass();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Starts a pass now unless one is running (after a map was attached, say). */
  kick(): void {
    if (this.stopped || this.running) return;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.pass();
  }

  private pass(): void {
    if (this.stopped) return;
    let walk: EntryWalk | undefined;
    try {
      walk = this.opts.open();
    } catch (e) {
      this.opts.onError?.(e);
    }
    if (!walk) return this.schedule();
    this.running = true;
    const startedAt = this.clock.now();
    let n = 0;
    const slice = (): void => {
      if (this.stopped) {
        this.running = false;
        return;
      }
      try {
        n += walk.step();
      } catch (e) {
        this.running = false;
        this.opts.onError?.(e);
        return this.schedule();
      }
      if (!walk.done) return this.defer(slice);
      this.running = false;
      this.passes++;
      this.snap = { entries: n, startedAt, passMs: this.clock.now() - startedAt };
      this.schedule();
    };
    slice();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      this.pass();
    }, this.opts.intervalMs);
  }
}

/** A walk over any key iterator, `slice` keys a step (map types without batch lookup). */
export function keyWalk(keys: Iterator<unknown>, slice: number): EntryWalk {
  let done = false;
  return {
    get done() {
      return done;
    },
    step() {
      let n = 0;
      while (n < slice) {
        if (keys.next().done) {
          done = true;
          break;
        }
        n++;
      }
      return n;
    },
  };
}
