// Dataplane benchmarks on simulated clusters: bvcni vs the flannel-style
// kernel VXLAN path vs the bare underlay (with a minimal tc overlay as the
// ceiling for any program at bvcni's attach points), and bvcni's masquerade
// vs nftables masquerade. Variants run interleaved (A B A B ...) so machine noise hits
// all of them alike; medians and ratios come from the same run.
//   node --import tsx test/bench/dataplane.bench.ts      (BENCH_RUNS=n, default 7; BENCH_SECONDS=s, default 3)
//   BVB_ONLY=crr,masq runs only those parts (tput, rr, masq, crr, iso, nopol, pol100, scale); default: all of them.
// iso: bvcni's programs against the same programs built without the pod-isolation
// checks (dist/bpf-noiso, -DBVCNI_NO_ISOLATION), swapped in place on the same cluster.
// nopol: the same with NetworkPolicy compiled out (dist/bpf-nopol, -DBVCNI_NO_POLICY), no policies.
// pol100: 100 NetworkPolicies selecting the measured pods (allowing the traffic) against none.
import {
  createCluster,
  iperf,
  loadDataplane,
  median,
  programTunnels,
  rrLatency,
  startIperfServer,
  startResponder,
  uniquePrefix,
  IPERF_PORT,
  type Cluster,
  type SimNetns,
  type SimPod,
} from '../../src/sim/index.js';
import { tunnelKey, tunnelValue } from '../../src/dataplane/abi.js';
import { Programs } from '../../src/dataplane/index.js';
import { BpfMap } from '../../loader/index.js';
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { interleave, type Variant } from './stats.js';
import { TcpCrr } from './tcp-crr.js';
import { installMinimalOverlay } from '../fixtures/bpf/min-overlay.js';
import { applyPolicyDiff, openPolicyMaps, setEndpointPolicyState } from '../../src/dataplane/policy.js';
import { compileNode, diffNode, entryCount, parseNamespace, parseNetworkPolicy, parseNode, parsePod, type ClusterState, type CompiledNode } from '../../src/policy/index.js';

const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 7));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const RR_PORT = 7001;
const RR_CPU = 1;
const CRR_PORT = 7002;
const CRR_MS = 1000;
const SCALE_ENTRIES = 5000;
const DIST = resolve(dirname(fileURLToPath(import.meta.url)), '../../dist');
// The product's objects, and the same sources built with -DBVCNI_NO_ISOLATION (Makefile).
const OBJ_WITH = join(DIST, 'bpf');
const OBJ_WITHOUT = join(DIST, 'bpf-noiso');
// The same sources with NetworkPolicy compiled out (-DBVCNI_NO_POLICY).
const OBJ_NOPOL = join(DIST, 'bpf-nopol');
const PARTS = ['tput', 'rr', 'masq', 'crr', 'iso', 'nopol', 'pol100', 'scale'] as const;
const ONLY = (process.env.BVB_ONLY ?? PARTS.join(',')).split(',').map((p) => p.trim());
for (const p of ONLY) if (!(PARTS as readonly string[]).includes(p)) throw new Error(`BVB_ONLY: unknown part ${p} (parts: ${PARTS.join(', ')})`);
const part = (p: (typeof PARTS)[number]): boolean => ONLY.includes(p);

interface Row {
  bench: string;
  variant: string;
  median: number;
  unit: string;
  ratio?: string;
  paired?: string;
  target?: string;
}
const rows: Row[] = [];
const notes: string[] = [];

function record(bench: string, unit: string, res: Map<string, number[]>): void {
  for (const [variant, xs] of res) rows.push({ bench, variant, median: median(xs), unit });
}

function ratio(bench: string, a: string, b: string, target: string, res: Map<string, number[]>): void {
  const row = rows.find((r) => r.bench === bench && r.variant === a);
  const ma = median(res.get(a) ?? []);
  const mb = median(res.get(b) ?? []);
  if (!row || !Number.isFinite(ma) || !Number.isFinite(mb)) return;
  const text = `${(ma / mb).toFixed(2)}× ${b}`;
  row.ratio = row.ratio ? `${row.ratio}; ${text}` : text;
  // Runs r of a and b ran back to back, so their quotient cancels most of the machine's drift.
  const xs = res.get(a)!;
  const ys = res.get(b)!;
  const pairs = xs.map((x, i) => x / ys[i]!).filter(Number.isFinite);
  const ptext = `${median(pairs).toFixed(2)}×`;
  row.paired = row.paired ? `${row.paired}; ${ptext}` : ptext;
  row.target = row.target ? `${row.target}; ${target}` : target;
}

function printTable(): void {
  const lines = [
    '| benchmark | variant | median | unit | ratio of medians | median of paired ratios | target |',
    '|---|---|---:|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.bench} | ${r.variant} | ${r.median.toFixed(r.median >= 100 ? 0 : 2)} | ${r.unit} | ${r.ratio ?? ''} | ${r.paired ?? ''} | ${r.target ?? ''} |`,
    ),
  ];
  process.stdout.write(`\n${lines.join('\n')}\n\n(${RUNS} interleaved runs per variant, ${SECONDS} s per iperf3 run)\n`);
  for (const n of notes) process.stdout.write(`- ${n}\n`);
}

const tcpCrr = new TcpCrr(CRR_MS);

const loadavg = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const startLoad = loadavg();
const clusters: Cluster[] = [];
// Lives only through the throughput part (see below).
let minimal: Cluster | undefined;
try {
  const flannel = await createCluster({ prefix: uniquePrefix('bvs'), nodes: 2, dataplane: 'flannel', podsPerNode: 1 });
  clusters.push(flannel);
  let bvcni: Cluster | undefined;
  try {
    await loadDataplane();
    bvcni = await createCluster({ prefix: uniquePrefix('bvs'), nodes: 2, dataplane: 'bvcni', podsPerNode: 1 });
    clusters.push(bvcni);
  } catch (e) {
    process.stderr.write(`bvcni dataplane unavailable, measuring baselines only: ${(e as Error).message}\n`);
  }

  const ends = (c: Cluster) => ({ client: c.pods[0]!, server: c.pods[1]! });
  // The ceiling for bvcni's programs: a two-node bvcni cluster whose pod and
  // uplink programs are replaced by the least work a tc VXLAN overlay can do.
  if (bvcni && part('tput')) {
    minimal = await createCluster({ prefix: uniquePrefix('bvs'), nodes: 2, dataplane: 'bvcni', podsPerNode: 1 });
    await installMinimalOverlay(minimal);
    await startIperfServer(minimal, ends(minimal).server);
  }

  // Servers: iperf3 and a CPU-pinned echo responder at every receiving end.
  for (const c of clusters) {
    const { server } = ends(c);
    await startIperfServer(c, server);
    await startIperfServer(c, c.internet);
    c.track(await startResponder(server.path, RR_PORT, { cpu: RR_CPU }));
    c.track(await startResponder(c.internet.path, RR_PORT));
    await tcpCrr.startServer(c, c.internet, CRR_PORT);
  }
  await startIperfServer(flannel, flannel.nodes[1]!);
  flannel.track(await startResponder(flannel.nodes[1]!.path, RR_PORT, { cpu: RR_CPU }));

  const tput = (c: Cluster, from: string, to: string) => async () => (await iperf(from, to, { seconds: SECONDS, omit: 1 })).gbps;
  const fE = ends(flannel);
  const pp: Variant[] = [];
  if (bvcni) pp.push({ name: 'bvcni', run: tput(bvcni, ends(bvcni).client.path, ends(bvcni).server.ip) });
  pp.push({ name: 'flannel-style', run: tput(flannel, fE.client.path, fE.server.ip) });
  pp.push({ name: 'underlay', run: tput(flannel, flannel.nodes[0]!.path, flannel.nodes[1]!.ip) });
  if (minimal) pp.push({ name: 'minimal tc overlay', run: tput(minimal, ends(minimal).client.path, ends(minimal).server.ip) });
  if (part('tput')) {
    const rTput = await interleave('pod-to-pod TCP', pp, RUNS);
    record('cross-node TCP single stream', 'Gbit/s', rTput);
    ratio('cross-node TCP single stream', 'bvcni', 'flannel-style', '≥ 1.20', rTput);
    ratio('cross-node TCP single stream', 'bvcni', 'underlay', '≥ 0.90', rTput);
    ratio('cross-node TCP single stream', 'bvcni', 'minimal tc overlay', 'no target', rTput);
    ratio('cross-node TCP single stream', 'minimal tc overlay', 'underlay', 'ceiling, no target', rTput);
  }
  await minimal?.destroy();
  minimal = undefined;

  const rr = (from: string, to: string) => async () => (await rrLatency(from, to, RR_PORT, { cpu: RR_CPU, count: 5000 })).p50;
  const rrv: Variant[] = [];
  if (bvcni) rrv.push({ name: 'bvcni', run: rr(ends(bvcni).client.path, ends(bvcni).server.ip) });
  rrv.push({ name: 'flannel-style', run: rr(fE.client.path, fE.server.ip) });
  rrv.push({ name: 'underlay', run: rr(flannel.nodes[0]!.path, flannel.nodes[1]!.ip) });
  if (part('rr')) {
    const rRr = await interleave('TCP RR', rrv, RUNS);
    record('cross-node TCP RR p50 (1 CPU)', 'µs', rRr);
    ratio('cross-node TCP RR p50 (1 CPU)', 'bvcni', 'flannel-style', '≤ 0.85', rRr);
  }

  const mq: Variant[] = [];
  if (bvcni) mq.push({ name: 'bvcni masquerade', run: tput(bvcni, ends(bvcni).client.path, bvcni.internet.ip) });
  mq.push({ name: 'nft masquerade', run: tput(flannel, fE.client.path, flannel.internet.ip) });
  if (part('masq')) {
    const rMq = await interleave('masquerade TCP', mq, RUNS);
    record('pod → internet TCP', 'Gbit/s', rMq);
    ratio('pod → internet TCP', 'bvcni masquerade', 'nft masquerade', '≥ 1.0', rMq);
  }

  if (part('crr')) {
    // Short connections leave TIME_WAIT behind on the client: let it reuse ports, from a wide range.
    const clientSysctls = ['sysctl', '-qw', 'net.ipv4.tcp_tw_reuse=1', 'net.ipv4.ip_local_port_range=1024 65535'];
    for (const c of clusters) await c.exec(ends(c).client, clientSysctls);
    const failed = new Map<string, number>();
    const crr = (c: Cluster, from: SimNetns, label: string) => async () => {
      const r = await tcpCrr.rate(from, c.internet.ip, CRR_PORT);
      failed.set(label, (failed.get(label) ?? 0) + r.failed);
      return r.perSecond;
    };
    const cr: Variant[] = [];
    if (bvcni) cr.push({ name: 'bvcni masquerade', run: crr(bvcni, ends(bvcni).client, 'bvcni') });
    cr.push({ name: 'nft masquerade', run: crr(flannel, fE.client, 'flannel') });
    // The ceiling for any pod: the node's own connections, with no pod hop and no NAT
    // (a bvcni node, whose namespace has no netfilter rules).
    const ceilingNode = bvcni?.nodes[0];
    if (bvcni && ceilingNode) {
      await bvcni.exec(ceilingNode, clientSysctls);
      cr.push({ name: 'node itself, no pod, no NAT', run: crr(bvcni, ceilingNode, 'node itself') });
    }
    const rCr = await interleave('short connections', cr, RUNS);
    record('pod → internet short connections', 'conn/s', rCr);
    for (const [dp, n] of failed) notes.push(`short connections, ${dp}: ${n} connections got no answer within 1 s over all runs`);
    if (bvcni) {
      const drops = (await loadDataplane()).readDropStats(ends(bvcni).client.node.pinDir).filter((d) => d.packets > 0n);
      notes.push(`bvcni drops on the client node after the masquerade runs: ${drops.map((d) => `${d.reason}/${d.direction}=${d.packets}`).join(', ') || 'none'}`);
    }
    ratio('pod → internet short connections', 'bvcni masquerade', 'nft masquerade', '≥ 1.2', rCr);
    ratio('pod → internet short connections', 'node itself, no pod, no NAT', 'nft masquerade', 'ceiling, no target', rCr);
  }

  /**
   * Two variants of the same cluster, measured interleaved on the same flows:
   * cross-node TCP, TCP RR p50 (one CPU), pod → internet short connections.
   * enter() switches the cluster to a variant (a no-op when it is in it).
   */
  const compareOnCluster = async (
    b: Cluster,
    label: string,
    a: { name: string; enter: () => Promise<void> },
    z: { name: string; enter: () => Promise<void> },
    targets: { tput: string; rr: string; crr: string },
  ): Promise<void> => {
    const bE = ends(b);
    const clientSysctls = ['sysctl', '-qw', 'net.ipv4.tcp_tw_reuse=1', 'net.ipv4.ip_local_port_range=1024 65535'];
    await b.exec(bE.client, clientSysctls);
    const variants = (measure: () => Promise<number>): Variant[] => [
      { name: a.name, run: async () => (await a.enter(), measure()) },
      { name: z.name, run: async () => (await z.enter(), measure()) },
    ];
    try {
      const rT = await interleave(`${label}: cross-node TCP`, variants(tput(b, bE.client.path, bE.server.ip)), RUNS);
      record(`${label}: cross-node TCP single stream`, 'Gbit/s', rT);
      ratio(`${label}: cross-node TCP single stream`, a.name, z.name, targets.tput, rT);
      const rR = await interleave(`${label}: TCP RR`, variants(rr(bE.client.path, bE.server.ip)), RUNS);
      record(`${label}: cross-node TCP RR p50 (1 CPU)`, 'µs', rR);
      ratio(`${label}: cross-node TCP RR p50 (1 CPU)`, a.name, z.name, targets.rr, rR);
      let failed = 0;
      const rC = await interleave(
        `${label}: short connections`,
        variants(async () => {
          const r = await tcpCrr.rate(bE.client, b.internet.ip, CRR_PORT);
          failed += r.failed;
          return r.perSecond;
        }),
        RUNS,
      );
      record(`${label}: pod → internet short connections`, 'conn/s', rC);
      ratio(`${label}: pod → internet short connections`, a.name, z.name, targets.crr, rC);
      if (failed) notes.push(`${label}, short connections: ${failed} connections got no answer within 1 s over all runs`);
    } finally {
      await a.enter();
    }
  };

  /** Replaces every node's programs in place with those of objDir (same tc handle, pinned maps kept). */
  let installed = OBJ_WITH;
  const installBuild = async (b: Cluster, objDir: string): Promise<void> => {
    if (installed === objDir) return;
    const dpApi = await loadDataplane();
    for (const n of b.nodes) (await dpApi.ensureNodeDataplane({ ...n.dataplaneConfig, objDir })).close();
    installed = objDir;
  };
  const needBuilds = (what: string, dirs: string[]): void => {
    const missing = dirs.flatMap((d) => Object.values(Programs).map((p) => join(d, p.object))).filter((f) => !existsSync(f));
    if (missing.length) throw new Error(`BVB_ONLY=${what} needs ${missing.join(', ')} (make build)`);
  };

  if (bvcni && part('iso')) {
    // The pod-isolation checks on the hot path (issue 13): the same cluster, the same
    // flows, the programs replaced in place between runs, so each pair of runs
    // differs only in the checks.
    needBuilds('iso', [OBJ_WITH, OBJ_WITHOUT]);
    const dpApi = await loadDataplane();
    const b = bvcni;
    const bE = ends(b);
    // The swap must change what is measured: a pod's UDP to its node's VXLAN port is
    // counted as DROP_POD_VXLAN by the programs with the checks and by no other.
    const podVxlanDrops = async (): Promise<bigint> => {
      await b.exec(bE.client, ['python3', '-c', `import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('${bE.client.node.ip}', ${b.nodes[0]!.dataplaneConfig.vxlanPort}))`]);
      return dpApi.readDropStats(bE.client.node.pinDir).filter((d) => d.reason === 'DROP_POD_VXLAN').reduce((a, d) => a + d.packets, 0n);
    };
    const counts: bigint[] = [await podVxlanDrops()];
    await installBuild(b, OBJ_WITHOUT);
    counts.push(await podVxlanDrops());
    await installBuild(b, OBJ_WITH);
    counts.push(await podVxlanDrops());
    if (!(counts[0]! > 0n && counts[1] === counts[0] && counts[2]! > counts[1]!)) {
      throw new Error(`the two program sets do not differ in their isolation checks (DROP_POD_VXLAN counts ${counts.join(', ')})`);
    }
    await compareOnCluster(
      b,
      'isolation checks',
      { name: 'with isolation', enter: () => installBuild(b, OBJ_WITH) },
      { name: 'without isolation', enter: () => installBuild(b, OBJ_WITHOUT) },
      { tput: '≥ 0.98', rr: '≤ 1.02', crr: '≥ 0.97' },
    );
  }

  if (bvcni && part('nopol')) {
    // NetworkPolicy with no policy at all (issue 16): what an endpoint without a
    // policy flag pays (one flag test per delivery and per pod packet) against
    // the same sources with policy compiled out (-DBVCNI_NO_POLICY).
    needBuilds('nopol', [OBJ_WITH, OBJ_NOPOL]);
    const dpApi = await loadDataplane();
    const b = bvcni;
    const bE = ends(b);
    // The swap must change what is measured: a pending client's packet is
    // DROP_POLICY_PENDING with policy in the programs, and passes without.
    const pendingDrops = async (): Promise<bigint> => {
      {
        using pm = openPolicyMaps(bE.client.node.pinDir);
        setEndpointPolicyState(pm, bE.client.ip, { identity: 0, pending: true });
      }
      try {
        await b.exec(bE.client, ['python3', '-c', `import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('${bE.server.ip}', 9))`]);
      } finally {
        using pm = openPolicyMaps(bE.client.node.pinDir);
        setEndpointPolicyState(pm, bE.client.ip, { identity: 0, pending: false });
      }
      return dpApi.readDropStats(bE.client.node.pinDir).filter((d) => d.reason === 'DROP_POLICY_PENDING').reduce((a, d) => a + d.packets, 0n);
    };
    const counts: bigint[] = [await pendingDrops()];
    await installBuild(b, OBJ_NOPOL);
    counts.push(await pendingDrops());
    await installBuild(b, OBJ_WITH);
    counts.push(await pendingDrops());
    if (!(counts[0]! > 0n && counts[1] === counts[0] && counts[2]! > counts[1]!)) {
      throw new Error(`the two program sets do not differ in their policy check (DROP_POLICY_PENDING counts ${counts.join(', ')})`);
    }
    await compareOnCluster(
      b,
      'no policies',
      { name: 'policy built in, no policies', enter: () => installBuild(b, OBJ_WITH) },
      { name: 'policy compiled out', enter: () => installBuild(b, OBJ_NOPOL) },
      { tput: '≥ 0.98', rr: '≤ 1.02', crr: '≥ 0.98' },
    );
  }

  if (bvcni && part('pol100')) {
    // 100 NetworkPolicies selecting the measured pods and allowing the measured
    // traffic (issue 16) against none, on the same programs: the isolated pods'
    // flows are tracked (bvcni_pod_ct) and each new flow looks policy up.
    const b = bvcni;
    const bE = ends(b);
    const dpApi = await loadDataplane();
    const rawPod = (p: SimPod) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: p.podName, namespace: 'bench', labels: { bench: 'yes' } },
      spec: { nodeName: p.node.name, containers: [{ name: 'c' }] },
      status: { phase: 'Running', podIP: p.ip, podIPs: [{ ip: p.ip }] },
    });
    const stateWith = (n: number): ClusterState => ({
      namespaces: [parseNamespace({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bench', labels: { 'kubernetes.io/metadata.name': 'bench' } } })],
      pods: b.pods.map((p) => parsePod(rawPod(p))),
      nodes: b.nodes.map((nd) => parseNode({ apiVersion: 'v1', kind: 'Node', metadata: { name: nd.name }, status: { addresses: [{ type: 'InternalIP', address: nd.ip }] } })),
      policies: Array.from({ length: n }, (_, i) =>
        parseNetworkPolicy({
          apiVersion: 'networking.k8s.io/v1',
          kind: 'NetworkPolicy',
          metadata: { name: `bench-${i}`, namespace: 'bench' },
          spec: {
            podSelector: { matchLabels: { bench: 'yes' } },
            policyTypes: ['Ingress', 'Egress'],
            ingress: [{ from: [{ podSelector: { matchLabels: { bench: 'yes' } } }], ports: [IPERF_PORT, RR_PORT, 20000 + i].map((port) => ({ port, protocol: 'TCP' })) }],
            egress: [
              { to: [{ podSelector: { matchLabels: { bench: 'yes' } } }], ports: [IPERF_PORT, RR_PORT, 20000 + i].map((port) => ({ port, protocol: 'TCP' })) },
              { to: [{ ipBlock: { cidr: `${b.internet.ip}/32` } }], ports: [{ port: CRR_PORT, protocol: 'TCP' }, { port: 30000 + i, protocol: 'TCP' }] },
            ],
          },
        }),
      ),
    });
    const compiled = new Map<string, CompiledNode>();
    const apply = (n: number): void => {
      const st = stateWith(n);
      for (const nd of b.nodes) {
        const next = compileNode(st, nd.name);
        using pm = openPolicyMaps(nd.pinDir);
        applyPolicyDiff(pm, diffNode(compiled.get(nd.name) ?? null, next), next);
        compiled.set(nd.name, next);
      }
    };
    let current = -1;
    const enter = (n: number) => async (): Promise<void> => {
      if (current !== n) apply(n);
      current = n;
    };
    // The variant must change what is measured: UDP to the server is no policy's, so dropped with them.
    const denied = async (): Promise<bigint> => {
      await b.exec(bE.client, ['python3', '-c', `import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('${bE.server.ip}', 9))`]);
      const ds = [...new Set([bE.client.node.pinDir, bE.server.node.pinDir])].flatMap((pin) => dpApi.readDropStats(pin));
      return ds.filter((d) => d.reason === 'DROP_POLICY_EGRESS' || d.reason === 'DROP_POLICY_INGRESS').reduce((a, d) => a + d.packets, 0n);
    };
    await enter(0)();
    const counts = [await denied()];
    await enter(100)();
    counts.push(await denied());
    if (!(counts[1]! > counts[0]!)) throw new Error(`the 100 policies do not change what is dropped (policy drops ${counts.join(', ')})`);
    const entries = [...compiled.values()].reduce((a, cn) => a + entryCount(cn), 0);
    notes.push(`100 policies: ${entries} allow entries over ${b.nodes.length} nodes, both measured pods isolated both ways`);
    try {
      await compareOnCluster(b, '100 policies', { name: '100 policies', enter: enter(100) }, { name: 'no policies', enter: enter(0) }, { tput: '≥ 0.95', rr: 'no target', crr: '≥ 0.90' });
    } finally {
      await enter(0)();
    }
  }

  if (bvcni && part('scale')) {
    // Fill the sending node's tunnel map with remote podCIDRs outside the
    // cluster's real ones (100.64.0.0/10 /24s), so lookups walk a large trie
    // while the measured flow still matches its own entry.
    const local = bvcni.nodes[0]!;
    const tunnel = BpfMap.openPinned(`${local.pinDir}/bvcni_tunnel`, tunnelKey, tunnelValue);
    const filler = Array.from({ length: SCALE_ENTRIES - 2 * (bvcni.nodes.length - 1) }, (_, k) => ({
      key: { prefixlen: 24, addr: `100.${64 + (k >> 8)}.${k & 255}.0` },
      value: { node_ip: `192.0.2.${100 + (k % 100)}`, flags: 0 },
    }));
    const count = (): number => [...tunnel.keys()].length;
    const bE = ends(bvcni);
    const sc: Variant[] = [
      {
        name: `${2 * (bvcni.nodes.length - 1)} entries`,
        run: async () => {
          for (const f of filler) tunnel.delete(f.key);
          if (count() !== 2 * (bvcni!.nodes.length - 1)) throw new Error(`tunnel map has ${count()} entries`);
          return (await iperf(bE.client.path, bE.server.ip, { seconds: SECONDS, omit: 1 })).gbps;
        },
      },
      {
        name: `${SCALE_ENTRIES} entries`,
        run: async () => {
          for (const f of filler) tunnel.update(f.key, f.value);
          if (count() !== SCALE_ENTRIES) throw new Error(`tunnel map has ${count()} entries`);
          return (await iperf(bE.client.path, bE.server.ip, { seconds: SECONDS, omit: 1 })).gbps;
        },
      },
    ];
    const rSc = await interleave('tunnel map scale', sc, RUNS);
    for (const f of filler) tunnel.delete(f.key);
    tunnel.close();
    await programTunnels(bvcni);
    record('tunnel map scale, cross-node TCP', 'Gbit/s', rSc);
    ratio('tunnel map scale, cross-node TCP', sc[1]!.name, sc[0]!.name, '≥ 0.98', rSc);
  }
  notes.push(`load average (1/5/15 min) at start ${startLoad}, at end ${loadavg()} on ${availableParallelism()} CPUs: throughput runs are sensitive to other work on the machine (single runs varied by more than ±20% while developing this)`);
  printTable();
} finally {
  for (const c of clusters) await c.destroy();
  await minimal?.destroy();
  tcpCrr.cleanup();
}
