// NetworkPolicy in bvcnid (--network-policy): informers of Pods, Namespaces and
// NetworkPolicies, each object parsed once as it arrives (src/policy) and fed
// to the incremental compiler; after every change (debounced) this node's
// rule sets are brought up to date, recomputing only what the change can
// affect, and only the difference is written to the pinned maps.
//
// Writing (through PolicyMapsPort: the pinned maps, or a fake in tests):
// - level-triggered: the first write after start, and the first after a
//   failed one, reads what the maps hold and writes the difference from
//   that (a restarted bvcnid finds its previous life's entries), and takes
//   back the identity numbers the pinned ipcache holds so nothing churns;
// - never more permissive than the old or the new state: an endpoint that
//   loses its rules is marked pending (fail closed) before its entries go;
//   one that gains them gets its entries first, then its identity, isolation
//   flags and the pending flag cleared in one write;
// - an endpoint the plugin registered (ENDPOINT_F_POLICY_PENDING while
//   enforcement is on) stays pending until its Pod is known: by namespace and
//   name from the ADD bvcnid served (CNI_ARGS K8S_POD_NAMESPACE/K8S_POD_NAME;
//   the Pod's status.podIP comes only after the ADD), or by status.podIP;
// - a failed write is logged, counted and retried with backoff.
// An object the API would refuse is skipped and logged once per version; the
// API server being away changes nothing (the informers keep their caches).
import { collectGarbage } from '../common/gc.js';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { Backoff, realClock, type Clock } from '../common/backoff.js';
import type { NodeLike } from '../kube/desired.js';
import { Informer, type ListWatchApi } from '../kube/informer.js';
import type { ObjectLike } from '../kube/client.js';
import {
  diffNode,
  IncrementalCompiler,
  parseNamespace,
  parseNetworkPolicy,
  parseNode,
  parsePod,
  PolicyError,
  type CompiledNode,
  type EndpointPolicy,
  type IpCacheEntry,
  type NodeDiff,
  type Pod,
  type PolicyEntry,
} from '../policy/index.js';

export interface PolicyApis {
  pods: ListWatchApi<ObjectLike>;
  namespaces: ListWatchApi<ObjectLike>;
  networkPolicies: ListWatchApi<ObjectLike>;
}

/** The policy-related state of one endpoint entry (bvcni_endpoints). */
export interface EndpointPolicyState {
  identity: number;
  pending: boolean;
  ingressIsolated: boolean;
  egressIsolated: boolean;
}

/** What the maps hold of NetworkPolicy: the ipcache and each endpoint's entries. */
export interface PinnedPolicy {
  ipcache: IpCacheEntry[];
  endpoints: Map<string, { ingress: PolicyEntry[]; egress: PolicyEntry[] }>;
}

/** Where bvcnid writes NetworkPolicy: the pinned maps (policy-maps.ts), or an in-memory fake in tests. */
export interface PolicyMapsPort {
  read(): PinnedPolicy;
  /** Writes ipcache changes and endpoints' entry additions and removals. */
  apply(diff: NodeDiff): void;
  /** The endpoint map's entries (pod IP -> state): the plugin creates and deletes them. */
  endpoints(): Map<string, EndpointPolicyState>;
  /** Rewrites an existing entry's identity and policy flags; false when the entry is gone. */
  setEndpoint(ip: string, s: EndpointPolicyState): boolean;
  /** After each flush's writes: close what was opened for them. */
  release?(): void;
}

/** The maps are not pinned (yet): the dataplane is being set up. Not a write error: the write waits. */
export class PolicyMapsAbsent extends Error {
  constructor(what: string) {
    super(`${what} not pinned yet`);
    this.name = 'PolicyMapsAbsent';
  }
}

export interface PolicyMetricsSink {
  syncDuration?: { observe(v: number): void };
  writes?: { inc(labels: { op: string }, v?: number): void };
  writeErrors?: { inc(): void };
}

export interface PolicySyncOptions {
  nodeName: string;
  log: Logger;
  apis: PolicyApis;
  /** The Nodes bvcnid watches already (this node's addresses are the host identity). */
  nodes: () => readonly NodeLike[];
  /** Where to write; none: compute only (the maps are absent, or a test). */
  maps?: PolicyMapsPort;
  metrics?: PolicyMetricsSink;
  clock?: Clock;
  /** Changes arriving within this window compile once (default 20 ms). */
  debounceMs?: number;
  idleTimeoutMs?: number;
  /** After each compilation, with the compiled node (a snapshot: costly at scale) and what changed. */
  onCompiled?: (compiled: CompiledNode, diff: NodeDiff) => void;
}

/**
 * An object as the policy informers carry it: its key and resourceVersion, and
 * its parsed form (or why it is invalid), made as each list page or watch event
 * is read, so a list of 100,000 Pods never holds their JSON-shaped copies.
 */
export interface Preparsed extends ObjectLike {
  parsed?: unknown;
  invalid?: PolicyError;
}

/** The slimming step of a policy informer: `slim` first (what the API client keeps), then parse. */
export function preparse<T>(slim: (o: ObjectLike) => ObjectLike, parse: (raw: unknown) => T): (o: ObjectLike) => Preparsed {
  return (o) => {
    const metadata = { name: o.metadata?.name, namespace: o.metadata?.namespace, resourceVersion: o.metadata?.resourceVersion };
    try {
      return { metadata, parsed: parse(slim(o)) };
    } catch (e) {
      if (e instanceof PolicyError) return { metadata, invalid: e };
      throw e;
    }
  };
}

/** The parsed form an informer carried (preparse), or a parse of the raw object. */
function parsedOf<T>(raw: unknown, parse: (raw: unknown) => T): T {
  const p = raw as Preparsed;
  if (p.invalid) throw p.invalid;
  return p.parsed !== undefined ? (p.parsed as T) : parse(raw);
}

const keyOf = (o: ObjectLike): string => (o.metadata?.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : (o.metadata?.name ?? ''));

/** PolicySync.lastChange: one compile's difference, counted. */
export interface PolicyChange {
  /** Endpoints (IPs) whose tables or isolation changed, deleted ones included. */
  readonly endpoints: readonly string[];
  readonly ipcacheUpserts: number;
  readonly ipcacheDeletes: number;
  /** Diffed against the maps as read (start, or after a failed write), not against the last compile. */
  readonly full: boolean;
}

export class PolicySync {
  /** Objects skipped as invalid, with the reason (logged once per resourceVersion). */
  readonly invalid = new Map<string, string>();
  private readonly informers: Informer<ObjectLike>[];
  readonly compiler: IncrementalCompiler;
  private readonly clock: Clock;
  private timer: unknown;
  private stopped = true;
  /** Pods whose address bvcnid learnt from the ADD it served, before status.podIP: "ns/name" -> IP. */
  private readonly addedIps = new Map<string, string>();
  /** The informer's Pod for those (the compiler holds the one with the ADD's address). */
  private readonly addedOriginal = new Map<string, Pod>();
  /** The next write reads the maps first (start, or after a failed write). */
  private needFullSync = true;
  private readonly retry = new Backoff({ initialMs: 200, maxMs: 10_000 });
  /**
   * What the last compile changed, in brief. Not its diff: that goes once it is
   * written (the first one holds every ipcache entry, 100,000 at scale, as
   * objects of their own, until the next compile replaced it).
   */
  lastChange: PolicyChange | null = null;
  readonly stats = { compiles: 0, lastCompileMs: 0, changes: 0, writes: 0, writeErrors: 0, fullSyncs: 0, lastWriteAt: 0 };

  constructor(private readonly o: PolicySyncOptions) {
    this.clock = o.clock ?? realClock;
    this.compiler = new IncrementalCompiler(o.nodeName);
    // The compiler holds each object's parsed form: the informers keep only what they need (key, resourceVersion).
    const keep = (obj: ObjectLike): ObjectLike => ({
      metadata: { name: obj.metadata?.name, namespace: obj.metadata?.namespace, resourceVersion: obj.metadata?.resourceVersion },
    });
    const opts = { clock: this.clock, idleTimeoutMs: o.idleTimeoutMs, keep };
    const c = this.compiler;
    const handlers = (kind: string, set: (raw: unknown) => void, del: (obj: ObjectLike) => void) => ({
      add: (obj: ObjectLike) => this.put(kind, obj, set),
      update: (obj: ObjectLike) => this.put(kind, obj, set),
      delete: (obj: ObjectLike) => {
        del(obj);
        this.invalid.delete(`${kind} ${keyOf(obj)}`);
        this.changed();
      },
      synced: () => this.changed(),
      error: (err: unknown, ms: number) => this.o.log.warn({ kind, err: String(err), retryInMs: ms }, 'policy informer error'),
    });
    const ns = (o: ObjectLike): string => o.metadata?.namespace ?? '';
    const name = (o: ObjectLike): string => o.metadata?.name ?? '';
    this.informers = [
      new Informer(
        o.apis.pods,
        handlers('Pod', (raw) => this.setPod(parsedOf(raw, parsePod)), (obj) => {
          const key = keyOf(obj);
          this.addedIps.delete(key);
          this.addedOriginal.delete(key);
          c.deletePod(ns(obj), name(obj));
        }),
        opts,
      ),
      new Informer(o.apis.namespaces, handlers('Namespace', (raw) => c.setNamespace(parsedOf(raw, parseNamespace)), (obj) => c.deleteNamespace(name(obj))), opts),
      new Informer(
        o.apis.networkPolicies,
        handlers('NetworkPolicy', (raw) => c.setPolicy(parsedOf(raw, parseNetworkPolicy)), (obj) => c.deletePolicy(ns(obj), name(obj))),
        opts,
      ),
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

  /** The rule sets in force for this node's endpoints; null before the first compilation. */
  get current(): CompiledNode | null {
    return this.stats.compiles > 0 ? this.compiler.snapshot() : null;
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

  /**
   * bvcnid served the ADD of a pod (CNI_ARGS named it): its rules are computed
   * and written now, before the plugin answers, so the pod never runs without
   * them. Returns whether they were (false: the Pod is not known yet, or
   * nothing is synced; the endpoint stays pending until it is).
   */
  endpointAdded(namespace: string, name: string, ip: string): boolean {
    const key = `${namespace}/${name}`;
    this.addedIps.set(key, ip);
    const pod = this.compiler.getPod(namespace, name);
    if (pod) this.setPod(this.addedOriginal.get(key) ?? pod);
    if (!this.synced || this.stopped) return false;
    this.flushNow();
    const ep = this.compiler.endpoint(ip);
    return ep !== undefined && ep.namespace === namespace && ep.name === name && this.stats.writeErrors === this.writeErrorsAtFlush;
  }

  /** bvcnid served a DEL: the ADD's address no longer belongs to the pod. */
  endpointDeleted(namespace: string, name: string): void {
    const key = `${namespace}/${name}`;
    if (!this.addedIps.delete(key)) return;
    const orig = this.addedOriginal.get(key);
    this.addedOriginal.delete(key);
    if (orig) {
      this.compiler.setPod(orig);
      this.changed();
    }
  }

  private writeErrorsAtFlush = 0;
  private waitingLogged = false;

  /** The Pod as the compiler should see it: with the ADD's address while status.podIP is not there yet. */
  private setPod(pod: Pod): void {
    const key = `${pod.namespace}/${pod.name}`;
    const ip = this.addedIps.get(key);
    if (ip !== undefined && pod.ip === null && !pod.hostNetwork) {
      this.addedOriginal.set(key, pod);
      this.compiler.setPod({ ...pod, ip, nodeName: pod.nodeName ?? this.o.nodeName });
      return;
    }
    if (ip !== undefined && pod.ip !== null) {
      // The kubelet reported the address: the Pod speaks for itself from now on.
      this.addedIps.delete(key);
      this.addedOriginal.delete(key);
    }
    this.compiler.setPod(pod);
  }

  private put(kind: string, obj: ObjectLike, set: (raw: unknown) => void): void {
    const key = keyOf(obj);
    try {
      set(obj);
      this.invalid.delete(`${kind} ${key}`);
    } catch (e) {
      if (!(e instanceof PolicyError)) throw e;
      // The API server would not have stored it; a stale or foreign cache might. Skipped, never half-applied.
      const ns = obj.metadata?.namespace ?? '';
      const name = obj.metadata?.name ?? '';
      if (kind === 'Pod') this.compiler.deletePod(ns, name);
      else if (kind === 'Namespace') this.compiler.deleteNamespace(name);
      else this.compiler.deletePolicy(ns, name);
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
      if (!this.stopped) this.flushNow();
    }, this.o.debounceMs ?? 20);
  }

  /** Brings the compiled state and the maps up to date now (the debounce calls it; tests may too). */
  compile(): CompiledNode {
    this.flushNow();
    return this.compiler.snapshot();
  }

  private flushNow(): void {
    if (this.timer !== undefined) {
      this.clock.clearTimeout(this.timer);
      this.timer = undefined;
    }
    const t0 = performance.now();
    const nodes = this.o.nodes().flatMap((n) => {
      try {
        return [parseNode(n)];
      } catch {
        return [];
      }
    });
    this.compiler.setNodes(nodes);
    const maps = this.o.maps;
    let pinned: PinnedPolicy | undefined;
    if (maps && this.needFullSync) {
      try {
        pinned = maps.read();
        // Identity numbers from the previous life (or the last successful write): nothing renumbers.
        if (this.stats.compiles === 0) this.compiler.adoptPinned(pinned.ipcache);
      } catch (e) {
        this.writeFailed(e, 'reading the policy maps');
      }
    }
    // The lists' garbage goes before the first compile allocates its own on top (bvcnid's peak RSS).
    if (this.stats.compiles === 0) collectGarbage();
    const r = this.compiler.flush();
    const compileMs = performance.now() - t0;
    this.stats.compiles++;
    this.stats.lastCompileMs = compileMs;
    this.writeErrorsAtFlush = this.stats.writeErrors;
    let diff = r.diff;
    if (maps && (pinned || !this.needFullSync)) {
      if (pinned) diff = diffNode(pinnedAsCompiled(pinned, this.o.nodeName), this.compiler.snapshot());
      this.write(maps, diff, pinned !== undefined);
    }
    maps?.release?.();
    this.lastChange = {
      endpoints: [...diff.endpoints.keys()],
      ipcacheUpserts: diff.ipcacheUpsert.length,
      ipcacheDeletes: diff.ipcacheDelete.length,
      full: pinned !== undefined,
    };
    const changedSomething = diff.endpoints.size + diff.ipcacheUpsert.length + diff.ipcacheDelete.length > 0;
    const ms = performance.now() - t0;
    this.o.metrics?.syncDuration?.observe(ms / 1000);
    this.o.log[changedSomething || this.stats.compiles === 1 ? 'info' : 'debug'](
      {
        pods: this.compiler.podCount,
        namespaces: this.compiler.namespaceCount,
        policies: this.compiler.policyCount,
        invalid: this.invalid.size,
        endpoints: this.compiler.endpointMap.size,
        entries: [...this.compiler.endpointMap.values()].reduce((n, ep) => n + ep.ingress.entries.length + ep.egress.entries.length, 0),
        identities: this.compiler.identityCount,
        changedEndpoints: diff.endpoints.size,
        ipcacheChanges: diff.ipcacheUpsert.length + diff.ipcacheDelete.length,
        recomputed: r.work,
        full: pinned !== undefined,
        compileMs: Math.round(compileMs),
        ms: Math.round(ms),
      },
      'network policy compiled',
    );
    this.o.onCompiled?.(this.compiler.snapshot(), diff);
  }

  /** Endpoints first fail closed if they lose their rules, then the entries, then identities and flags. */
  private write(maps: PolicyMapsPort, diff: NodeDiff, full: boolean): void {
    try {
      const entries = maps.endpoints();
      const compiled = this.compiler.endpointMap;
      let flagWrites = 0;
      for (const [ip, s] of entries) {
        if (compiled.has(ip) || s.pending) continue;
        if (maps.setEndpoint(ip, { ...s, pending: true })) flagWrites++;
      }
      maps.apply(diff);
      for (const [ip, s] of entries) {
        const ep = compiled.get(ip);
        if (!ep) continue;
        const want = desiredState(ep);
        if (s.identity === want.identity && s.pending === want.pending && s.ingressIsolated === want.ingressIsolated && s.egressIsolated === want.egressIsolated)
          continue;
        if (maps.setEndpoint(ip, want)) flagWrites++;
      }
      const n = diff.ipcacheUpsert.length + diff.ipcacheDelete.length;
      let adds = 0;
      let removes = 0;
      for (const d of diff.endpoints.values())
        if (d !== 'deleted') {
          adds += d.ingress.add.length + d.egress.add.length;
          removes += d.ingress.remove.length + d.egress.remove.length;
        }
      if (n) this.o.metrics?.writes?.inc({ op: 'ipcache' }, n);
      if (adds) this.o.metrics?.writes?.inc({ op: 'policy_add' }, adds);
      if (removes) this.o.metrics?.writes?.inc({ op: 'policy_remove' }, removes);
      if (flagWrites) this.o.metrics?.writes?.inc({ op: 'endpoint' }, flagWrites);
      this.stats.writes++;
      this.stats.lastWriteAt = Date.now();
      if (full) this.stats.fullSyncs++;
      this.needFullSync = false;
      this.retry.reset();
    } catch (e) {
      this.writeFailed(e, 'writing the policy maps');
    }
  }

  private writeFailed(e: unknown, what: string): void {
    this.needFullSync = true;
    let delay: number;
    if (e instanceof PolicyMapsAbsent) {
      // bvcnid's own set-up pins them: wait for it, quietly.
      delay = 500;
      if (!this.waitingLogged) this.o.log.info({ reason: e.message }, 'waiting for the dataplane before writing NetworkPolicy');
      this.waitingLogged = true;
    } else {
      this.stats.writeErrors++;
      this.o.metrics?.writeErrors?.inc();
      delay = this.retry.next();
      this.o.log.error({ err: String((e as Error)?.message ?? e), retryInMs: delay }, `${what} failed; retrying from what the maps hold`);
    }
    if (this.stopped) return;
    const t = this.clock.setTimeout(() => {
      if (!this.stopped) this.flushNow();
    }, delay);
    void t;
  }

  /** Every local endpoint by IP: its Pod and the policies isolating it per direction (GET /endpoints, for `bvcnictl monitor`). */
  endpointNames(): EndpointNames {
    const out: EndpointNames = {};
    for (const [ip, ep] of this.compiler.endpointMap) {
      const pod = this.compiler.getPod(ep.namespace, ep.name);
      out[ip] = {
        pod: `${ep.namespace}/${ep.name}`,
        ingress: pod && ep.ingress.isolated ? this.compiler.isolatingPolicies(pod, 'ingress') : [],
        egress: pod && ep.egress.isolated ? this.compiler.isolatingPolicies(pod, 'egress') : [],
      };
    }
    return out;
  }

  /** One endpoint's rules as compiled, by namespace/name, for `bvcnictl policy --pod` (null: not a local endpoint). */
  endpointOf(namespace: string, name: string): EndpointPolicy | null {
    const pod = this.compiler.getPod(namespace, name);
    if (!pod?.ip) return null;
    const ep = this.compiler.endpoint(pod.ip);
    return ep && ep.namespace === namespace && ep.name === name ? ep : null;
  }
}

/** GET /endpoints' body: pod IP -> NAMESPACE/NAME and the policies isolating it (empty: not isolated in that direction). */
export type EndpointNames = Record<string, { pod: string; ingress: string[]; egress: string[] }>;

export function desiredState(ep: EndpointPolicy): EndpointPolicyState {
  return { identity: ep.identity, pending: false, ingressIsolated: ep.ingress.isolated, egressIsolated: ep.egress.isolated };
}

/** The maps' content in the compiler's shape, so diffNode gives what to write to reach the compiled state. */
export function pinnedAsCompiled(p: PinnedPolicy, node: string): CompiledNode {
  const endpoints = new Map<string, EndpointPolicy>();
  for (const [ip, t] of p.endpoints)
    endpoints.set(ip, {
      ip,
      namespace: '',
      name: '',
      identity: 0,
      // Isolation flags are the endpoint entry's, rewritten by write() whatever this says.
      ingress: { isolated: t.ingress.length > 0, entries: t.ingress },
      egress: { isolated: t.egress.length > 0, entries: t.egress },
    });
  return { node, identities: new Map(), ipcache: p.ipcache, endpoints };
}
