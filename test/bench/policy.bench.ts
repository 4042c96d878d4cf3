// NetworkPolicy compilation at issue 16's scale (indicative only on a shared
// machine): 100,000 Pods in 1,000 Namespaces with 2,000 policies on 1,000
// nodes (test/support/netpol-scale.ts). For each round, from the objects bvcnid's
// informers would hold (the fields the model reads): parse, index, compile one
// node's endpoints (what bvcnid does on its node), recompile after a label
// change with the same identity numbering and diff; heap and RSS growth.
// BVP_ROUNDS (3), BVP_PODS_PER_NS (100 = 10 apps x 10 replicas), BVP_NS (1000).
// Run with --expose-gc for exact heap figures (make bench does not; then the
// figures include garbage not yet collected).
//
// Then bvcnid's sync at that scale (BVP_SYNC=0 skips it): the fake API server
// in a process of its own (policy-apiserver.ts) serving the cluster as
// realistic objects (~6 KiB Pods), and PolicySync (bvcnid --network-policy)
// here, listing and watching it through the real client and writing to
// in-memory maps: its first sync (start to the first map write), this
// process's peak RSS, and how long a label change and a policy change take
// from the API write to the map write (BVP_CHANGES of each, default 100;
// issue 16's targets: ≤ 10 s, ≤ 400 MiB, p99 ≤ 500 ms).
//
// First of all (BVP_DAEMON=0 skips it), a REAL bvcnid (dist/bin/bvcnid
// --network-policy, started as test/support/kube-daemons.ts does) on a simulated
// node, the same fake API server in its own process listening in the cluster's
// underlay, the scaled cluster's first node's Pods placed on the simulated node:
// bvcnid's own peak RSS (VmHWM of /proc/PID/status) after its first compile and
// after BVP_DAEMON_CHANGES (50) label changes, and its first sync (start to the
// first "network policy compiled" with every object listed).
import { performance } from 'node:perf_hooks';
import {
  compileNode,
  diffNode,
  entryCount,
  IdentityAllocator,
  parseNamespace,
  parseNetworkPolicy,
  parseNode,
  parsePod,
  StateIndex,
  type ClusterState,
} from '../../src/policy/index.js';
import { scaleCluster } from '../support/netpol-scale.js';
import { median, percentile, printTable } from './stats.js';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import v8 from 'node:v8';
import { writeFileSync } from 'node:fs';
import { createCluster, uniquePrefix, UNDERLAY_GATEWAY } from '../../src/sim/index.js';
import { DaemonProc, deployedNodeOptions, rssMiB } from '../support/kube-daemons.js';
import { runInNewContext } from 'node:vm';
import { pino } from 'pino';
import { ipv4ToInt } from '../../loader/codec.js';
import { listWatchApi, loadKubeConfig, POLICY_PATHS, slimNamespace, slimNetworkPolicy, slimPod as slimPodObject, type ObjectLike } from '../../src/kube/client.js';
import { PolicySync, preparse, type EndpointPolicyState, type PinnedPolicy, type PolicyMapsPort } from '../../src/daemon/policy.js';
import type { NodeDiff } from '../../src/policy/index.js';

const ROUNDS = Number(process.env.BVP_ROUNDS ?? 3);
const NS = Number(process.env.BVP_NS ?? 1000);
const REPLICAS = Math.max(1, Math.round(Number(process.env.BVP_PODS_PER_NS ?? 100) / 10));
const gc = (globalThis as { gc?: () => void }).gc;
const mib = (b: number): number => b / 1048576;

function slimPod(p: ReturnType<typeof scaleCluster>['pods'][number]): object {
  // What an informer keeps of a Pod: metadata, spec.nodeName/hostNetwork, containers' ports, status.podIP/phase.
  return {
    metadata: { name: p.name, namespace: p.namespace, labels: p.labels, resourceVersion: '1' },
    spec: { nodeName: p.nodeName, containers: [{ ports: p.ports }] },
    status: { podIP: p.ip, phase: 'Running' },
  };
}

/** Maps in memory that say when a write they wait for lands (performance.timeOrigin-based epoch ms). */
class TimingMaps implements PolicyMapsPort {
  readonly ipcache = new Map<number, number>();
  entries = 0;
  readonly eps = new Map<string, EndpointPolicyState>();
  private waiters: { pred: (d: NodeDiff) => boolean; resolve: (t: number) => void }[] = [];
  read(): PinnedPolicy {
    return { ipcache: [], endpoints: new Map() };
  }
  apply(d: NodeDiff): void {
    for (const c of d.ipcacheDelete) this.ipcache.delete(c.addr * 33 + c.prefix);
    for (const u of d.ipcacheUpsert) this.ipcache.set(u.cidr.addr * 33 + u.cidr.prefix, u.identity);
    for (const t of d.endpoints.values()) if (t !== 'deleted') this.entries += t.ingress.add.length + t.egress.add.length - t.ingress.remove.length - t.egress.remove.length;
    const at = performance.timeOrigin + performance.now();
    this.waiters = this.waiters.filter((w) => (w.pred(d) ? (w.resolve(at), false) : true));
  }
  endpoints(): Map<string, EndpointPolicyState> {
    return new Map(this.eps);
  }
  setEndpoint(ip: string, s: EndpointPolicyState): boolean {
    if (!this.eps.has(ip)) return false;
    this.eps.set(ip, s);
    return true;
  }
  when(pred: (d: NodeDiff) => boolean): Promise<number> {
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }
}

async function until(what: string, cond: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

if (process.env.BVP_DAEMON !== '0') {
  const CHANGES = Number(process.env.BVP_DAEMON_CHANGES ?? 50);
  const here = dirname(fileURLToPath(import.meta.url));
  const c = await createCluster({ prefix: uniquePrefix('bvpd'), nodes: 1, dataplane: 'none' });
  const n = c.nodes[0]!;
  let child: ReturnType<typeof spawn> | undefined;
  let d: DaemonProc | undefined;
  try {
    child = spawn(process.execPath, ['--import', 'tsx', join(here, 'policy-apiserver.ts')], {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: { ...process.env, BVP_API_NETNS: c.underlay.path, BVP_API_HOST: UNDERLAY_GATEWAY, BVP_LOCAL_NODE: JSON.stringify({ name: n.name, podCidr: n.podCidr, ip: n.ip }) },
    });
    const it = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    const next = async (): Promise<Record<string, unknown>> => JSON.parse((await it.next()).value as string) as Record<string, unknown>;
    const send = (o: unknown): void => void child!.stdin!.write(`${JSON.stringify(o)}\n`);
    const ready = await next();
    const sc = scaleCluster({ namespaces: NS, replicas: REPLICAS });
    const local = sc.pods.filter((p) => p.nodeName === sc.nodes[0]!.name);
    // As deployed: deploy/bvcni.yaml's NODE_OPTIONS (V8's heap flags decide the RSS); BVK_NODE_FLAGS (even empty) stands in.
    process.env.BVK_NODE_FLAGS ??= deployedNodeOptions();
    d = new DaemonProc(c, n, ready.kubeconfig as string, ['--network-policy']);
    const daemon = d;
    const hwm = (): number => rssMiB(daemon.child!.pid!).hwm;
    const compiled = (): Record<string, unknown>[] => daemon.logged(/network policy compiled/);
    const t0 = performance.now();
    daemon.start();
    // The first compile with every Pod listed (an earlier one may come before the Node list).
    await until('bvcnid\'s first full compile', () => compiled().some((l) => l.pods === sc.pods.length && l.policies === sc.policies.length) || !daemon.running, 300_000);
    if (!daemon.running) throw new Error(`bvcnid exited: ${JSON.stringify(daemon.logs.slice(-5))}`);
    const firstSync = performance.now() - t0;
    const first = compiled().find((l) => l.pods === sc.pods.length)!;
    const hwmSync = hwm();
    const labelLat: number[] = [];
    for (let i = 0; i < CHANGES; i++) {
      const pool = i % 5 === 0 ? local : sc.pods;
      const p = pool[(i * 7919) % pool.length]!;
      p.labels = { ...p.labels, rev: `r${i}` };
      const before = compiled().length;
      send({ op: 'relabel', namespace: p.namespace, name: p.name, labels: p.labels });
      await next();
      const t = performance.now();
      await until(`the compile of label change ${i}`, () => compiled().length > before || !daemon.running, 60_000);
      labelLat.push(performance.now() - t);
    }
    const hwmChanges = hwm();
    console.log(
      `bvcnid process: ${sc.pods.length} Pods, ${sc.namespaces.length} Namespaces, ${sc.policies.length} NetworkPolicies served as realistic objects ` +
        `by another process; node ${n.name}: ${String(first.endpoints)} endpoints, ${String(first.entries)} policy entries, ${String(first.identities)} identities`,
    );
    const f = (v: number): string => v.toFixed(1);
    printTable(
      `bvcnid --network-policy, the real process (node flags '${process.env.BVK_NODE_FLAGS}'; indicative: shared machine; ${CHANGES} label changes)`,
      ['measure', 'value', 'target'],
      [
        ['bvcnid first sync (start to the first full compile) ms', f(firstSync), '≤ 10000'],
        ['bvcnid peak RSS (VmHWM) after the first sync MiB', f(hwmSync), '≤ 400'],
        [`bvcnid peak RSS (VmHWM) after ${CHANGES} label changes MiB`, f(hwmChanges), '≤ 400'],
        ['label change -> compiled (sequential, debounced) p50 ms', f(percentile(labelLat, 50)), ''],
      ],
    );
  } finally {
    if (d?.running) await d.kill('SIGKILL');
    // BVP_DAEMON_LOG=FILE keeps bvcnid's log (with BVK_NODE_FLAGS=--trace-gc, say) for a look at its memory.
    if (d && process.env.BVP_DAEMON_LOG) writeFileSync(process.env.BVP_DAEMON_LOG, d.logs.map((l) => (l.raw ? String(l.msg) : JSON.stringify(l))).join('\n'));
    if (child) {
      child.stdin!.write(`${JSON.stringify({ op: 'exit' })}\n`);
      child.stdin!.end();
      await new Promise((r) => (child!.exitCode !== null ? r(null) : child!.once('exit', r)));
    }
    await c.destroy();
  }
}

if (process.env.BVP_SYNC !== '0') {
  // First, in a clean process: the peak RSS is the sync's, not the compile rounds' below.
  const CHANGES = Number(process.env.BVP_CHANGES ?? 100);
  const here = dirname(fileURLToPath(import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'policy-apiserver.ts')], { stdio: ['pipe', 'pipe', 'inherit'] });
  const it = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async (): Promise<Record<string, unknown>> => JSON.parse((await it.next()).value as string) as Record<string, unknown>;
  const send = (o: unknown): void => void child.stdin!.write(`${JSON.stringify(o)}\n`);
  try {
    const ready = await next();
    // Only what bvcnid has of its own during the first sync: the Nodes and its endpoints (the
    // scaled cluster's Pods are generated again afterwards, to pick changes).
    let sc: ReturnType<typeof scaleCluster> | undefined = scaleCluster({ namespaces: NS, replicas: REPLICAS });
    const node = sc.nodes[0]!.name;
    const maps = new TimingMaps();
    for (const p of sc.pods) if (p.nodeName === node) maps.eps.set(p.ip, { identity: 0, pending: true, ingressIsolated: false, egressIsolated: false });
    const nodeObjs = sc.nodes.map((n) => ({ metadata: { name: n.name }, status: { addresses: [{ type: 'InternalIP', address: n.ip }] } }));
    sc = undefined;
    // A full GC before the baseline, with or without --expose-gc (make bench runs without).
    v8.setFlagsFromString('--expose-gc');
    (runInNewContext('gc') as () => void)();
    const kc = loadKubeConfig(ready.kubeconfig as string);
    let peak = process.memoryUsage().rss;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    const rss0 = process.memoryUsage().rss;
    const sync = new PolicySync({
      nodeName: node,
      log: pino({ level: process.env.BVP_LOG ?? 'silent' }, process.stderr),
      apis: {
        // As bvcnid's main.ts wires them: slimmed and parsed as each page is read.
        pods: listWatchApi<ObjectLike>(kc, POLICY_PATHS.pods, preparse(slimPodObject, parsePod)),
        namespaces: listWatchApi<ObjectLike>(kc, POLICY_PATHS.namespaces, preparse(slimNamespace, parseNamespace)),
        networkPolicies: listWatchApi<ObjectLike>(kc, POLICY_PATHS.networkPolicies, preparse(slimNetworkPolicy, parseNetworkPolicy)),
      },
      nodes: () => nodeObjs,
      maps,
      debounceMs: Number(process.env.BVP_DEBOUNCE ?? 20),
    });
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    sync.start();
    await until('every list', () => sync.synced, 300_000);
    const listed = performance.now() - t0;
    await until('the first map write', () => sync.stats.writes > 0, 120_000);
    const firstSync = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const peakSync = peak;
    sc = scaleCluster({ namespaces: NS, replicas: REPLICAS });
    const local = sc.pods.filter((p) => p.nodeName === node);
    const pendingLeft = [...maps.eps.values()].filter((s) => s.pending).length;

    const labelLat: number[] = [];
    for (let i = 0; i < CHANGES; i++) {
      // Every fifth a pod of this node (its own tables too), the rest anywhere in the cluster.
      const pool = i % 5 === 0 ? local : sc!.pods;
      const p = pool[(i * 7919) % pool.length]!;
      const ip = ipv4ToInt(p.ip);
      p.labels = { ...p.labels, rev: `r${i}` };
      const landed = maps.when((d) => d.ipcacheUpsert.some((e) => e.cidr.prefix === 32 && e.cidr.addr === ip));
      send({ op: 'relabel', namespace: p.namespace, name: p.name, labels: p.labels });
      const { at } = (await next()) as { at: number };
      labelLat.push((await landed) - at);
    }
    const localNs = [...new Set(local.map((p) => p.namespace))];
    const policyLat: number[] = [];
    for (let i = 0; i < CHANGES; i++) {
      const ns = localNs[i % localNs.length]!;
      const ips = new Set(local.filter((p) => p.namespace === ns).map((p) => p.ip));
      const landed = maps.when((d) => [...d.endpoints.keys()].some((ip) => ips.has(ip)));
      const spec = { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: `team-${i % 20}` } } }], ports: [{ port: 7000 + i }] }] };
      send({ op: 'policy', namespace: ns, name: `bench-${i}`, spec });
      const { at } = (await next()) as { at: number };
      policyLat.push((await landed) - at);
    }
    clearInterval(sampler);
    const maxRss = Math.max(peak, process.resourceUsage().maxRSS * 1024);
    await sync.stop();
    console.log(
      `bvcnid sync: ${sc.pods.length} Pods, ${sc.namespaces.length} Namespaces, ${sc.policies.length} NetworkPolicies served as realistic objects ` +
        `(populated in ${Math.round(ready.populateMs as number)} ms); node ${node}: ${local.length} endpoints, ${maps.ipcache.size} ipcache entries, ` +
        `${maps.entries} policy entries, ${pendingLeft} endpoints left pending after the first sync`,
    );
    const f = (v: number): string => v.toFixed(1);
    printTable(
      `bvcnid NetworkPolicy sync (indicative: shared machine; ${CHANGES} changes of each kind)`,
      ['measure', 'value', 'target'],
      [
        ['first sync (start to first map write) ms', f(firstSync), '≤ 10000'],
        ['  of which listing (3 informers, pages of 500) ms', f(listed), ''],
        ['  this process\'s CPU in it ms', f((cpu.user + cpu.system) / 1000), ''],
        ['RSS before the sync MiB (node, tsx, this benchmark)', f(mib(rss0)), ''],
        ['peak RSS during the first sync MiB', f(mib(peakSync)), '≤ 400'],
        ['peak RSS overall MiB (with the changes)', f(mib(maxRss)), ''],
        ['label change -> maps p50 ms', f(percentile(labelLat, 50)), ''],
        ['label change -> maps p99 ms', f(percentile(labelLat, 99)), '≤ 500'],
        ['label change -> maps max ms', f(Math.max(...labelLat)), ''],
        ['policy change -> maps p50 ms', f(percentile(policyLat, 50)), ''],
        ['policy change -> maps p99 ms', f(percentile(policyLat, 99)), '≤ 500'],
        ['policy change -> maps max ms', f(Math.max(...policyLat)), ''],
      ],
    );
  } finally {
    send({ op: 'exit' });
    child.stdin!.end();
  }
}

const results: Record<string, number[]> = {};
const note = (k: string, v: number): void => void (results[k] ??= []).push(v);
let shape = '';

for (let round = 0; round < ROUNDS; round++) {
  const sc = scaleCluster({ namespaces: NS, replicas: REPLICAS });
  const rawPods = sc.pods.map(slimPod);
  gc?.();
  const heap0 = process.memoryUsage().heapUsed;
  const rss0 = process.memoryUsage().rss;
  let t = performance.now();
  const state: ClusterState = {
    namespaces: sc.namespaces.map((n) => parseNamespace({ metadata: n })),
    pods: rawPods.map(parsePod),
    policies: sc.policies.map((p) => parseNetworkPolicy({ metadata: { name: p.name, namespace: p.namespace }, spec: p.spec })),
    nodes: sc.nodes.map((n) => parseNode({ metadata: { name: n.name }, status: { addresses: [{ type: 'InternalIP', address: n.ip }] } })),
  };
  note('parse ms', performance.now() - t);
  t = performance.now();
  const idx = new StateIndex(state);
  note('index ms', performance.now() - t);
  const alloc = new IdentityAllocator();
  t = performance.now();
  const compiled = compileNode(idx, sc.nodes[0]!.name, { allocator: alloc });
  note('compile one node ms', performance.now() - t);
  gc?.();
  note('heap growth MiB', mib(process.memoryUsage().heapUsed - heap0));
  note('RSS growth MiB', mib(process.memoryUsage().rss - rss0));
  // A label change on one local pod: a new state, recompiled with the same numbering, then diffed.
  const local = state.pods.findIndex((p) => p.nodeName === sc.nodes[0]!.name);
  const pods2 = state.pods.slice();
  pods2[local] = { ...pods2[local]!, labels: { ...pods2[local]!.labels, tier: 'back' } };
  t = performance.now();
  const idx2 = new StateIndex({ ...state, pods: pods2 });
  const compiled2 = compileNode(idx2, sc.nodes[0]!.name, { allocator: alloc });
  const d = diffNode(compiled, compiled2);
  note('label change: index+compile+diff ms', performance.now() - t);
  shape =
    `${state.pods.length} pods, ${state.namespaces.length} namespaces, ${state.policies.length} policies, ${state.nodes.length} nodes; ` +
    `node ${compiled.node}: ${compiled.endpoints.size} endpoints, ${entryCount(compiled)} policy entries, ` +
    `${compiled.identities.size} identities, ${compiled.ipcache.length} ipcache entries; ` +
    `the label change rewrote ${d.endpoints.size} endpoints' tables and ${d.ipcacheUpsert.length} ipcache entries`;
}

console.log(shape);
printTable(
  `NetworkPolicy compile (indicative: shared machine; ${ROUNDS} rounds)${gc ? '' : ' [no --expose-gc: heap includes uncollected garbage]'}`,
  ['measure', 'median', 'min', 'max'],
  Object.entries(results).map(([k, v]) => [k, median(v).toFixed(1), Math.min(...v).toFixed(1), Math.max(...v).toFixed(1)]),
);

