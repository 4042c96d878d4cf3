// Drop events (bpf/lib/monitor.h) on a simulated two-node cluster:
//   flood: a pod floods its node with spoofed frames (every one a drop) while
//          another pod of the same node sends TCP to the other node; that
//          TCP's throughput with no flood, with the flood and nobody
//          listening, and with the flood and a `bvcnictl monitor`-like
//          listener (DropMonitor, read every 100 ms, default rate and burst),
//          interleaved; with the events shown and suppressed per run.
//   cost:  the hot path (forwarded TCP, no drops) with the events compiled
//          in (dist/bpf) vs -DBVCNI_NO_MONITOR (dist/bpf-nomon), nobody
//          listening, the programs swapped in place between runs.
//   polegress, polingress: issue 16's denied-packet flood. A pod floods a
//          pod of the other node as fast as one process can send (flood.c:
//          sendmmsg'd small UDP datagrams, or raw-socket TCP SYNs; every
//          packet a new flow, so each costs the policy its LPM lookups and
//          finds no conntrack entry) while a NetworkPolicy denies it: egress
//          isolation of the sender (dropped on its own node, before the
//          tunnel) or ingress isolation of the target (dropped on the
//          receiving node, after the tunnel). Meanwhile allowed TCP between
//          other pods, cross-node and on the node that drops, with no flood,
//          under each flood with nobody listening and with a monitor
//          listening, interleaved; the flood's rate from the sender and from
//          bvcni_stats (drops/s by reason), the events shown and suppressed.
//          Before measuring, per flood: without the policy the same flood
//          reaches its target (its /proc/net/snmp counts it), with it nothing
//          arrives and the drops are counted under the policy's reason.
//   node --import tsx test/bench/monitor.bench.ts   (BENCH_RUNS=n, default 5; BENCH_SECONDS=s, default 3;
//        BVB_ONLY=flood,cost,polegress,polingress; BVB_FLOOD=udp,syn: the policy floods' senders)
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { numPossibleCpus } from '../../loader/index.js';
import { startProcess } from '../../src/common/exec.js';
import { Programs } from '../../src/dataplane/index.js';
import { DropMonitor, MONITOR_DEFAULT_BURST, MONITOR_DEFAULT_RATE } from '../../src/dataplane/monitor.js';
import { applyPolicyDiff, openPolicyMaps } from '../../src/dataplane/policy.js';
import { isDropRow, readStats } from '../../src/dataplane/stats.js';
import { compileNode, diffNode, parseNamespace, parseNetworkPolicy, parseNode, parsePod, type ClusterState, type CompiledNode, type NetworkPolicy } from '../../src/policy/index.js';
import { createCluster, iperf, linkInfo, loadDataplane, rrLatency, startIperfServer, startResponder, uniquePrefix, type Cluster, type SimNode, type SimPod } from '../../src/sim/index.js';
import { packet, PROTO } from '../bpf/packet.js';
import { Flooder, FLOOD_KINDS, type FloodKind } from './flood.js';
import { interleave, interleaveMetrics, median, printTable, type MetricsVariant, type Variant } from './stats.js';

const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 5));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const RR_PORT = 7003;
const RR_CPU = 1;
const DIST = resolve(dirname(fileURLToPath(import.meta.url)), '../../dist');
const OBJ_WITH = join(DIST, 'bpf');
const OBJ_WITHOUT = join(DIST, 'bpf-nomon');
const PARTS = ['flood', 'cost', 'polegress', 'polingress'] as const;
const ONLY = (process.env.BVB_ONLY ?? PARTS.join(',')).split(',').map((p) => p.trim());
for (const p of ONLY) if (!(PARTS as readonly string[]).includes(p)) throw new Error(`BVB_ONLY: unknown part ${p} (parts: ${PARTS.join(', ')})`);
const FLOODS = (process.env.BVB_FLOOD ?? FLOOD_KINDS.join(',')).split(',').map((k) => k.trim()) as FloodKind[];
for (const k of FLOODS) if (!FLOOD_KINDS.includes(k)) throw new Error(`BVB_FLOOD: unknown flood ${k} (floods: ${FLOOD_KINDS.join(', ')})`);
/** The port the policies allow (TCP, from and to the bench pods), and the SYN flood's target port. */
const POLICY_PORT = 80;

// Sends one frame over and over for `seconds` (bounded: it stops by itself), then prints how many.
const FLOOD = String.raw`
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(('eth0', 0))
f, end, n = bytes.fromhex(sys.argv[1]), time.time() + float(sys.argv[2]), 0
while time.time() < end:
    for _ in range(100):
        try:
            s.send(f)
        except OSError:
            pass
    n += 100
print(n, flush=True)
`;

const counter = (pinDir: string, reason: string): bigint => readStats(pinDir).filter((r) => r.reason === reason).reduce((s, r) => s + r.packets, 0n);

const rows: string[][] = [];
const notes: string[] = [];
const fmt = (x: number): string => x.toFixed(x >= 100 ? 0 : 2);

let c: Cluster | undefined;
let floodBin: Flooder | undefined;
try {
  await loadDataplane();
  // Node 0: attacker, client, a same-node server; node 1: server, the flood's target, a same-node client.
  c = await createCluster({ prefix: uniquePrefix('bvmb'), nodes: 2, dataplane: 'bvcni', podsPerNode: 3 });
  const n = c.nodes[0]!;
  const [attacker, client] = n.pods as [SimPod, SimPod];
  const server = c.nodes[1]!.pods[0]!;
  await startIperfServer(c, server);
  c.track(await startResponder(server.path, RR_PORT, { cpu: RR_CPU }));
  const tput = async (): Promise<number> => (await iperf(client.path, server.ip, { seconds: SECONDS, omit: 1 })).gbps;

  if (ONLY.includes('flood')) {
    const bridgeMac = (await linkInfo(n.path, n.bridge)).address;
    const spoofed = packet({ src: client.ip, dst: server.ip, proto: PROTO.UDP, sport: 4242, dport: 9999, srcMac: attacker.mac, dstMac: bridgeMac }).toString('hex');
    const floodRates: number[] = [];
    const shown: number[] = [];
    const suppressedPerRun: bigint[] = [];
    /** iperf with the flood running beside it; the flood's drops per second go to floodRates. */
    const underFlood = async (listen: boolean): Promise<number> => {
      const monitor = listen ? DropMonitor.open(n.pinDir) : undefined;
      let events = 0;
      const timer = monitor ? setInterval(() => (events += monitor.poll().length), 100) : undefined;
      const supp0 = counter(n.pinDir, 'MONITOR_SUPPRESSED');
      const drops0 = counter(n.pinDir, 'DROP_SPOOFED');
      const flood = startProcess(['python3', '-c', FLOOD, spoofed, String(SECONDS + 1.5)], { netns: attacker.path });
      let out = '';
      flood.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      const done = new Promise<void>((r) => flood.on('exit', () => r()));
      try {
        const g = await tput();
        await done;
        const drops = Number(counter(n.pinDir, 'DROP_SPOOFED') - drops0);
        floodRates.push(drops / (SECONDS + 1.5));
        if (monitor) {
          events += monitor.poll().length;
          shown.push(events);
          suppressedPerRun.push(counter(n.pinDir, 'MONITOR_SUPPRESSED') - supp0);
        }
        if (!Number(out.trim())) throw new Error(`the flood sent nothing: ${out}`);
        return g;
      } finally {
        if (timer) clearInterval(timer);
        monitor?.close();
        flood.kill();
      }
    };
    const variants: Variant[] = [
      { name: 'no flood', run: tput },
      { name: 'flood, nobody listening', run: () => underFlood(false) },
      { name: 'flood, monitor listening', run: () => underFlood(true) },
    ];
    const res = await interleave('flood: cross-node TCP of a neighbour pod', variants, RUNS);
    const base = median(res.get('no flood')!);
    for (const [name, xs] of res) rows.push(['flood: neighbour pod cross-node TCP', name, fmt(median(xs)), 'Gbit/s', `${(median(xs) / base).toFixed(2)}× no flood`]);
    notes.push(
      `flood: the attacker's spoofed frames dropped at a median ${fmt(median(floodRates))}/s; with a monitor listening (rate ${1000}/s and burst ${1000} per CPU, ${numPossibleCpus()} CPUs) ` +
        `it was shown a median ${median(shown)} events per run and ${median(suppressedPerRun.map(Number))} were counted as MONITOR_SUPPRESSED`,
    );
  }

  if (ONLY.includes('cost')) {
    const missing = [OBJ_WITH, OBJ_WITHOUT].flatMap((d) => Object.values(Programs).map((p) => join(d, p.object))).filter((f) => !existsSync(f));
    if (missing.length) throw new Error(`BVB_ONLY=cost needs ${missing.join(', ')} (make build)`);
    const dpApi = await loadDataplane();
    let installed = OBJ_WITH;
    const install = async (objDir: string): Promise<void> => {
      if (installed === objDir) return;
      for (const node of c!.nodes) (await dpApi.ensureNodeDataplane({ ...node.dataplaneConfig, objDir })).close();
      installed = objDir;
    };
    // The swap must change what is measured: with a lease held, a drop is an event in one set only.
    const eventsFor = async (): Promise<number> => {
      using m = DropMonitor.open(n.pinDir);
      await c!.exec(attacker, ['python3', '-c', `import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('${n.ip}', ${n.dataplaneConfig.vxlanPort}))`]);
      await new Promise((r) => setTimeout(r, 200));
      return m.poll().length;
    };
    const withEvents = await eventsFor();
    await install(OBJ_WITHOUT);
    const withoutEvents = await eventsFor();
    await install(OBJ_WITH);
    if (!(withEvents > 0 && withoutEvents === 0)) throw new Error(`the two program sets do not differ in their events (${withEvents} vs ${withoutEvents})`);
    const variants = (measure: () => Promise<number>): Variant[] => [
      { name: 'events compiled in, nobody listening', run: async () => (await install(OBJ_WITH), measure()) },
      { name: '-DBVCNI_NO_MONITOR', run: async () => (await install(OBJ_WITHOUT), measure()) },
    ];
    const rT = await interleave('cost: cross-node TCP', variants(tput), RUNS);
    const rR = await interleave('cost: TCP RR', variants(async () => (await rrLatency(client.path, server.ip, RR_PORT, { cpu: RR_CPU })).p50), RUNS);
    for (const [title, unit, r] of [['hot path: cross-node TCP single stream', 'Gbit/s', rT], ['hot path: cross-node TCP RR p50 (1 CPU)', 'µs', rR]] as const) {
      const without = median(r.get('-DBVCNI_NO_MONITOR')!);
      for (const [name, xs] of r) rows.push([title, name, fmt(median(xs)), unit, `${(median(xs) / without).toFixed(2)}× -DBVCNI_NO_MONITOR`]);
    }
    await install(OBJ_WITH);
  }
  if (ONLY.includes('polegress') || ONLY.includes('polingress')) {
    const [n0, n1] = c.nodes as [SimNode, SimNode];
    const local0 = n0.pods[2]!;
    const victim = n1.pods[1]!;
    const client1 = n1.pods[2]!;
    await startIperfServer(c, local0);
    const flooder = (floodBin = new Flooder());
    const tputOf = async (from: SimPod, to: SimPod): Promise<number> => (await iperf(from.path, to.ip, { seconds: SECONDS, omit: 1 })).gbps;

    // The policies, compiled and written as bvcnid does (only the difference), on both nodes.
    type PolicyCase = 'egress' | 'ingress';
    const role = (p: SimPod): string => (p === attacker ? 'attacker' : p === victim ? 'victim' : 'bench');
    const benchTcp = [{ port: POLICY_PORT, protocol: 'TCP' }];
    const policyFor = (k: PolicyCase): NetworkPolicy =>
      parseNetworkPolicy({
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: `flood-${k}`, namespace: 'bench' },
        spec:
          k === 'egress'
            ? // The attacker may open TCP 80 to bench pods: the flood (to the target) is no rule's.
              { podSelector: { matchLabels: { role: 'attacker' } }, policyTypes: ['Egress'], egress: [{ to: [{ podSelector: { matchLabels: { role: 'bench' } } }], ports: benchTcp }] }
            : // The target takes TCP 80 from bench pods: the attacker is not one.
              { podSelector: { matchLabels: { role: 'victim' } }, policyTypes: ['Ingress'], ingress: [{ from: [{ podSelector: { matchLabels: { role: 'bench' } } }], ports: benchTcp }] },
      });
    const compiled = new Map<string, CompiledNode>();
    const setPolicy = (k: PolicyCase | 'none'): void => {
      const st: ClusterState = {
        namespaces: [parseNamespace({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bench', labels: { 'kubernetes.io/metadata.name': 'bench' } } })],
        pods: c!.pods.map((p) =>
          parsePod({
            apiVersion: 'v1',
            kind: 'Pod',
            metadata: { name: p.podName, namespace: 'bench', labels: { role: role(p) } },
            spec: { nodeName: p.node.name, containers: [{ name: 'c' }] },
            status: { phase: 'Running', podIP: p.ip, podIPs: [{ ip: p.ip }] },
          }),
        ),
        nodes: c!.nodes.map((nd) => parseNode({ apiVersion: 'v1', kind: 'Node', metadata: { name: nd.name }, status: { addresses: [{ type: 'InternalIP', address: nd.ip }] } })),
        policies: k === 'none' ? [] : [policyFor(k)],
      };
      for (const nd of c!.nodes) {
        const next = compileNode(st, nd.name);
        using pm = openPolicyMaps(nd.pinDir);
        const r = applyPolicyDiff(pm, diffNode(compiled.get(nd.name) ?? null, next), next);
        if (r.missingEndpoints.length) throw new Error(`${nd.name}: endpoints without an entry: ${r.missingEndpoints.join(', ')}`);
        compiled.set(nd.name, next);
      }
    };
    const where = (k: PolicyCase): { node: SimNode; reason: string } =>
      k === 'egress' ? { node: n0, reason: 'DROP_POLICY_EGRESS' } : { node: n1, reason: 'DROP_POLICY_INGRESS' };

    /** What reached the target's stack: UDP datagrams (delivered, to no port, in error) or TCP segments. */
    const arrived = async (kind: FloodKind): Promise<number> => {
      const snmp = (await c!.exec(victim, ['cat', '/proc/net/snmp'])).stdout.split('\n');
      const table = (proto: string): Map<string, number> => {
        const [head, vals] = snmp.filter((l) => l.startsWith(`${proto}:`)).map((l) => l.split(/\s+/).slice(1));
        return new Map(head!.map((h, i) => [h, Number(vals![i])]));
      };
      if (kind === 'syn') return table('Tcp').get('InSegs')!;
      const u = table('Udp');
      return u.get('InDatagrams')! + u.get('NoPorts')! + u.get('InErrors')!;
    };
    /** n0, n1: the cluster's prefix says nothing in a table. */
    const short = (nd: SimNode): string => nd.name.slice(nd.name.lastIndexOf('-') + 1);
    /** Every node's drop counters, by "node reason". */
    const dropCounts = (): Map<string, bigint> => {
      const m = new Map<string, bigint>();
      for (const nd of c!.nodes)
        for (const r of readStats(nd.pinDir).filter(isDropRow)) m.set(`${short(nd)} ${r.reason}`, (m.get(`${short(nd)} ${r.reason}`) ?? 0n) + r.packets);
      return m;
    };
    const briefly = async (kind: FloodKind): Promise<number> => {
      const f = flooder.start(c!, attacker, kind, victim.ip, 5);
      await new Promise((r) => setTimeout(r, 300));
      return (await f.stop()).sent;
    };

    // The probe must reach its target: without the policy the flood arrives;
    // with it, nothing arrives and the policy's reason counts it.
    const control = async (k: PolicyCase, kind: FloodKind): Promise<void> => {
      const { node, reason } = where(k);
      setPolicy('none');
      const a0 = await arrived(kind);
      const sentOpen = await briefly(kind);
      const reached = (await arrived(kind)) - a0;
      setPolicy(k);
      const a1 = await arrived(kind);
      const d0 = counter(node.pinDir, reason);
      const sentDenied = await briefly(kind);
      const leaked = (await arrived(kind)) - a1;
      const dropped = counter(node.pinDir, reason) - d0;
      if (!(reached > 0)) throw new Error(`control: without the policy the ${kind} flood does not reach its target (sent ${sentOpen}, arrived 0)`);
      if (leaked !== 0 || dropped === 0n) throw new Error(`${k}-denied ${kind} flood: ${leaked} of ${sentDenied} arrived, ${dropped} counted as ${reason}`);
      notes.push(`${k}-denied ${kind} flood, control (0.3 s each): without the policy ${reached} of ${sentOpen} sent arrived at the target; with it 0 of ${sentDenied}, ${dropped} counted as ${reason} on ${short(node)}`);
    };

    for (const k of (['egress', 'ingress'] as const).filter((x) => ONLY.includes(`pol${x}`))) {
      for (const kind of FLOODS) await control(k, kind);
      const { node, reason } = where(k);
      setPolicy(k);
      const same = k === 'egress' ? { from: client, to: local0 } : { from: client1, to: server };
      const measure = async (): Promise<Record<string, number>> => ({ cross: await tputOf(client, server), same: await tputOf(same.from, same.to) });
      const flooded =
        (kind: FloodKind, listen: boolean) =>
        async (): Promise<Record<string, number>> => {
          const monitor = listen ? DropMonitor.open(node.pinDir) : undefined;
          let events = 0;
          const timer = monitor ? setInterval(() => (events += monitor.poll().length), 100) : undefined;
          const supp0 = counter(node.pinDir, 'MONITOR_SUPPRESSED');
          const before = dropCounts();
          // Bounded well past both iperf3 runs; stopped as soon as they are done.
          const f = flooder.start(c!, attacker, kind, victim.ip, 4 * (SECONDS + 2) + 30);
          try {
            const figures = await measure();
            const sent = await f.stop();
            const s = sent.elapsedMs / 1000;
            figures['sent/s'] = sent.sent / s;
            for (const [key, n] of dropCounts()) {
              const d = n - (before.get(key) ?? 0n);
              if (d > 0n) figures[`${key}/s`] = Number(d) / s;
            }
            if (!figures[`${short(node)} ${reason}/s`]) throw new Error(`the ${kind} flood made no ${reason} on ${node.name}`);
            if (monitor) {
              events += monitor.poll().length;
              // The listener must see the flood, or "with a monitor" measured nothing.
              if (!events) throw new Error(`a monitor on ${node.name} was shown no event of the ${kind} flood`);
              figures.events = events;
              figures.suppressed = Number(counter(node.pinDir, 'MONITOR_SUPPRESSED') - supp0);
            }
            return figures;
          } finally {
            if (timer) clearInterval(timer);
            monitor?.close();
            await f.stop().catch(() => undefined);
          }
        };
      const variants: MetricsVariant[] = [{ name: 'no flood', run: measure }];
      for (const kind of FLOODS)
        variants.push({ name: `${kind} flood, nobody listening`, run: flooded(kind, false) }, { name: `${kind} flood, monitor listening`, run: flooded(kind, true) });
      const res = await interleaveMetrics(`${k}-denied flood`, variants, RUNS);
      const base = res.get('no flood')!;
      const drops = k === 'egress' ? "dropped on the sender's node" : "dropped on the receiver's node";
      for (const [metric, label] of [
        ['cross', `${k}-denied flood (${drops}): allowed TCP, cross-node`],
        ['same', `${k}-denied flood (${drops}): allowed TCP, same node (${short(node)})`],
      ] as const) {
        const b = base.get(metric)!;
        for (const [name, figs] of res) {
          const xs = figs.get(metric)!;
          const paired = median(xs.map((x, i) => x / b[i]!));
          rows.push([label, name, fmt(median(xs)), 'Gbit/s', name === 'no flood' ? '' : `${(median(xs) / median(b)).toFixed(2)}× no flood (paired ${paired.toFixed(2)}×)`]);
        }
      }
      for (const [name, figs] of res) {
        if (name === 'no flood') continue;
        const rates = [...figs]
          .filter(([key]) => key.endsWith('/s') && key !== 'sent/s')
          .map(([key, xs]) => `${key.slice(0, -2)} ${fmt(median(xs))}/s`)
          .join(', ');
        const mon = figs.has('events')
          ? `; the monitor (rate ${MONITOR_DEFAULT_RATE}/s, burst ${MONITOR_DEFAULT_BURST} per CPU, ${numPossibleCpus()} CPUs) was shown a median ${median(figs.get('events')!)} events per run, ${median(figs.get('suppressed')!)} counted as MONITOR_SUPPRESSED`
          : '';
        notes.push(`${k}-denied ${name}: the sender sent a median ${fmt(median(figs.get('sent/s')!))} packets/s; drops by reason (medians): ${rates}${mon}`);
      }
      setPolicy('none');
    }
  }

  printTable(`drop events (${RUNS} interleaved runs, ${SECONDS} s per iperf3 run)`, ['benchmark', 'variant', 'median', 'unit', 'ratio'], rows);
  for (const note of notes) console.log(`- ${note}`);
} finally {
  await c?.destroy();
  floodBin?.cleanup();
}
