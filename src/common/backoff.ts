// Bounded exponential backoff with jitter, and an injectable clock so tests
// drive retries without waiting.

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  factor: number;
  /** 0..1: each delay is reduced by up to this fraction at random. */
  jitter: number;
  random?: () => number;
}

export class Backoff {
  private attempt = 0;
  readonly opts: BackoffOptions;

  constructor(opts: Partial<BackoffOptions> = {}) {
    this.opts = { initialMs: 200, maxMs: 10_000, factor: 2, jitter: 0.2, ...opts };
  }

  next(): number {
    const { initialMs, maxMs, factor, jitter } = this.opts;
    const base = Math.min(maxMs, initialMs * factor ** this.attempt);
    this.attempt++;
    const r = (this.opts.random ?? Math.random)();
    return Math.max(0, Math.round(base * (1 - jitter * r)));
  }

  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}
