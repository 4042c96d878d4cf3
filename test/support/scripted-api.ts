// A scripted Node API and a manual clock for the daemon's unit tests: the
// informer and the daemon's health run against them with no sockets and no
// waits.
import type { Clock } from '../../src/common/backoff.js';
import type { NodeApi, NodeListResult } from '../../src/kube/informer.js';
import type { NodeLike } from '../../src/kube/desired.js';

export class ManualClock implements Clock {
  t = 0;
  private timers = new Map<number, { at: number; fn: () => void }>();
  private seq = 0;
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.timers.delete(h as number);
  }
  /** Delays of the pending timers, soonest first. */
  pending(): number[] {
    return [...this.timers.values()].map((x) => x.at - this.t).sort((a, b) => a - b);
  }
  async advance(ms: number): Promise<void> {
    this.t += ms;
    for (const [id, x] of [...this.timers]) {
      if (x.at <= this.t) {
        this.timers.delete(id);
        x.fn();
      }
    }
    await flush();
  }
}

export const flush = async (): Promise<void> => {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
};

/**
 * Flushes until `cond` holds, or gives up after `rounds` flushes: for a step
 * that may wait on real I/O (a file the daemon reads), which ten turns of the
 * event loop do not always cover on a loaded machine. The caller still asserts.
 */
export const flushUntil = async (cond: () => boolean, rounds = 200): Promise<void> => {
  for (let i = 0; i < rounds && !cond(); i++) await flush();
};

export const node = (name: string, rv: string): NodeLike => ({ metadata: { name, resourceVersion: rv }, spec: { podCIDR: '10.244.1.0/24' } });

export interface OpenWatch {
  rv: string;
  emit(type: string, obj: unknown): void;
  end(err: unknown): void;
  aborted: boolean;
}

export class ScriptedApi implements NodeApi {
  lists: (NodeListResult | Error)[] = [];
  listCalls = 0;
  watches: OpenWatch[] = [];
  watchFailures: Error[] = [];
  async list(): Promise<NodeListResult> {
    this.listCalls++;
    const next = this.lists.shift();
    if (!next) throw new Error('no list scripted');
    if (next instanceof Error) throw next;
    return next;
  }
  async watch(rv: string, onEvent: (t: string, o: unknown) => void, onDone: (e: unknown) => void): Promise<{ abort(): void }> {
    const f = this.watchFailures.shift();
    if (f) {
      onDone(f);
      return { abort() {} };
    }
    const w: OpenWatch = { rv, emit: onEvent, end: onDone, aborted: false };
    this.watches.push(w);
    return {
      abort: () => {
        w.aborted = true;
        onDone(Object.assign(new Error('aborted'), { name: 'AbortError' }));
      },
    };
  }
  get last(): OpenWatch {
    return this.watches.at(-1)!;
  }
}

