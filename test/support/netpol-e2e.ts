// The upstream NetworkPolicy conformance cases (test/fixtures/netpol, the data the
// unit test runs against the model) with real traffic: a simulated cluster of two
// or more nodes running bvcnid --network-policy against the simulator's API
// server, namespaces x, y, z with pods a, b, c spread over the nodes (peers on the
// same node and on other nodes), each pod one netpol-agent.py serving 80 and 81 on
// TCP, UDP and SCTP and probing on command. A case's steps are written through the
// API server (policies, namespace and pod labels), the nodes' pinned maps are
// awaited until they hold what the compiler says for the new state (bvcnid's own
// work, read from the kernel: never a sleep), then every probe of the step runs the
// whole 9x9 matrix and compares it with the case's truth table.
//
// Two ways to reach a pod (ProbeVia): its own address ('pod': bvcni's fast path,
// pod to pod past the host stack), and, as upstream's suite probes
// (test/e2e/network/netpol, kubemanager.go: one Service per pod), its Service
// ('service'): every pod gets a ClusterIP in bvcnid's --service-cidr, and every
// node's namespace a kube-proxy-like nft table of the test's own (DNAT of
// ClusterIP:80/81 to podIP:80/81 for TCP, UDP and SCTP, in prerouting for pods'
// traffic and output for the node's own), so the client's packet goes up its
// node's host stack, is translated there and routed to the backend.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { BpfMap, intToIpv4, ipv4ToInt } from '../../loader/index.js';
import { openEndpointsMap } from '../../src/dataplane/maps.js';
import { NAMESPACES as NS_TYPE, NETWORK_POLICIES, PODS, type KubeObject } from '../../src/sim/kube-resources.js';
import { loadDataplane, type Cluster, type SimNetns, type SimNode, type SimPod } from '../../src/sim/index.js';
import { nodeObject } from '../../src/sim/kube-node.js';
import { compileNode, entryCount, ID_WORLD, IdentityAllocator, parseNode, policyEntryKey, type CompiledNode, type Protocol } from '../../src/policy/index.js';
import { KubeCluster } from './kube-daemons.js';
import { waitFor } from './kube-util.js';
import { scaledTimeout } from '../../src/common/wait.js';
import { Defaults } from '../../src/common/defaults.js';
import { parseCidr } from '../../src/common/cidr.js';
import { startProcess } from '../../src/common/exec.js';
import {
  ALL_PODS,
  expandExpect,
  formatTable,
  ModelCluster,
  NAMESPACES,
  rawNamespace,
  rawPod,
  SERVED_PORTS,
  type Action,
  type ConformanceCase,
  type ModelNode,
  type Placement,
  type Probe,
} from './netpol.js';

const AGENT = fileURLToPath(new URL('./netpol-agent.py', import.meta.url));

/** The pinned maps of the policy contract (/work/coord/policy-abi.md, src/policy/layout.ts). */
export const POLICY_MAP = 'bvcni_policy';
export const IPCACHE_MAP = 'bvcni_ipcache';
/** enum endpoint_flags (bpf/lib/abi.h, ABI 2). */
export const ENDPOINT_F_INGRESS_ISOLATED = 1 << 3;
export const ENDPOINT_F_EGRESS_ISOLATED = 1 << 4;
export const ENDPOINT_F_POLICY_PENDING = 1 << 5;
const POLICY_FLAGS = ENDPOINT_F_INGRESS_ISOLATED | ENDPOINT_F_EGRESS_ISOLATED | ENDPOINT_F_POLICY_PENDING;
/** Identities below this are the reserved ones (any, host, world), the same number everywhere. */
const FIRST_ALLOCATED_ID = 256;

export interface ProbeTarget {
  ip: string;
  port: number;
  proto: Protocol;
}
export type ProbeResult = { ok: true; server: string; peer?: string } | { ok: false; error: string };

/** One pod's netpol-agent.py: its server, and its prober on command (stdin/stdout JSON lines). */
export class NetpolAgent {
  private nextId = 1;
  private readonly waiting = new Map<number, (r: ProbeResult[]) => void>();
  private buf = '';
  private exited: string | undefined;

  private constructor(readonly child: ChildProcess) {}

  /** `pod`: a pod of the model, or a node (whose agent probes the pods through their ClusterIPs). */
  static async start(c: Cluster, pod: SimNetns, name: string): Promise<NetpolAgent> {
    const child = c.track(startProcess(['python3', '-u', AGENT, name, ...SERVED_PORTS.map(String)], { netns: pod.path, stdio: ['pipe', 'pipe', 'pipe'] }));
    const a = new NetpolAgent(child);
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-4000)));
    const ready = new Promise<void>((resolve, reject) => {
      child.stdout!.setEncoding('utf8').on('data', (d: string) => {
        a.buf += d;
        let i: number;
        while ((i = a.buf.indexOf('\n')) >= 0) {
          const line = a.buf.slice(0, i);
          a.buf = a.buf.slice(i + 1);
          const msg = JSON.parse(line) as { ready?: string; id?: number; results?: ProbeResult[] };
          if (msg.ready) resolve();
          else if (msg.id !== undefined) {
            a.waiting.get(msg.id)?.(msg.results!);
            a.waiting.delete(msg.id);
          }
        }
      });
      child.once('exit', (code, sig) => {
        a.exited = `agent ${name} exited (${code ?? sig}): ${err.trim()}`;
        reject(new Error(a.exited));
        for (const [id, done] of a.waiting) {
          done([{ ok: false, error: a.exited }]);
          a.waiting.delete(id);
        }
      });
    });
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`agent ${name} not ready in 20 s: ${err.trim()}`)), scaledTimeout(20_000));
    });
    try {
      await Promise.race([ready, deadline]);
    } catch (e) {
      child.kill('SIGKILL');
      throw e;
    } finally {
      clearTimeout(timer);
    }
    return a;
  }

  /** Probes the targets at once (at most `concurrency` in flight), one result per target, in order. */
  probe(targets: readonly ProbeTarget[], timeoutMs: number, concurrency: number): Promise<ProbeResult[]> {
    if (this.exited) return Promise.reject(new Error(this.exited));
    if (targets.length === 0) return Promise.resolve([]);
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, (r) => resolve(r.length === targets.length ? r : targets.map(() => r[0]!)));
      this.child.stdin!.write(JSON.stringify({ id, timeoutMs, concurrency, targets }) + '\n');
    });
  }
}

export interface NetpolClusterOptions {
  prefix?: string;
  /** ≥ 2, so that peers are both on the same node and on another one. */
  nodes?: number;
  /** A probe's deadline: a denied connection is one with no answer by then (default 1000 ms). */
  probeTimeoutMs?: number;
  /** Probes in flight at once in the whole matrix (default 27: 3 sources × 9 targets). */
  concurrency?: number;
  /** How long the nodes' maps may take to converge after a write (default 30 s). */
  convergeTimeoutMs?: number;
  /** One ClusterIP per pod with kube-proxy-like DNAT on every node, for probes via 'service' (default false). */
  services?: boolean;
}

/**
 * How a probe reaches its target pod: its own address (bvcni's path), or its
 * Service's ClusterIP, translated by the client's node (upstream's way).
 */
export type ProbeVia = 'pod' | 'service';
export const PROBE_VIAS: readonly ProbeVia[] = ['pod', 'service'];

/** The ClusterIPs' range: bvcnid's --service-cidr, given explicitly so the harness and the daemons agree. */
export const SERVICE_CIDR = Defaults.serviceCidr;
/** The nft table (ip family) that plays kube-proxy in every node's namespace. */
export const SERVICE_TABLE = 'netpol_services';

/**
 * The model's ClusterIPs, from the Service CIDR: one per pod (index k of ALL_PODS),
 * then a few more for the harness's own controls (a ClusterIP no rule translates, one
 * translated to another pod than its name says).
 */
export function clusterIp(k: number, cidr: string = SERVICE_CIDR): string {
  const c = parseCidr(cidr, { what: 'service CIDR', strict: true });
  // Past the range's first addresses (kubernetes.default, DNS): .7.10 up, far inside a /12.
  const ip = (c.addr + 0x070a + k) >>> 0;
  if (c.prefix > 20) throw new RangeError(`service CIDR ${cidr} is too small for the model's ClusterIPs`);
  return intToIpv4(ip);
}

export interface MatrixResult {
  /** "from>to" -> what the probe saw (loopback pairs are not probed). */
  observed: Map<string, ProbeResult>;
  /** Pairs that failed first and answered when retried once. */
  retried: string[];
}

export interface CaseReport {
  steps: number;
  /** Matrices probed, and of them how many each way. */
  probes: number;
  byVia: Record<ProbeVia, number>;
  retried: number;
}

/**
 * The conformance model on a simulated cluster with bvcnid --network-policy. start() in
 * `before`, teardown() in `after` (it undoes whatever start() got to).
 */
export class NetpolCluster {
  readonly k: KubeCluster;
  readonly pods = new Map<string, { sim: SimPod; agent: NetpolAgent; node: SimNode }>();
  model!: ModelCluster;
  placement!: Placement;
  readonly o: Required<NetpolClusterOptions>;
  readonly stats = { probes: 0, retried: 0, converges: 0 };
  /** pod -> its Service's ClusterIP (empty without `services`). */
  readonly services = new Map<string, string>();
  /** With `services`: an agent in each node's namespace, node name -> agent (the node's own traffic to ClusterIPs). */
  readonly nodeAgents = new Map<string, NetpolAgent>();
  /** A ClusterIP in the range that no rule translates (a probe to it must never be "connected"). */
  readonly unmappedClusterIp = clusterIp(ALL_PODS.length);
  /** A ClusterIP the rules translate to ALL_PODS[1] (a probe that names ALL_PODS[0] through it must not pass). */
  readonly decoyClusterIp = clusterIp(ALL_PODS.length + 1);

  constructor(opts: NetpolClusterOptions = {}) {
    this.o = { prefix: 'npe', nodes: 2, probeTimeoutMs: 1000, concurrency: 27, convergeTimeoutMs: 30_000, services: false, ...opts };
    if (this.o.nodes < 2) throw new RangeError('the conformance cluster needs ≥ 2 nodes (same-node and cross-node peers)');
    this.k = new KubeCluster({ prefix: this.o.prefix, nodes: this.o.nodes, daemonArgs: () => ['--network-policy', '--service-cidr', SERVICE_CIDR] });
  }

  get c(): Cluster {
    return this.k.c;
  }

  async start(): Promise<this> {
    await this.k.start();
    const { c, api } = this.k;
    const nodes: ModelNode[] = c.nodes.map((n) => ({ name: n.name, ip: n.ip, podCidr: n.podCidr }));
    for (const ns of NAMESPACES) api.resources.add(NS_TYPE, rawNamespace(ns));
    // As the scheduler leaves them: each Pod bound to a node, no address yet. Pods alternate
    // between the nodes in the truth table's order, so x/a and x/b are on different nodes
    // and x/a and x/c on the same one.
    const nodeOf = new Map(ALL_PODS.map((p, i) => [p, c.nodes[i % c.nodes.length]!]));
    for (const p of ALL_PODS) {
      const n = nodeOf.get(p)!;
      const pending = rawPod(p, undefined, { node: nodes[n.index]!, ip: '' });
      api.resources.add(PODS, { ...pending, status: { phase: 'Pending' } });
    }
    // The kubelet's runtime: CNI ADD naming the Pod (CNI_ARGS), then the Pod's address in its status.
    const sims = new Map<string, SimPod>();
    for (const p of ALL_PODS) {
      const [ns, name] = p.split('/') as [string, string];
      const sim = await c.addPod(nodeOf.get(p)!, `${ns}${name}`, { via: 'plugin', args: `K8S_POD_NAMESPACE=${ns};K8S_POD_NAME=${name}` });
      sims.set(p, sim);
      api.resources.modify(PODS, ns, name, (o) => (o.status = { phase: 'Running', podIP: sim.ip, podIPs: [{ ip: sim.ip }] }));
    }
    this.placement = { nodes, where: (p) => ({ node: nodes[nodeOf.get(p)!.index]!, ip: sims.get(p)!.ip }) };
    this.model = new ModelCluster(this.placement);
    const agents = await Promise.all(ALL_PODS.map((p) => NetpolAgent.start(c, sims.get(p)!, p)));
    ALL_PODS.forEach((p, i) => this.pods.set(p, { sim: sims.get(p)!, node: nodeOf.get(p)!, agent: agents[i]! }));
    if (this.o.services) await this.addServices();
    this.mode = await this.detectMode();
    return this;
  }

  /**
   * kube-proxy's part, as its nftables mode writes it for a ClusterIP Service with one
   * endpoint (no masquerade: the backend sees the client pod's address, which is
   * what NetworkPolicy is decided on): on every node, prerouting (pods' packets, which
   * bpf_pod hands up the stack for the Service CIDR) and output (the node's own).
   * The decoy ClusterIP is translated to ALL_PODS[1]; the unmapped one not at all.
   */
  private async addServices(): Promise<void> {
    ALL_PODS.forEach((p, k) => this.services.set(p, clusterIp(k)));
    const backends: [string, string][] = [...this.services].map(([p, ip]) => [ip, this.pods.get(p)!.sim.ip]);
    backends.push([this.decoyClusterIp, this.pods.get(ALL_PODS[1]!)!.sim.ip]);
    const rules = backends.flatMap(([svc, pod]) => SERVED_PORTS.map((port) => `    ip daddr ${svc} meta l4proto { tcp, udp, sctp } th dport ${port} dnat to ${pod}:${port}`));
    const chain = (name: string, hook: string): string[] => [`  chain ${name} {`, `    type nat hook ${hook} priority -100; policy accept;`, ...rules, '  }'];
    const table = [`table ip ${SERVICE_TABLE} {`, ...chain('services_pre', 'prerouting'), ...chain('services_out', 'output'), '}'].join('\n');
    for (const n of this.c.nodes) await this.c.exec(n, ['nft', '-f', '-'], { input: table });
    // Probers on the nodes themselves: their packets take the output chain.
    for (const n of this.c.nodes) this.nodeAgents.set(n.name, await NetpolAgent.start(this.c, n, n.name));
  }

  /** Probes from a node's own namespace (its agent; `services` only). */
  async probeFromNode(node: SimNode, targets: readonly ProbeTarget[], timeoutMs = this.o.probeTimeoutMs): Promise<ProbeResult[]> {
    const a = this.nodeAgents.get(node.name);
    if (!a) throw new Error(`no agent on ${node.name}: the cluster was started without services`);
    this.stats.probes += targets.length;
    return a.probe(targets, timeoutMs, targets.length);
  }

  private async removeServices(): Promise<void> {
    if (this.services.size === 0 || !this.k.c) return;
    for (const n of this.c.nodes) await this.c.exec(n, ['nft', 'delete', 'table', 'ip', SERVICE_TABLE], { allowFail: true });
  }

  /** Where a probe for `to` goes: the pod's address, or its ClusterIP. */
  targetIp(to: string, via: ProbeVia): string {
    if (via === 'pod') return this.pods.get(to)!.sim.ip;
    const ip = this.services.get(to);
    if (!ip) throw new Error(`no Service for ${to}: the cluster was started without services`);
    return ip;
  }

  /** Probes arbitrary addresses from one pod of the model (the harness's own controls). */
  async probeFrom(from: string, targets: readonly ProbeTarget[], timeoutMs = this.o.probeTimeoutMs): Promise<ProbeResult[]> {
    this.stats.probes += targets.length;
    return this.pods.get(from)!.agent.probe(targets, timeoutMs, targets.length);
  }

  /**
   * Whether the cases can run against an enforcing dataplane: the policy maps are pinned
   * and bvcnid fills them. Maps pinned but left empty (the maps exist, their writer does
   * not yet) count as not enforcing; maps filled wrongly are an error, never a skip.
   */
  private async detectMode(): Promise<EnforcementMode> {
    await this.converge('log');
    return enforcementMode(this.c.nodes, () => this.converge('maps'));
  }

  async teardown(): Promise<void> {
    try {
      await this.removeServices();
    } finally {
      await this.k.teardown();
    }
  }

  /** Set by start(): whether the cases run against an enforcing dataplane, and if not why. */
  mode: EnforcementMode = { enforcing: false, why: 'not started' };

  get enforcing(): boolean {
    return this.mode.enforcing;
  }

  // ---- the API side ----------------------------------------------------------------

  /** One action of a case: through the API server, and into the model the expectations are checked against. */
  apply(action: Action): void {
    const api = this.k.api.resources;
    // The model first: it refuses what the fixture gets wrong before the API sees anything.
    this.model.apply(action);
    if ('create' in action) {
      api.add(NETWORK_POLICIES, { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', ...(this.model.substitute(action.create) as KubeObject) });
    } else if ('update' in action) {
      const next = this.model.substitute(action.update) as KubeObject;
      api.modify(NETWORK_POLICIES, next.metadata!.namespace!, next.metadata!.name!, (o) => (o.spec = next.spec));
    } else if ('delete' in action) {
      const [ns, name] = action.delete.split('/') as [string, string];
      api.remove(NETWORK_POLICIES, ns, name);
    } else if ('deleteAllPolicies' in action) {
      for (const p of api.list(NETWORK_POLICIES)) api.remove(NETWORK_POLICIES, p.metadata!.namespace!, p.metadata!.name!);
    } else if ('labelNamespace' in action) {
      api.modify(NS_TYPE, undefined, action.labelNamespace, (o) => (o.metadata!.labels = { ...o.metadata!.labels, ...action.labels }));
    } else if ('labelPod' in action) {
      const [ns, name] = action.labelPod.split('/') as [string, string];
      api.modify(PODS, ns, name, (o) => (o.metadata!.labels = { ...o.metadata!.labels, ...action.labels }));
    }
  }

  /** Back to the model's first state: no policy, every namespace and pod with its own labels only. */
  async reset(): Promise<void> {
    const api = this.k.api.resources;
    for (const p of api.list(NETWORK_POLICIES)) api.remove(NETWORK_POLICIES, p.metadata!.namespace!, p.metadata!.name!);
    for (const ns of NAMESPACES) {
      const want = rawNamespace(ns).metadata!.labels;
      if (JSON.stringify(api.list(NS_TYPE).find((o) => o.metadata!.name === ns)?.metadata?.labels) !== JSON.stringify(want))
        api.modify(NS_TYPE, undefined, ns, (o) => (o.metadata!.labels = want));
    }
    for (const p of ALL_PODS) {
      const [ns, name] = p.split('/') as [string, string];
      const want = { pod: name };
      const cur = api.list(PODS).find((o) => o.metadata!.namespace === ns && o.metadata!.name === name);
      if (JSON.stringify(cur?.metadata?.labels) !== JSON.stringify(want)) api.modify(PODS, ns, name, (o) => (o.metadata!.labels = want));
    }
    this.model = new ModelCluster(this.placement);
    await this.converge();
  }

  // ---- convergence -----------------------------------------------------------------

  /** What a node's maps must hold for the model's current state (the compiler's output). */
  expected(node: SimNode): CompiledNode {
    const state = this.model.state();
    // The Node objects bvcnid reads (their addresses are the host identity), not the model's plain ones.
    const nodes = this.c.nodes.map((n) => parseNode(nodeObject(n)));
    return compileNode({ ...state, nodes }, node.name, { allocator: new IdentityAllocator() });
  }

  /**
   * Waits until every node's bvcnid has written the model's current state. With the
   * policy maps pinned (enforcement): the maps themselves, compared with the compiler's
   * tables up to identity numbering (nodeMapsDiff). Without them (bvcnid only compiles),
   * its "network policy compiled" log line with the counts of the current state.
   */
  async converge(how: 'maps' | 'log' = this.enforcing ? 'maps' : 'log'): Promise<void> {
    this.stats.converges++;
    const enforcing = how === 'maps';
    await Promise.all(
      this.k.daemons.map(async (d) => {
        const want = this.expected(d.node);
        let last: string[] = [];
        try {
          await waitFor(
            `${d.node.name}: bvcnid converged`,
            () => {
              if (!d.running) throw new Error(`bvcnid on ${d.node.name} exited: ${JSON.stringify(d.logs.slice(-5))}`);
              last = enforcing ? nodeMapsDiff(d.node.pinDir, want) : compileLogDiff(d.logged(/network policy compiled/).at(-1), want, this.model);
              return last.length === 0;
            },
            this.o.convergeTimeoutMs,
            50,
          );
        } catch (e) {
          throw new Error(`${(e as Error).message}\n  still different:\n    ${last.slice(0, 25).join('\n    ')}`);
        }
      }),
    );
  }

  // ---- probing ---------------------------------------------------------------------

  /**
   * The whole matrix for one protocol and port, loopback excepted (upstream ignores it:
   * a pod's traffic to itself never leaves it). Sources probe in parallel, at most
   * `concurrency` probes in flight; pairs that failed where `expected` (default: all)
   * says connected are probed once more, with 3x the deadline, to keep a lost packet
   * from failing a case.
   */
  async matrix(protocol: Protocol, port: number, expected?: ReadonlyMap<string, boolean>, via: ProbeVia = 'pod'): Promise<MatrixResult> {
    const observed = new Map<string, ProbeResult>();
    const pairs = ALL_PODS.flatMap((from) => ALL_PODS.filter((to) => to !== from).map((to) => ({ from, to })));
    await this.probePairs(pairs, protocol, port, observed, via);
    // Only a failure that should have been an answer is retried: a lost packet can hide an
    // allowed connection, nothing can fake an answer to a denied one.
    const again = pairs.filter(({ from, to }) => !verdict(observed.get(`${from}>${to}`)!, to) && (expected?.get(`${from}>${to}`) ?? true));
    const retried: string[] = [];
    if (again.length > 0) {
      // With a longer deadline: the first try may have met a machine busy with other jobs.
      const second = new Map<string, ProbeResult>();
      await this.probePairs(again, protocol, port, second, via, this.o.probeTimeoutMs * 3);
      for (const [k, r] of second) {
        if (verdict(r, k.split('>')[1]!)) retried.push(k);
        observed.set(k, r);
      }
    }
    this.stats.retried += retried.length;
    return { observed, retried };
  }

  private async probePairs(
    pairs: { from: string; to: string }[],
    protocol: Protocol,
    port: number,
    out: Map<string, ProbeResult>,
    via: ProbeVia,
    timeoutMs = this.o.probeTimeoutMs,
  ): Promise<void> {
    const bySource = new Map<string, string[]>();
    for (const { from, to } of pairs) bySource.set(from, [...(bySource.get(from) ?? []), to]);
    const sources = [...bySource.keys()];
    const perSource = Math.max(...[...bySource.values()].map((t) => t.length));
    // Bounded: whole sources at a time, so that `concurrency` probes are in flight at most.
    const parallelSources = Math.max(1, Math.floor(this.o.concurrency / perSource));
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < sources.length) {
        const from = sources[next++]!;
        const tos = bySource.get(from)!;
        const targets = tos.map((to) => ({ ip: this.targetIp(to, via), port, proto: protocol }));
        const results = await this.pods.get(from)!.agent.probe(targets, timeoutMs, tos.length);
        this.stats.probes += targets.length;
        tos.forEach((to, i) => out.set(`${from}>${to}`, results[i]!));
      }
    };
    await Promise.all(Array.from({ length: Math.min(parallelSources, sources.length) }, worker));
  }

  /**
   * One probe of a case's step, reached one way: the whole matrix against its truth
   * table. undefined when they match; else a readable diff (both tables, each differing
   * pair and what its probe saw).
   */
  async check(probe: Probe, where: string, via: ProbeVia = 'pod'): Promise<{ retried: string[]; mismatch?: string }> {
    const expected = expandExpect(probe.expect);
    const { observed, retried } = await this.matrix(probe.protocol, probe.port, expected, via);
    const mismatch = compareMatrix(observed, expected);
    if (mismatch) return { retried, mismatch: `${where}, ${probe.protocol}/${probe.port} via ${via === 'pod' ? 'pod IPs' : 'ClusterIPs'}: the dataplane differs from the truth table\n${mismatch}` };
    return { retried };
  }

  /** Each node's drop counters so far (policy and others), for failure messages. */
  async drops(): Promise<string> {
    const dp = await loadDataplane();
    return this.c.nodes
      .map((n) => `drops on ${n.name}: ${dp.readDropStats(n.pinDir).filter((d) => d.packets > 0n).map((d) => `${d.reason}/${d.direction} ${d.packets}`).join(', ') || 'none'}`)
      .join('\n');
  }

  /**
   * A whole case from the model's first state: each step's actions, convergence, then
   * each of its probes reached each way `vias` names. Every
   * matrix runs even after one differs, so a failure lists every differing one.
   */
  async runCase(c: ConformanceCase, vias: readonly ProbeVia[] = ['pod']): Promise<CaseReport> {
    await this.reset();
    const report: CaseReport = { steps: c.steps.length, probes: 0, retried: 0, byVia: { pod: 0, service: 0 } };
    const mismatches: string[] = [];
    for (const [si, step] of c.steps.entries()) {
      for (const a of step.apply) this.apply(a);
      await this.converge();
      for (const p of step.probes)
        for (const via of vias) {
          const r = await this.check(p, `"${c.name}" step ${si + 1}`, via);
          report.probes++;
          report.byVia[via]++;
          report.retried += r.retried.length;
          if (r.mismatch) mismatches.push(r.mismatch);
        }
    }
    if (mismatches.length > 0) throw new Error(`${mismatches.join('\n\n')}\n${await this.drops()}`);
    return report;
  }
}

/** Whether a probe counts as "connected" to `to`: an answer from that very pod. */
export function verdict(r: ProbeResult, to: string): boolean {
  return r.ok && r.server === to;
}

/**
 * undefined when the observed matrix equals the truth table (loopback excepted); else
 * both tables as upstream prints them (. connected, X blocked, *…* where they differ)
 * and what each differing probe saw.
 */
export function compareMatrix(observed: ReadonlyMap<string, ProbeResult>, expected: ReadonlyMap<string, boolean>): string | undefined {
  const seen = new Map<string, boolean>();
  const wrong: string[] = [];
  for (const [k, want] of expected) {
    const [from, to] = k.split('>') as [string, string];
    if (from === to) {
      seen.set(k, want);
      continue;
    }
    const r = observed.get(k);
    if (!r) throw new Error(`no probe result for ${k}`);
    const got = verdict(r, to);
    seen.set(k, got);
    if (got !== want) wrong.push(`${from} -> ${to}: expected ${want ? 'connected' : 'blocked'}, ${r.ok ? `answered by ${r.server}` : r.error}`);
  }
  if (wrong.length === 0) return undefined;
  return `expected\n${formatTable(expected)}\nobserved (*: differs)\n${formatTable(seen, expected)}\n${wrong.join('\n')}`;
}

export type EnforcementMode = { enforcing: true } | { enforcing: false; why: string };

/**
 * Whether the nodes enforce NetworkPolicy: the policy maps are pinned and bvcnid fills
 * them (`converged` resolves once they hold what the test expects). Maps pinned but
 * left empty everywhere (the maps exist, their writer does not yet) count as not
 * enforcing, with the reason; maps filled wrongly are an error, never a skip.
 */
export async function enforcementMode(nodes: readonly SimNode[], converged: () => Promise<void>): Promise<EnforcementMode> {
  if (!nodes.every((n) => existsSync(join(n.pinDir, POLICY_MAP)))) return { enforcing: false, why: `no ${POLICY_MAP} map pinned` };
  try {
    await converged();
    return { enforcing: true };
  } catch (e) {
    if (nodes.every((n) => ipcacheSize(n) === 0)) return { enforcing: false, why: `${POLICY_MAP} is pinned but bvcnid writes no ${IPCACHE_MAP} entry` };
    throw e;
  }
}

function ipcacheSize(n: SimNode): number {
  const m = BpfMap.openPinnedRaw(join(n.pinDir, IPCACHE_MAP));
  try {
    return [...m.keys()].length;
  } finally {
    m.close();
  }
}

/** Pre-enforcement convergence: bvcnid's last compilation has the model's counts. */
function compileLogDiff(log: Record<string, unknown> | undefined, want: CompiledNode, model: ModelCluster): string[] {
  if (!log) return ['no "network policy compiled" yet'];
  const expect: Record<string, number> = {
    pods: model.pods.size,
    namespaces: model.namespaces.size,
    policies: model.policies.size,
    endpoints: want.endpoints.size,
    entries: entryCount(want),
  };
  // Only the counts the line carries: its other fields are bvcnid's to change.
  return Object.entries(expect)
    .filter(([k, v]) => k in log && log[k] !== v)
    .map(([k, v]) => `${k}: logged ${String(log[k])}, expected ${v}`);
}

// ---- the pinned maps, up to identity numbering -------------------------------------------

/** "10.244.0.5/32" from an ipcache/LPM key's bytes (prefixlen host order, address network order). */
function prefixText(key: Buffer): string {
  return `${intToIpv4(key.readUInt32BE(4))}/${key.readUInt32LE(0)}`;
}

/**
 * A canonical name per identity, the same on both sides whatever the numbers: the
 * reserved ones keep theirs; an allocated one is named by the ipcache prefixes that
 * map to it (an identity is exactly the class of its addresses).
 */
function identityNames(ipcache: Iterable<[string, number]>): (id: number) => string {
  const members = new Map<number, string[]>();
  for (const [prefix, id] of ipcache) members.set(id, [...(members.get(id) ?? []), prefix]);
  return (id) => (id < FIRST_ALLOCATED_ID ? `#${id}` : members.has(id) ? `[${members.get(id)!.sort().join(' ')}]` : `[unmapped]`);
}

/** A policy key's bytes as text, its identity canonical. */
function policyKeyText(key: Buffer, name: (id: number) => string): string {
  const prefixlen = key.readUInt32LE(0);
  const endpoint = intToIpv4(key.readUInt32BE(4));
  const dir = key.readUInt8(12) === 0 ? 'ingress' : 'egress';
  const proto = key.readUInt8(13);
  const port = key.readUInt16BE(14);
  return `${endpoint} ${dir} from/to ${name(key.readUInt32BE(8))} proto ${proto} port ${port} /${prefixlen}`;
}

/**
 * What differs between a node's pinned policy state and the compiler's tables: the
 * ipcache (every prefix, and which prefixes share an identity), every endpoint's
 * entries, isolation flags (and no endpoint left pending) and the endpoint's own
 * identity. Empty when converged.
 */
export function nodeMapsDiff(pinDir: string, want: CompiledNode): string[] {
  const diffs: string[] = [];
  const ipcache = BpfMap.openPinnedRaw(join(pinDir, IPCACHE_MAP));
  const policy = BpfMap.openPinnedRaw(join(pinDir, POLICY_MAP));
  const endpoints = openEndpointsMap(pinDir);
  try {
    const haveIpcache: [string, number][] = [...ipcache.entries()].map(([k, v]) => [prefixText(k), v.readUInt32LE(0)]);
    const wantIpcache: [string, number][] = want.ipcache.map((e) => [`${intToIpv4(e.cidr.addr)}/${e.cidr.prefix}`, e.identity]);
    const haveName = identityNames(haveIpcache);
    const wantName = identityNames(wantIpcache);
    // The world needs no entry (a miss is the world: /work/coord/policy-abi.md): 0.0.0.0/0 -> world is the same as none.
    const entries = (list: [string, number][], name: (id: number) => string): Set<string> =>
      new Set(list.map(([p, id]) => `${p} -> ${name(id)}`).filter((e) => e !== `0.0.0.0/0 -> #${ID_WORLD}`));
    setDiff('ipcache', entries(haveIpcache, haveName), entries(wantIpcache, wantName), diffs);
    const haveKeys = new Set([...policy.keys()].map((k) => policyKeyText(k, haveName)));
    const wantKeys = new Set<string>();
    for (const ep of want.endpoints.values())
      for (const dir of ['ingress', 'egress'] as const) for (const e of ep[dir].entries) wantKeys.add(policyKeyText(policyEntryKey(ep.ip, dir, e), wantName));
    setDiff('policy', haveKeys, wantKeys, diffs);
    for (const [k, v] of endpoints.entries()) {
      const ep = want.endpoints.get(k.ip);
      if (!ep) continue; // the node's own or a non-Pod endpoint: no policy state to check
      const wantFlags = (ep.ingress.isolated ? ENDPOINT_F_INGRESS_ISOLATED : 0) | (ep.egress.isolated ? ENDPOINT_F_EGRESS_ISOLATED : 0);
      if ((v.flags & POLICY_FLAGS) !== wantFlags) diffs.push(`endpoint ${k.ip} (${ep.namespace}/${ep.name}): policy flags ${(v.flags & POLICY_FLAGS).toString(16)}, expected ${wantFlags.toString(16)}`);
      if (haveName(v.identity) !== wantName(ep.identity)) diffs.push(`endpoint ${k.ip}: identity ${haveName(v.identity)}, expected ${wantName(ep.identity)}`);
    }
  } finally {
    ipcache.close();
    policy.close();
    endpoints.close();
  }
  return diffs;
}

function setDiff(what: string, have: ReadonlySet<string>, want: ReadonlySet<string>, out: string[]): void {
  for (const w of want) if (!have.has(w)) out.push(`${what}: missing ${w}`);
  for (const h of have) if (!want.has(h)) out.push(`${what}: extra ${h}`);
}
