// hostPort benchmark (issue 18): an outside client reaching a pod through
// <node IP>:<hostPort>, bvcni's eBPF translation against the reference
// plugins' answer, bridge + host-local with portmap chained after it
// (iptables DNAT in the node, conntrack reversing it). Interleaved in one run
// (A B A B ...): TCP throughput (iperf3, client to pod) and short connections
// per second (tcp_crr.c). Targets: throughput >= 1.0x, conn/s >= 1.2x.
// Throughput is measured with the client's default congestion control and
// with cubic: the default here is BBR, which without sch_fq paces each GSO
// packet from an hrtimer, and on this VM that pacing, not either path, is
// what bounds a single stream (~12-15 Gbit/s on both; cubic moves ~18-25
// through the same paths; README, Benchmarks, "hostPort"). Both pods have
// the uplink's MTU (1500: the bridge plugin's default; bvcni's pods carry the
// overlay's only on their routes through the tunnel); a third variant runs
// the reference at the overlay's MTU (1450: MSS 1398, 20-30% more CPU per
// byte on either path), as portmap chained after flannel's VXLAN has it (its
// own row; the first stays the figure).
//   node --import tsx test/bench/hostport.bench.ts     (BENCH_RUNS=n, default 7; BENCH_SECONDS=s, default 3)
//   BVB_ONLY=tput or crr runs one part; BENCH_CC=a,b the congestion controls (default: the client's, cubic).
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import {
  createCluster,
  iperf,
  loadDataplane,
  median,
  startIperfServer,
  uniquePrefix,
  waitListening,
  type Cluster,
  type SimNetns,
} from '../../src/sim/index.js';
import { run } from '../../src/common/exec.js';
import { interleave, type Variant } from './stats.js';
import { TcpCrr } from './tcp-crr.js';

const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 7));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const PARTS = ['tput', 'crr'] as const;
const ONLY = (process.env.BVB_ONLY ?? PARTS.join(',')).split(',').map((p) => p.trim());
for (const p of ONLY) if (!(PARTS as readonly string[]).includes(p)) throw new Error(`BVB_ONLY: unknown part ${p} (parts: ${PARTS.join(', ')})`);
const IPERF_POD = 5201;
const CRR_POD = 7002;
const HP_IPERF = 18201;
const HP_CRR = 18202;
const CRR_MS = 1000;
const REF_CIDR = '10.88.0.0/24';

const tcpCrr = new TcpCrr(CRR_MS);

/**
 * The reference: on a node with no dataplane of ours, a pod wired by the
 * reference bridge plugin (host-local IPAM) and portmap chained after it, as
 * flannel's and the kubelet's default chains do. Its iptables rules live in
 * the node's namespace and go with it.
 */
async function referencePod(c: Cluster, node: SimNetns, stateDir: string): Promise<SimNetns & { ip: string }> {
  const pod = await c.addNetns('refpod');
  const env = { PATH: process.env.PATH, CNI_COMMAND: 'ADD', CNI_CONTAINERID: `${c.prefix}-ref`, CNI_NETNS: pod.path, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' };
  const bridgeConf = {
    cniVersion: '1.0.0',
    name: 'ref',
    type: 'bridge',
    bridge: 'refbr0',
    isGateway: true,
    isDefaultGateway: true,
    ipMasq: false,
    hairpinMode: true,
    ipam: { type: 'host-local', ranges: [[{ subnet: REF_CIDR }]], dataDir: stateDir },
  };
  const br = await run(['/usr/lib/cni/bridge'], { netns: node.path, input: JSON.stringify(bridgeConf), env });
  const prevResult = JSON.parse(br.stdout) as { ips: { address: string }[] };
  const portmapConf = {
    cniVersion: '1.0.0',
    name: 'ref',
    type: 'portmap',
    capabilities: { portMappings: true },
    runtimeConfig: {
      portMappings: [
        { hostPort: HP_IPERF, containerPort: IPERF_POD, protocol: 'tcp' },
        { hostPort: HP_CRR, containerPort: CRR_POD, protocol: 'tcp' },
      ],
    },
    prevResult,
  };
  await run(['/usr/lib/cni/portmap'], { netns: node.path, input: JSON.stringify(portmapConf), env });
  return { ...pod, ip: prevResult.ips[0]!.address.split('/')[0]! };
}

const lines: string[] = ['| benchmark | bvcni hostPort | bridge + portmap | ratio of medians | median of paired ratios | target |', '|---|---:|---:|---|---|---|'];
function report(bench: string, unit: string, target: string, res: Map<string, number[]>, baseline = 'portmap'): void {
  const a = res.get('bvcni')!;
  const b = res.get(baseline)!;
  const pairs = a.map((x, i) => x / b[i]!);
  lines.push(`| ${bench} (${unit}) | ${median(a).toFixed(2)} | ${median(b).toFixed(2)} | ${(median(a) / median(b)).toFixed(2)}× | ${median(pairs).toFixed(2)}× | ${target} |`);
}

const loadavg = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const startLoad = loadavg();
const clusters: Cluster[] = [];
const stateDir = mkdtempSync(join(tmpdir(), 'bvcni-hpbench-ipam-'));
try {
  await loadDataplane();
  const bvcni = await createCluster({ prefix: uniquePrefix('bvp'), nodes: 1, dataplane: 'bvcni' });
  clusters.push(bvcni);
  const ref = await createCluster({ prefix: uniquePrefix('bvp'), nodes: 1, dataplane: 'none' });
  clusters.push(ref);

  const bvNode = bvcni.nodes[0]!;
  const bvPod = await bvcni.addPod(bvNode, 'srv', {
    via: 'plugin',
    portMappings: [
      { hostPort: HP_IPERF, containerPort: IPERF_POD, protocol: 'tcp' },
      { hostPort: HP_CRR, containerPort: CRR_POD, protocol: 'tcp' },
    ],
  });
  const refNode = ref.nodes[0]!;
  const refPod = await referencePod(ref, refNode, stateDir);

  for (const [c, pod] of [
    [bvcni, bvPod],
    [ref, refPod],
  ] as const) {
    await startIperfServer(c, pod, IPERF_POD);
    await tcpCrr.startServer(c, pod, CRR_POD);
    await waitListening(pod.path, CRR_POD);
    await c.exec(c.internet, ['sysctl', '-qw', 'net.ipv4.tcp_tw_reuse=1', 'net.ipv4.ip_local_port_range=1024 65535']);
  }
  // Both paths answer before anything is measured (a broken one would measure its error path).
  for (const [c, node] of [
    [bvcni, bvNode],
    [ref, refNode],
  ] as const) {
    const probe = await tcpCrr.rate(c.internet, node.ip, HP_CRR);
    if (probe.perSecond === 0) throw new Error(`${c === bvcni ? "bvcni" : "reference"} (${c.prefix}): no connection through ${node.ip}:${HP_CRR}`);
  }
  const iptables = await run(['iptables-save', '-t', 'nat'], { netns: refNode.path });
  if (!iptables.stdout.includes(`--dport ${HP_CRR}`)) throw new Error('portmap installed no DNAT rule: the reference would not be portmap');

  if (ONLY.includes('tput')) {
    // Both clients' namespaces start from the machine's default.
    const sysctl = async (key: string) => (await run(['sysctl', '-n', key], { netns: bvcni.internet.path })).stdout.trim();
    const defaultCc = await sysctl('net.ipv4.tcp_congestion_control');
    const available = (await sysctl('net.ipv4.tcp_available_congestion_control')).split(/\s+/);
    // The pod's MTU sets the MSS it advertises; the veth's host end may stay larger.
    const refMtu = (JSON.parse((await run(['ip', '-j', 'link', 'show', 'eth0'], { netns: refPod.path })).stdout) as { mtu: number }[])[0]!.mtu;
    const setMtu = (mtu: number) => run(['ip', 'link', 'set', 'eth0', 'mtu', String(mtu)], { netns: refPod.path });
    const ccs = [...new Set((process.env.BENCH_CC ?? `${defaultCc},cubic`).split(',').map((x) => x.trim()))];
    for (const cc of ccs) {
      if (!available.includes(cc)) {
        lines.push(`| outside client → hostPort → pod, TCP single stream, ${cc} | not available here (${available.join(' ')}) | | | | |`);
        continue;
      }
      const tput = (c: Cluster, host: string) => async () =>
        (await iperf(c.internet.path, host, { seconds: SECONDS, omit: 1, port: HP_IPERF, congestion: cc })).gbps;
      const atOverlayMtu = async () => {
        await setMtu(bvNode.overlayMtu);
        try {
          return await tput(ref, refNode.ip)();
        } finally {
          await setMtu(refMtu);
        }
      };
      const r = await interleave(`hostPort TCP (${cc})`, [
        { name: 'bvcni', run: tput(bvcni, bvNode.ip) },
        { name: 'portmap', run: tput(ref, refNode.ip) },
        { name: 'portmap-overlay-mtu', run: atOverlayMtu },
      ], RUNS);
      const title = `outside client → hostPort → pod, TCP single stream, ${cc}${cc === defaultCc ? ' (the default)' : ''}`;
      report(title, 'Gbit/s', '≥ 1.0', r);
      report(`${title}; reference pod at the overlay's MTU ${bvNode.overlayMtu} (flannel's chain)`, 'Gbit/s', '—', r, 'portmap-overlay-mtu');
    }
  }
  if (ONLY.includes('crr')) {
    let failed = 0;
    const crr = (c: Cluster, host: string) => async () => {
      const x = await tcpCrr.rate(c.internet, host, HP_CRR);
      failed += x.failed;
      return x.perSecond;
    };
    const r = await interleave('hostPort short connections', [
      { name: 'bvcni', run: crr(bvcni, bvNode.ip) },
      { name: 'portmap', run: crr(ref, refNode.ip) },
    ], RUNS);
    report('outside client → hostPort → pod, short connections', 'conn/s', '≥ 1.2', r);
    if (failed) lines.push('', `${failed} connections got no answer within 1 s over all runs`);
  }
  process.stdout.write(`\n${lines.join('\n')}\n\n(${RUNS} interleaved runs per variant, ${SECONDS} s per iperf3 run; load average at start ${startLoad}, at end ${loadavg()} on ${availableParallelism()} CPUs)\n`);
} finally {
  for (const c of clusters) await c.destroy();
  tcpCrr.cleanup();
  rmSync(stateDir, { recursive: true, force: true });
}
