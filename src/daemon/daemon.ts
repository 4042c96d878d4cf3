// bvcnid's life: wait for this node's podCIDR, set up (or adopt) the
// dataplane, install the plugin (only when given a CNI bin dir: in the
// DaemonSet an init container does it), write the conflist last, report the Node
// condition; then keep the tunnel map equal to what the Nodes say. The API
// server being away never changes the dataplane: entries are removed only on
// an observed delete or a fresh list.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { Backoff, realClock, type Clock } from '../common/backoff.js';
import { formatCidr, parseCidr, type Cidr } from '../common/cidr.js';
import { computeDesired, sameTunnelInputs, type ParsedNode, type Skipped } from '../kube/desired.js';
import type { AttachedDataplane, DataplaneDriver, NodeDataplaneConfig } from './dataplane.js';
import { NodeInformer, type NodeApi } from '../kube/informer.js';
import { installPlugin, removeConflist, writeConflist } from '../kube/install.js';
import type { NodeLike } from '../kube/desired.js';
import { describeApiError, type ConditionPatcher } from '../kube/client.js';
import type { DaemonMetrics } from './metrics.js';
import { TunnelReconciler } from './reconcile.js';
import { BackgroundCount } from './nat-count.js';
import { Defaults } from '../common/defaults.js';

export interface DaemonConfig {
  nodeName: string;
  iface: string;
  clusterCidr: string;
  /** Service ClusterIP range; '' disables the pass-through to kube-proxy. */
  serviceCidr?: string;
  pinDir: string;
  cniConfDir: string;
  /**
   * Where to install the plugin at set-up; '' installs nothing. The DaemonSet
   * passes none: its init container installs the plugin (`bvcnid --install-cni`)
   * and this process gets no writable /opt/cni/bin.
   */
  cniBinDir: string;
  stateDir: string;
  /** The program set's object directory (kernel.ts picks it); default: the dataplane's defaultObjDir(). */
  objDir?: string;
  bridge: string;
  vxlanDev: string;
  vxlanPort: number;
  vni: number;
  mtu?: number;
  /** The cgroup v2 root for the node's own hostPort sockets (--cgroup-root); default: the one mounted here. */
  cgroupRoot?: string;
  /** What pods get, --pod-device resolved against the kernel (kernel.ts, podDeviceGate); default veth. */
  podDevice?: 'veth' | 'netkit';
  /** The plugin binary to install (its support dir bvcni.d/ beside it comes too). */
  plugin: string;
  /** A watch silent (no event, no BOOKMARK) this long is restarted (--watch-idle-timeout). */
  watchIdleTimeoutMs?: number;
  /** /healthz fails when the API sync or the reconcile loop is stuck this long (--stuck-after; see live()). */
  stuckAfterMs?: number;
  /** Pause between two background counts of the NAT table (--nat-count-interval). */
  natCountIntervalMs?: number;
  /** --network-policy: the conflist tells the plugin to register endpoints fail-closed until bvcnid writes their rules. */
  networkPolicy?: boolean;
}

export const DAEMON_DEFAULTS = {
  watchIdleTimeoutMs: Defaults.watchIdleTimeoutMs,
  stuckAfterMs: Defaults.stuckAfterMs,
  natCountIntervalMs: Defaults.natCountIntervalMs,
} as const;

/**
 * NAT entries counted per event-loop turn by the background count: one batch
 * lookup syscall, a few milliseconds at most, so a CNI request waits at most
 * that long behind it (test/bench/daemon-scrape.bench.ts prints the longest).
 */
export const NAT_COUNT_SLICE = 4096;

export interface DaemonDeps {
  log: Logger;
  api: NodeApi;
  /** GET of one Node; undefined when it does not exist. */
  getNode(name: string): Promise<NodeLike | undefined>;
  patcher: ConditionPatcher;
  dataplane: DataplaneDriver;
  metrics: DaemonMetrics;
  clock?: Clock;
  /** After the Node cache changed in what the tunnel map reads (NetworkPolicy reads this node's addresses too). */
  nodesChanged?: () => void;
}

type Phase = 'starting' | 'waiting-for-podcidr' | 'setting-up' | 'running' | 'stopping';

export class Daemon {
  private phase: Phase = 'starting';
  private readonly informer: NodeInformer;
  private readonly clusterCidr: Cidr;
  private dp?: AttachedDataplane;
  /** The uplink in use: --iface, or found from the InternalIP at each set-up. */
  private uplink = '';
  private reconciler?: TunnelReconciler;
  private self?: ParsedNode;
  private reconcileQueued = false;
  private reconciledGeneration = 0;
  private conflistWritten = false;
  private conditionSet = false;
  private readonly loggedBad = new Map<string, string>();
  private waitingLoggedAt = -Infinity;
  private setupBackoff = new Backoff({ initialMs: 500, maxMs: 30_000 });
  private conditionBackoff = new Backoff({ initialMs: 500, maxMs: 30_000 });
  private timers = new Set<unknown>();
  private readonly clock: Clock;
  private readonly log: Logger;
  /** Milliseconds since epoch of the last reconcile that changed the map (for tests and metrics). */
  lastChangeAt = 0;
  reconciles = 0;
  /** Clock ms of the last API answer outside the informer (this Node's GET, the condition PATCH). */
  private apiAnsweredAt = 0;
  /** Clock ms since which a reconcile has been wanted and not done; undefined when none is pending. */
  private reconcilePendingSince?: number;
  /** Clock ms when the current dataplane set-up began; undefined when none runs. */
  private setupSince?: number;
  private readonly startedAt: number;
  private readonly stuckAfterMs: number;
  readonly natCount: BackgroundCount;
  /** The object directory the next set-up loads (useObjects() changes it). */
  private objDir?: string;

  constructor(
    readonly cfg: DaemonConfig,
    private readonly deps: DaemonDeps,
  ) {
    this.clusterCidr = parseCidr(cfg.clusterCidr, { what: '--cluster-cidr', strict: true });
    this.clock = deps.clock ?? realClock;
    this.log = deps.log;
    this.startedAt = this.clock.now();
    this.stuckAfterMs = cfg.stuckAfterMs ?? DAEMON_DEFAULTS.stuckAfterMs;
    this.objDir = cfg.objDir;
    this.informer = new NodeInformer(deps.api, {
      add: () => (this.changed(), deps.nodesChanged?.()),
      update: (n, old) => {
        if (!sameTunnelInputs(n, old)) (this.changed(), deps.nodesChanged?.());
      },
      delete: () => (this.changed(), deps.nodesChanged?.()),
      synced: (g) => {
        deps.nodesChanged?.();
        deps.metrics.relists.inc();
        this.log.info({ generation: g, nodes: this.informer.size, resourceVersion: this.informer.resourceVersion }, 'node list synced');
        // A fresh list is when drift (entries written by someone else) is corrected.
        this.reconciler?.adopt();
        this.changed();
      },
      connect: () => this.log.debug({ resourceVersion: this.informer.resourceVersion }, 'node watch open'),
      idle: (ms) => {
        deps.metrics.watchRestarts.inc();
        this.log.info({ silentMs: ms, resourceVersion: this.informer.resourceVersion }, 'node watch silent (no event, no bookmark); resuming it');
      },
      error: (err, delay) => {
        const { code, message } = describeApiError(err);
        deps.metrics.apiErrors.inc({ op: 'list_watch', code });
        this.log.warn({ code, err: message, retryInMs: delay, keptEntries: this.reconciler?.size ?? 0 }, 'node list/watch failed; tunnel map kept as is');
      },
    }, { clock: this.clock, idleTimeoutMs: cfg.watchIdleTimeoutMs ?? DAEMON_DEFAULTS.watchIdleTimeoutMs });
    this.natCount = new BackgroundCount({
      open: () => this.dp?.natWalk(NAT_COUNT_SLICE),
      intervalMs: cfg.natCountIntervalMs ?? DAEMON_DEFAULTS.natCountIntervalMs,
      clock: this.clock,
      onError: (e) => this.log.warn({ err: String((e as Error)?.message ?? e) }, 'counting the NAT table failed; retrying'),
    });
    deps.metrics.setSources({
      drops: () => deps.dataplane.drops(cfg.pinDir),
      nat: () => {
        const s = this.natCount.snapshot;
        return s.entries === undefined ? undefined : { entries: s.entries, ageMs: this.clock.now() - s.startedAt };
      },
      // At scrape time: one directory of at most the podCIDR's size (253 names for a /24), not a map.
      ipam: () => this.ipamUsage(),
    });
  }

  start(): void {
    this.log.info({ config: this.cfg }, 'bvcnid starting');
    // A conflist left from before a reboot (bpffs is empty again) would let the
    // kubelet create pods before the dataplane exists; after a plain restart
    // (programs and maps still pinned) it stays, and pods keep being created.
    if (!this.deps.dataplane.ready(this.cfg.pinDir)) {
      const removed = removeConflist(this.cfg.cniConfDir);
      if (removed) this.log.warn({ conflist: removed }, 'dataplane not loaded: removed the conflist until it is');
    }
    this.phase = 'waiting-for-podcidr';
    this.natCount.start();
    void this.waitForSelf();
  }

  get state(): Phase {
    return this.phase;
  }

  /**
   * Liveness, for the kubelet's probe (which restarts bvcnid; a restart adopts
   * the pinned dataplane and never touches traffic). Not live while stopping,
   * or when stuck for stuckAfterMs:
   * - the API sync: no API answer that moves it on (a list, a watch opened, a
   *   watch event or BOOKMARK, this Node's GET, the condition PATCH) since
   *   then. On a healthy quiet cluster the watch delivers bookmarks, or is
   *   restarted after --watch-idle-timeout without them, and either is
   *   progress; errors, refusals and requests that time out are not. So a
   *   hung server, and an API outage as long, turn /healthz to 503;
   * - the reconcile loop: a reconcile wanted since then and not done (a
   *   blocked event loop does not answer the probe at all);
   * - the dataplane set-up: one call of it running that long.
   * Waiting for a podCIDR that has not been allocated is not stuck.
   */
  live(): { live: boolean; reason: string } {
    if (this.phase === 'stopping') return { live: false, reason: 'stopping' };
    const now = this.clock.now();
    const bound = this.stuckAfterMs;
    const lastApi = Math.max(this.startedAt, this.apiAnsweredAt, this.informer.lastProgressAt);
    if (now - lastApi > bound) return { live: false, reason: `API sync stuck: no list, watch progress or answer for ${Math.round((now - lastApi) / 1000)} s` };
    if (this.reconcilePendingSince !== undefined && now - this.reconcilePendingSince > bound)
      return { live: false, reason: `reconcile loop stuck: a reconcile pending for ${Math.round((now - this.reconcilePendingSince) / 1000)} s` };
    if (this.setupSince !== undefined && now - this.setupSince > bound)
      return { live: false, reason: `dataplane set-up stuck for ${Math.round((now - this.setupSince) / 1000)} s` };
    return { live: true, reason: 'ok' };
  }

  ready(): { ready: boolean; reason: string } {
    if (this.phase !== 'running') return { ready: false, reason: this.phase };
    if (!this.deps.dataplane.ready(this.cfg.pinDir)) return { ready: false, reason: 'dataplane not attached' };
    if (this.reconciledGeneration < this.informer.listGeneration || this.reconciledGeneration === 0)
      return { ready: false, reason: 'tunnel map not synced since the last list' };
    if (!this.conflistWritten) return { ready: false, reason: 'conflist not written' };
    return { ready: true, reason: 'ok' };
  }

  private changed(): void {
    if (this.phase !== 'running') return;
    this.reconcilePendingSince ??= this.clock.now();
    if (this.reconcileQueued) return;
    // Coalesce: a list of 5,000 Nodes or a burst of watch events is one reconcile.
    this.reconcileQueued = true;
    setImmediate(() => {
      this.reconcileQueued = false;
      this.reconcile();
    });
  }

  /**
   * This node's own Node first, by a plain GET: the dataplane is set up from
   * it before the (possibly large) list of every Node starts, so the first
   * sync only has to fill the tunnel map.
   */
  private async waitForSelf(): Promise<void> {
    const backoff = new Backoff({ initialMs: 500, maxMs: 10_000 });
    while (this.phase === 'waiting-for-podcidr') {
      let delay = 2000;
      try {
        const n = await this.deps.getNode(this.cfg.nodeName);
        this.apiAnsweredAt = this.clock.now();
        if (this.phase !== 'waiting-for-podcidr') return;
        backoff.reset();
        const d = n ? computeDesired([n], this.cfg.nodeName, this.clusterCidr) : undefined;
        if (d?.self) {
          this.self = d.self;
          this.phase = 'setting-up';
          await this.setup();
          return;
        }
        const now = this.clock.now();
        if (now - this.waitingLoggedAt > 30_000) {
          this.waitingLoggedAt = now;
          this.log.info(
            { node: this.cfg.nodeName, problem: n ? d?.selfProblem : 'Node object not found' },
            n ? 'waiting for this node to have a podCIDR and an InternalIP' : "waiting for this node's Node object",
          );
        }
      } catch (e) {
        const { code, message } = describeApiError(e);
        this.deps.metrics.apiErrors.inc({ op: 'get_node', code });
        delay = backoff.next();
        this.log.warn({ code, err: message, retryInMs: delay }, "cannot read this node's Node object; retrying");
      }
      await new Promise<void>((r) => this.after(delay, r));
    }
  }

  private dataplaneConfig(): NodeDataplaneConfig {
    const self = this.self!;
    return {
      pinDir: this.cfg.pinDir,
      bridge: this.cfg.bridge,
      vxlanDev: this.cfg.vxlanDev,
      vxlanPort: this.cfg.vxlanPort,
      vni: this.cfg.vni,
      uplink: this.uplink,
      nodeIp: self.internalIp,
      podCidr: formatCidr(self.podCidr),
      clusterCidr: formatCidr(this.clusterCidr),
      ...(this.cfg.serviceCidr !== undefined ? { serviceCidr: this.cfg.serviceCidr } : {}),
      ...(this.cfg.mtu ? { mtu: this.cfg.mtu } : {}),
      ...(this.objDir ? { objDir: this.objDir } : {}),
      ...(this.cfg.cgroupRoot !== undefined ? { cgroup: this.cfg.cgroupRoot } : {}),
    };
  }

  /**
   * Loads another build of the programs (the conntrack set once conntrack appears:
   * conntrack-watch.ts). The same in-place set-up an upgrade does: programs replaced
   * at the same tc handle, pods' programs too, pinned maps kept, no flow reset.
   */
  useObjects(dir: string): void {
    if (dir === this.objDir) return;
    this.log.info({ was: this.objDir, now: dir }, 'loading another program set in place');
    this.objDir = dir;
    // A set-up under way (or yet to come) picks it up: setup() checks when it is done.
    if (this.phase !== 'running') return;
    this.phase = 'setting-up';
    this.dp?.close();
    this.dp = undefined;
    this.reconciler = undefined;
    void this.setup();
  }

  private async setup(): Promise<void> {
    const t0 = performance.now();
    this.setupSince = this.clock.now();
    try {
      // Resolved each time: a node whose InternalIP moved may have moved NIC too.
      this.uplink = this.cfg.iface || (await this.deps.dataplane.findUplink(this.self!.internalIp));
      const dpCfg = this.dataplaneConfig();
      this.log.info({ podCidr: dpCfg.podCidr, nodeIp: dpCfg.nodeIp, uplink: dpCfg.uplink }, 'setting up the dataplane');
      this.dp = await this.deps.dataplane.ensure(dpCfg);
      const mig = this.dp.migration;
      if (mig && (mig.converted.length || mig.recovered)) this.log.info({ ...mig }, 'pinned maps migrated to this release\'s layouts in place');
      for (const note of this.dp.notes ?? []) this.log.warn({ note }, 'dataplane set-up changed what it found');
      this.natCount.kick();
      this.reconciler = new TunnelReconciler(this.dp.tunnel);
      const adopted = this.reconciler.adopt();
      if (this.phase !== 'setting-up') return; // stopped meanwhile
      const inst = this.cfg.cniBinDir ? installPlugin(this.cfg.plugin, this.cfg.cniBinDir) : undefined;
      this.phase = 'running';
      this.log.info(
        { adoptedEntries: adopted, mtu: this.dp.mtu, plugin: inst?.binary, ms: Math.round(performance.now() - t0) },
        inst ? 'dataplane attached, plugin installed' : 'dataplane attached',
      );
      const nhp = this.dp.nodeHostPorts;
      if (nhp && !nhp.attached) this.log.warn({ reason: nhp.reason }, "the node's own processes will not reach hostPorts (bpf_sock.c not attached); pods and other hosts do");
      this.setupBackoff.reset();
      // The list (first start) or the cache (a re-setup) decides the tunnel map; the conflist follows the first reconcile.
      this.informer.start();
      if (this.informer.listGeneration > 0) this.changed();
      this.setupSince = undefined;
      // useObjects() was called while this set-up loaded the previous set.
      if (dpCfg.objDir !== this.objDir) {
        const want = this.objDir;
        this.objDir = dpCfg.objDir;
        if (want) this.useObjects(want);
      }
    } catch (e) {
      this.setupSince = undefined;
      this.dp?.close();
      this.dp = undefined;
      this.reconciler = undefined;
      if (this.phase === 'stopping') return;
      this.phase = 'waiting-for-podcidr';
      const delay = this.setupBackoff.next();
      this.log.error({ err: String((e as Error)?.message ?? e), retryInMs: delay }, 'dataplane setup failed; retrying');
      this.after(delay, () => void this.waitForSelf());
    }
  }

  /** Once the tunnel map reflects a full list: the conflist makes the node Ready, then the Node condition. */
  private finishStartup(): void {
    if (this.conflistWritten || !this.dp || !this.self) return;
    const conf = writeConflist(this.cfg.cniConfDir, {
      podCidr: formatCidr(this.self.podCidr),
      bridge: this.cfg.bridge,
      mtu: this.dp.mtu,
      dataDir: this.cfg.stateDir,
      pinDir: this.cfg.pinDir,
      podDevice: this.cfg.podDevice ?? 'veth',
      ...(this.cfg.networkPolicy ? { networkPolicy: true } : {}),
    });
    this.conflistWritten = true;
    this.log.info({ conflist: conf.path, changed: conf.changed, entries: this.reconciler?.size ?? 0 }, 'dataplane ready, tunnel map synced, conflist written');
    void this.setCondition();
  }

  private async setCondition(): Promise<void> {
    if (this.conditionSet || this.phase !== 'running') return;
    try {
      await this.deps.patcher.setNetworkAvailable(this.cfg.nodeName, 'bvcni dataplane is up');
      this.apiAnsweredAt = this.clock.now();
      this.conditionSet = true;
      this.log.info({ node: this.cfg.nodeName }, 'Node condition NetworkUnavailable=False set');
    } catch (e) {
      const { code, message } = describeApiError(e);
      this.deps.metrics.apiErrors.inc({ op: 'patch_status', code });
      const delay = this.conditionBackoff.next();
      this.log.warn({ code, err: message, retryInMs: delay }, 'could not set the NetworkUnavailable condition; retrying');
      this.after(delay, () => void this.setCondition());
    }
  }

  private after(ms: number, fn: () => void): void {
    const t = this.clock.setTimeout(() => {
      this.timers.delete(t);
      if (this.phase !== 'stopping') fn();
    }, ms);
    this.timers.add(t);
  }

  /** Computes the desired map from the cache and writes the difference. Synchronous: map writes are. */
  reconcile(): void {
    // Never before the first list: an empty cache would wipe the adopted map.
    if (this.phase !== 'running' || !this.reconciler || this.informer.listGeneration === 0) return;
    const generation = this.informer.listGeneration;
    const t0 = performance.now();
    const desired = computeDesired(this.informer.list(), this.cfg.nodeName, this.clusterCidr);
    this.noteSelf(desired.self);
    if (this.phase !== 'running' || !this.reconciler) return;
    this.noteSkipped(desired.skipped);
    try {
      const r = this.reconciler.apply(desired.entries);
      const secs = (performance.now() - t0) / 1000;
      this.reconciles++;
      this.deps.metrics.reconcileDuration.observe(secs);
      this.deps.metrics.tunnelNodes.set(desired.nodes.length);
      this.deps.metrics.tunnelEntries.set(this.reconciler.size);
      if (r.added) this.deps.metrics.reconcileChanges.inc({ op: 'add' }, r.added);
      if (r.updated) this.deps.metrics.reconcileChanges.inc({ op: 'update' }, r.updated);
      if (r.removed) this.deps.metrics.reconcileChanges.inc({ op: 'remove' }, r.removed);
      this.reconciledGeneration = generation;
      this.reconcilePendingSince = undefined;
      if (generation > 0) this.finishStartup();
      if (r.added || r.updated || r.removed) {
        this.lastChangeAt = Date.now();
        const mem = process.memoryUsage();
        this.log.info(
          { ...r, nodes: desired.nodes.length, ms: +(secs * 1000).toFixed(2), rssMiB: Math.round(mem.rss / 1048576), heapMiB: Math.round(mem.heapUsed / 1048576) },
          'tunnel map reconciled',
        );
      } else this.log.debug({ ...r, ms: +(secs * 1000).toFixed(2) }, 'tunnel map already in sync');
    } catch (e) {
      const delay = this.setupBackoff.next();
      this.log.error({ err: String((e as Error)?.message ?? e), retryInMs: delay }, 'tunnel map update failed; retrying');
      this.after(delay, () => this.changed());
    }
  }

  private noteSelf(self: ParsedNode | undefined): void {
    const cur = this.self;
    if (!self || !cur) return;
    const samePod = self.podCidr.addr === cur.podCidr.addr && self.podCidr.prefix === cur.podCidr.prefix;
    if (samePod && self.internalIp !== cur.internalIp) {
      // The node's address moved: the config map (outer source address) and the cluster route follow.
      this.log.info({ was: cur.internalIp, now: self.internalIp }, 'this node\'s InternalIP changed; updating the dataplane');
      this.self = self;
      this.phase = 'setting-up';
      this.dp?.close();
      this.dp = undefined;
      this.reconciler = undefined;
      void this.setup();
      return;
    }
    if (!samePod) {
      const key = `self:${formatCidr(self.podCidr)}`;
      if (this.loggedBad.get(this.cfg.nodeName) !== key) {
        this.loggedBad.set(this.cfg.nodeName, key);
        this.log.error(
          { was: formatCidr(cur.podCidr), now: formatCidr(self.podCidr) },
          'this node\'s own podCIDR changed; running pods keep the old one: drain the node and restart bvcnid',
        );
      }
    }
  }

  private noteSkipped(skipped: Skipped[]): void {
    const counts = new Map<string, number>();
    const now = new Set<string>();
    for (const s of skipped) {
      counts.set(s.reason, (counts.get(s.reason) ?? 0) + 1);
      now.add(s.name);
      if (this.loggedBad.get(s.name) === s.reason) continue;
      this.loggedBad.set(s.name, s.reason);
      this.deps.metrics.badNodeEvents.inc({ reason: s.reason });
      this.log.warn({ node: s.name, reason: s.reason, detail: s.detail }, 'skipping unusable Node object');
    }
    for (const name of [...this.loggedBad.keys()]) {
      if (name !== this.cfg.nodeName && !now.has(name)) {
        this.loggedBad.delete(name);
        this.log.info({ node: name }, 'Node object no longer skipped');
      }
    }
    this.deps.metrics.skippedNodes.reset();
    for (const [reason, n] of counts) this.deps.metrics.skippedNodes.set({ reason }, n);
  }

  private ipamUsage(): { used: number; capacity: number } {
    const cidr = this.self?.podCidr;
    const capacity = cidr ? Math.max(0, 2 ** (32 - cidr.prefix) - 3) : 0;
    let used = 0;
    const walk = (dir: string, depth: number): void => {
      let names: string[];
      try {
        names = readdirSync(dir);
      } catch {
        return;
      }
      for (const n of names) {
        if (/^\d{1,3}(\.\d{1,3}){3}$/.test(n)) used++;
        else if (depth < 1 && !n.startsWith('.')) walk(join(dir, n), depth + 1);
      }
    };
    walk(this.cfg.stateDir, 0);
    return { used, capacity };
  }

  /** The Nodes as last listed and watched (NetworkPolicy reads this node's addresses from them). */
  nodes(): NodeLike[] {
    return this.informer.list();
  }

  /** SIGTERM: stop watching, release fds; the dataplane, conflist and plugin stay (pods keep their network). */
  async stop(): Promise<void> {
    if (this.phase === 'stopping') return;
    this.phase = 'stopping';
    this.natCount.stop();
    for (const t of this.timers) this.clock.clearTimeout(t);
    this.timers.clear();
    await this.informer.stop();
    this.dp?.close();
    this.dp = undefined;
  }
}
