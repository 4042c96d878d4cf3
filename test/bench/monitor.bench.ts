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
//   node --import tsx test/bench/monitor.bench.ts   (BENCH_RUNS=n, default 5; BENCH_SECONDS=s, default 3; BVB_ONLY=flood,cost)
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { numPossibleCpus } from '../../loader/index.js';
import { startProcess } from '../../src/common/exec.js';
import { Programs } from '../../src/dataplane/index.js';
import { DropMonitor } from '../../src/dataplane/monitor.js';
import { readStats } from '../../src/dataplane/stats.js';
import { createCluster, iperf, linkInfo, loadDataplane, rrLatency, startIperfServer, startResponder, uniquePrefix, type Cluster, type SimPod } from '../../src/sim/index.js';
import { packet, PROTO } from '../bpf/packet.js';
import { interleave, median, printTable, type Variant } from './stats.js';

const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 5));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const RR_PORT = 7003;
const RR_CPU = 1;
const DIST = resolve(dirname(fileURLToPath(import.meta.url)), '../../dist');
const OBJ_WITH = join(DIST, 'bpf');
const OBJ_WITHOUT = join(DIST, 'bpf-nomon');
const PARTS = ['flood', 'cost'] as const;
const ONLY = (process.env.BVB_ONLY ?? PARTS.join(',')).split(',').map((p) => p.trim());
for (const p of ONLY) if (!(PARTS as readonly string[]).includes(p)) throw new Error(`BVB_ONLY: unknown part ${p} (parts: ${PARTS.join(', ')})`);

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
try {
  await loadDataplane();
  c = await createCluster({ prefix: uniquePrefix('bvmb'), nodes: 2, dataplane: 'bvcni', podsPerNode: 2 });
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
  printTable(`drop events (${RUNS} interleaved runs, ${SECONDS} s per iperf3 run)`, ['benchmark', 'variant', 'median', 'unit', 'ratio'], rows);
  for (const note of notes) console.log(`- ${note}`);
} finally {
  await c?.destroy();
}
