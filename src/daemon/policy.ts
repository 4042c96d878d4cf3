// NetworkPolicy in bvcnid (--network-policy; off by default until the dataplane
// enforces it): informers of Pods, Namespaces and NetworkPolicies, each object
// parsed once as it arrives (src/policy), and after every change — debounced,
// and only once all three have listed — this node's rule sets compiled again
// with stable identity numbers and kept in memory with the difference from the
// previous ones (what a map writer will apply: README, "NetworkPolicy").
// An object the API would refuse is skipped and logged once per version; the
// API server being away changes nothing (the informers keep their caches).
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { realClock, type Clock } from '../common/backoff.js';
import type { NodeLike } from '../kube/desired.js';
import { Informer, type ListWatchApi } from '../kube/informer.js';
import type { ObjectLike } from '../kube/client.js';
import {
  compileNode,
  diffNode,
  entryCount,
  IdentityAllocator,
  parseNamespace,
  parseNetworkPolicy,
  parseNode,
  parsePod,
  PolicyError,
  StateIndex,
  type CompiledNode,
  type Namespace,
  type NetworkPolicy,
  type NodeDiff,
  type Pod,
} from '../policy/index.js';

export interface PolicyApis {
  pods: ListWatchApi<ObjectLike>;
  namespaces: ListWatchApi<ObjectLike>;
  networkPolicies: ListWatchApi<ObjectLike>;
}

export interface PolicySyncOptions {
  nodeName: string;
  log: Logger;
  apis: PolicyApis;
  /** The Nodes bvcnid watches already (this node's addresses are the host identity). */
  nodes: () => readonly NodeLike[];
  clock?: Clock;
  /** Changes arriving within this window compile once (default 50 ms). */
  debounceMs?: number;
  idleTimeoutMs?: number;
  /** After each compilation, with what changed (the future map writer's input). */
  onCompiled?: (compiled: CompiledNode, diff: NodeDiff) => void;
}

const keyOf = (o: ObjectLike): string => (o.metadata?.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : (o.metadata?.name ?? ''));

export class PolicySync {
  private readonly pods = new Map<string, Pod>();
  private readonly namespaces = new Map<string, Namespace>();
  private readonly policies = new Map<string, NetworkPolicy>();
  /** Objects skipped as invalid, with the reason (logged once per resourceVersion). */
  readonly invalid = new Map<string, string>();
  private readonly informers: Informer<ObjectLike>[];
  private readonly allocator = new IdentityAllocator();
  private readonly clock: Clock;
  private timer: unknown;
  private stopped = true;
  /** The rule sets in force for this node's endpoints; null before the first compilation. */
  current: CompiledNode | null = null;
  lastDiff: NodeDiff | null = null;
  readonly stats = { compiles: 0, lastCompileMs: 0, changes: 0 };

  constructor(private readonly o: PolicySyncOptions) {
    this.clock = o.clock ?? realClock;
    const opts = { clock: this.clock, idleTimeoutMs: o.idleTimeoutMs };
    const handlers = <T>(store: Map<string, T>, parse: (raw: unknown) => T, kind: string) => ({
      add: (obj: ObjectLike) => this.put(store, parse, kind, obj),
      update: (obj: ObjectLike) => this.put(store, parse, kind, obj),
      delete: (obj: ObjectLike) => {
        store.delete(keyOf(obj));
        this.invalid.delete(`${kind} ${keyOf(obj)}`);
        this.changed();
      },
      synced: () => this.changed(),
      error: (err: unknown, ms: number) => this.o.log.warn({ kind, err: String(err), retryInMs: ms }, 'policy informer error'),
    });
    this.informers = [
      new Informer(o.apis.pods, handlers(this.pods, parsePod, 'Pod'), opts),
      new Informer(o.apis.namespaces, handlers(this.namespaces, parseNamespace, 'Namespace'), opts),
      new Informer(o.apis.networkPolicies, handlers(this.policies, parseNetworkPolicy, 'NetworkPolicy'), opts),
    ];
  }

  /** The three informers' counters (lists, watches, relists on 410, …): Pods, Namespaces, NetworkPolicies. */
  get informerStats(): Informer<ObjectLike>['stats'][] {
    return this.informers.map((i) => i.stats);
  }

  /** Every informer has listed once: the state is whole and a compilation means something. */
  get synced(): boolean {
    return this.informers.every((i) => i.listGeneration > 0);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    for (const i of this.informers) i.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    await Promise.all(this.informers.map((i) => i.stop()));
  }

  /** The Nodes changed: this node's addresses (its host identity) may have. */
  nodesChanged(): void {
    this.changed();
  }

  private put<T>(store: Map<string, T>, parse: (raw: unknown) => T, kind: string, obj: ObjectLike): void {
    const key = keyOf(obj);
    try {
      store.set(key, parse(obj));
      this.invalid.delete(`${kind} ${key}`);
    } catch (e) {
      if (!(e instanceof PolicyError)) throw e;
      // The API server would not have stored it; a stale or foreign cache might. Skipped, never half-applied.
      store.delete(key);
      const id = `${kind} ${key}`;
      if (this.invalid.get(id) !== e.message) this.o.log.warn({ kind, object: key, err: e.message }, 'skipping an invalid object');
      this.invalid.set(id, e.message);
    }
    this.changed();
  }

  private changed(): void {
    this.stats.changes++;
    if (this.stopped || this.timer !== undefined || !this.synced) return;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      if (!this.stopped) this.compile();
    }, this.o.debounceMs ?? 50);
  }

  /** Compiles this node's rule sets from the caches now (the debounce calls it; tests may too). */
  compile(): CompiledNode {
    const t0 = performance.now();
    const nodes = this.o.nodes().flatMap((n) => {
      try {
        return [parseNode(n)];
      } catch {
        return [];
      }
    });
    const idx = new StateIndex({
      namespaces: [...this.namespaces.values()],
      pods: [...this.pods.values()],
      policies: [...this.policies.values()],
      nodes,
    });
    const next = compileNode(idx, this.o.nodeName, { allocator: this.allocator });
    const diff = diffNode(this.current, next);
    this.current = next;
    this.lastDiff = diff;
    this.stats.compiles++;
    this.stats.lastCompileMs = performance.now() - t0;
    this.o.log.info(
      {
        pods: this.pods.size,
        namespaces: this.namespaces.size,
        policies: this.policies.size,
        invalid: this.invalid.size,
        endpoints: next.endpoints.size,
        entries: entryCount(next),
        identities: next.identities.size,
        changedEndpoints: diff.endpoints.size,
        ipcacheChanges: diff.ipcacheUpsert.length + diff.ipcacheDelete.length,
        ms: Math.round(this.stats.lastCompileMs),
      },
      'network policy compiled',
    );
    this.o.onCompiled?.(next, diff);
    return next;
  }
}
