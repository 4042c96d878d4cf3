// A supervised list+watch informer with an object cache: for Nodes (the tunnel
// map) and, with --network-policy, Pods, Namespaces and NetworkPolicies.
//
// client-node's own ListWatch stops for good on the first error that is not a
// 410 and never asks for bookmarks, so the daemon runs its own loop on the
// library's list call and Watch stream: relist on 410 (HTTP status or watch
// ERROR event) emitting deletes for objects that vanished, every event
// (BOOKMARK included) advancing the resourceVersion, bounded backoff with an
// injectable clock reset by any event, quiet dispatch (an update that does not
// change the resourceVersion is dropped), stop through one call.
//
// A watch that delivers nothing, not even a BOOKMARK (asked for with
// allowWatchBookmarks; a kube-apiserver sends one about every minute), for
// idleTimeoutMs is presumed dead: a server that hung, or a peer gone without a
// reset. It is aborted and resumed at once from its resourceVersion (a 410
// then relists, as always). `lastProgressAt` is when the API last answered
// usefully (a list, a watch opened, any event): the daemon's /healthz is
// built on it.
import { Backoff, realClock, type Clock } from '../common/backoff.js';
import type { NodeLike } from './desired.js';

/** What an informer needs of an object: its key (namespace/name, or name) and resourceVersion. */
export interface KubeObjectLike {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

export interface ListResult<T> {
  items: T[];
  resourceVersion: string;
}
export type NodeListResult = ListResult<NodeLike>;

export interface WatchHandle {
  abort(): void;
}

/** The two API calls an informer needs (client-node in production, a fake in unit tests). */
export interface ListWatchApi<T> {
  list(): Promise<ListResult<T>>;
  watch(
    resourceVersion: string,
    onEvent: (type: string, object: unknown) => void,
    onDone: (err: unknown) => void,
  ): Promise<WatchHandle>;
}
export type NodeApi = ListWatchApi<NodeLike>;

export interface InformerHandlers<T = NodeLike> {
  add?: (n: T) => void;
  update?: (n: T, old: T) => void;
  delete?: (n: T) => void;
  /** After every successful (re)list has been applied to the cache. */
  synced?: (generation: number) => void;
  error?: (err: unknown, willRetryInMs: number) => void;
  /** A watch stream opened (after a list or a reconnect). */
  connect?: () => void;
  /** A silent watch was aborted and is being resumed. */
  idle?: (silentMs: number) => void;
}

export function isGone(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { statusCode?: unknown; code?: unknown; body?: unknown };
  return e.statusCode === 410 || e.code === 410;
}

/** The cache key: namespace/name for namespaced objects, the name otherwise. */
const nameOf = (n: KubeObjectLike): string => (n.metadata?.namespace ? `${n.metadata.namespace}/${n.metadata.name ?? ''}` : (n.metadata?.name ?? ''));

export class Informer<T extends KubeObjectLike> {
  private readonly cache = new Map<string, T>();
  private rv = '';
  private stopped = true;
  private handle?: WatchHandle;
  private wake?: () => void;
  private loopDone?: Promise<void>;
  private generation = 0;
  readonly backoff: Backoff;
  private readonly clock: Clock;
  /** Counters for tests and metrics. */
  readonly stats = { lists: 0, watches: 0, relistsOnGone: 0, errors: 0, events: 0, bookmarks: 0, idleAborts: 0 };
  /** Clock ms of the last successful list, watch opened or watch event (BOOKMARK included); 0 before any. */
  lastProgressAt = 0;

  constructor(
    private readonly api: ListWatchApi<T>,
    private readonly handlers: InformerHandlers<T>,
    opts: {
      backoff?: Backoff;
      clock?: Clock;
      idleTimeoutMs?: number;
      /**
       * What the cache keeps of an object (default: all of it). Handlers still get
       * whole objects, except `old` of update and relist deletes, which get this.
       * NetworkPolicy keeps only metadata: its compiler holds the parsed form.
       */
      keep?: (n: T) => T;
    } = {},
  ) {
    this.keep = opts.keep ?? ((n) => n);
    this.backoff = opts.backoff ?? new Backoff();
    this.clock = opts.clock ?? realClock;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 11 * 60_000;
  }

  private readonly keep: (n: T) => T;

  /** See the header: a watch silent this long is aborted and resumed. */
  readonly idleTimeoutMs: number;

  /** By name, or namespace/name for namespaced objects. */
  get(name: string): T | undefined {
    return this.cache.get(name);
  }

  list(): T[] {
    return [...this.cache.values()];
  }

  get size(): number {
    return this.cache.size;
  }

  get resourceVersion(): string {
    return this.rv;
  }

  /** Number of lists applied so far (0 = never synced). */
  get listGeneration(): number {
    return this.generation;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.loopDone = this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.handle?.abort();
    this.handle = undefined;
    this.wake?.();
    await this.loopDone;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = this.clock.setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        this.clock.clearTimeout(t);
        this.wake = undefined;
        resolve();
      };
    });
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      try {
        if (!this.rv) await this.relist();
        if (this.stopped) break;
        const started = this.clock.now();
        const before = this.stats.events;
        const end = await this.watchOnce();
        if (end === 'gone') {
          this.stats.relistsOnGone++;
          this.rv = '';
          continue;
        }
        // Not an error: the restart the watchdog is for, at once.
        if (end === 'idle') continue;
        if (end !== 'closed') throw end;
        // A stream that ends at once with nothing in it must not turn into a busy loop.
        if (this.stats.events === before && this.clock.now() - started < 1000) await this.sleep(this.backoff.next());
      } catch (err) {
        if (this.stopped) break;
        if (isGone(err)) {
          this.stats.relistsOnGone++;
          this.rv = '';
          continue;
        }
        this.stats.errors++;
        const delay = this.backoff.next();
        this.safe(() => this.handlers.error?.(err, delay));
        await this.sleep(delay);
      }
    }
  }

  private async relist(): Promise<void> {
    const res = await this.api.list();
    if (this.stopped) return;
    this.stats.lists++;
    this.lastProgressAt = this.clock.now();
    this.backoff.reset();
    const fresh = new Map<string, T>();
    for (const n of res.items) fresh.set(nameOf(n), n);
    for (const [name, old] of [...this.cache]) {
      if (!fresh.has(name)) {
        this.cache.delete(name);
        this.safe(() => this.handlers.delete?.(old));
      }
    }
    for (const n of fresh.values()) this.upsert(n);
    this.rv = res.resourceVersion;
    this.generation++;
    const g = this.generation;
    this.safe(() => this.handlers.synced?.(g));
  }

  private upsert(n: T): void {
    const name = nameOf(n);
    const old = this.cache.get(name);
    if (!old) {
      this.cache.set(name, this.keep(n));
      this.safe(() => this.handlers.add?.(n));
    } else if (!(old.metadata?.resourceVersion && old.metadata.resourceVersion === n.metadata?.resourceVersion)) {
      this.cache.set(name, this.keep(n));
      this.safe(() => this.handlers.update?.(n, old));
    }
  }

  /** Resolves with 'closed' (clean end), 'gone' (410), 'idle' (aborted as silent) or the error that ended the stream. */
  private watchOnce(): Promise<'closed' | 'gone' | 'idle' | unknown> {
    return new Promise((resolve) => {
      let gone = false;
      let settled = false;
      let idle: unknown;
      const armIdle = (): void => {
        if (idle !== undefined) this.clock.clearTimeout(idle);
        idle = this.clock.setTimeout(() => {
          this.stats.idleAborts++;
          const h = this.handle;
          finish('idle');
          h?.abort();
          this.safe(() => this.handlers.idle?.(this.idleTimeoutMs));
        }, this.idleTimeoutMs);
      };
      const finish = (v: unknown): void => {
        if (settled) return;
        settled = true;
        if (idle !== undefined) this.clock.clearTimeout(idle);
        this.handle = undefined;
        resolve(v);
      };
      const onEvent = (type: string, object: unknown): void => {
        if (this.stopped || settled) return;
        armIdle();
        const obj = object as T & { code?: number };
        if (type === 'ERROR') {
          if (obj?.code === 410) gone = true;
          else finish(Object.assign(new Error(`watch ERROR event: ${JSON.stringify(object)}`), { code: obj?.code }));
          return;
        }
        // An ERROR is an answer but no progress: the relist or the retry that follows may be.
        this.lastProgressAt = this.clock.now();
        this.stats.events++;
        this.backoff.reset();
        if (type === 'ADDED' || type === 'MODIFIED') this.upsert(obj);
        else if (type === 'DELETED') {
          const name = nameOf(obj);
          const old = this.cache.get(name);
          if (old) {
            this.cache.delete(name);
            this.safe(() => this.handlers.delete?.(obj));
          }
        } else if (type === 'BOOKMARK') this.stats.bookmarks++;
        const rv = obj?.metadata?.resourceVersion;
        if (rv) this.rv = rv;
      };
      const onDone = (err: unknown): void => {
        if (gone) return finish('gone');
        if (err === null || err === undefined) return finish('closed');
        finish(err);
      };
      this.stats.watches++;
      armIdle();
      this.api.watch(this.rv, onEvent, onDone).then(
        (h) => {
          if (settled || this.stopped) h.abort();
          else {
            this.handle = h;
            this.lastProgressAt = this.clock.now();
            this.safe(() => this.handlers.connect?.());
          }
          if (this.stopped) finish('closed');
        },
        (err) => finish(err),
      );
    });
  }

  private safe(fn: () => void): void {
    try {
      fn();
    } catch {
      // A failing handler must not stop the informer; handlers log their own errors.
    }
  }
}

/** The daemon's informer of Nodes (the tunnel map). */
export class NodeInformer extends Informer<NodeLike> {}
