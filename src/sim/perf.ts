// Traffic generators for tests and benchmarks inside simulated namespaces:
// iperf3 for bulk TCP, and small Node tools for what iperf3 cannot do
// (request/response latency, short connections per second).
import type { ChildProcess } from 'node:child_process';
import { run } from '../common/exec.js';
import type { Cluster, SimNetns } from './cluster.js';

export const IPERF_PORT = 5201;

/** Starts `iperf3 -s` in a namespace (owned by the cluster) and waits until it listens. */
export async function startIperfServer(c: Cluster, ns: SimNetns, port = IPERF_PORT): Promise<ChildProcess> {
  const child = c.spawn(ns, ['iperf3', '-s', '-p', String(port)]);
  // Its report of every test goes to a pipe nobody reads: drained, or after ~40 tests (64 KiB) the
  // server blocks in write() and the next client waits forever.
  child.stdout?.resume();
  child.stderr?.resume();
  await waitListening(ns.path, port);
  return child;
}

export async function waitListening(netns: string, port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await run(['ss', '-Hltn', `sport = :${port}`], { netns, allowFail: true });
    if (r.stdout.trim()) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port} in ${netns} after ${timeoutMs} ms`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

export interface IperfResult {
  gbps: number;
  retransmits: number;
  /** Receiver-side Gbit/s of each 1 s interval (to see stalls). */
  intervals: number[];
  bytes: number;
}

interface IperfJson {
  error?: string;
  intervals?: { sum: { bits_per_second: number } }[];
  end?: { sum_received?: { bits_per_second: number; bytes: number }; sum_sent?: { retransmits?: number } };
}

/**
 * One iperf3 TCP run; `reverse` makes the server send; `congestion` sets the
 * sender's congestion control (iperf3 -C; the namespace's default otherwise).
 * Throws on any iperf3 error (e.g. a reset flow).
 */
export async function iperf(
  netns: string,
  server: string,
  o: { seconds?: number; omit?: number; reverse?: boolean; port?: number; bytes?: string; congestion?: string } = {},
): Promise<IperfResult> {
  const argv = ['iperf3', '-c', server, '-p', String(o.port ?? IPERF_PORT), '-J'];
  if (o.congestion) argv.push('-C', o.congestion);
  if (o.bytes) argv.push('-n', o.bytes);
  else argv.push('-t', String(o.seconds ?? 3));
  if (o.omit) argv.push('-O', String(o.omit));
  if (o.reverse) argv.push('-R');
  const limit = ((o.seconds ?? 3) + (o.omit ?? 0) + 30) * 1000;
  const r = await run(argv, { netns, allowFail: true, timeoutMs: limit });
  let j: IperfJson;
  try {
    j = JSON.parse(r.stdout) as IperfJson;
  } catch {
    throw new Error(`iperf3 to ${server} from ${netns}: exit ${r.code}, unparsable output: ${(r.stderr || r.stdout).slice(0, 300)}`);
  }
  if (j.error || r.code !== 0) throw new Error(`iperf3 to ${server} from ${netns} failed: ${j.error ?? r.stderr}`);
  const rx = j.end?.sum_received;
  if (!rx) throw new Error(`iperf3 to ${server}: no receiver summary`);
  return {
    gbps: rx.bits_per_second / 1e9,
    retransmits: j.end?.sum_sent?.retransmits ?? 0,
    intervals: (j.intervals ?? []).map((i) => i.sum.bits_per_second / 1e9),
    bytes: rx.bytes,
  };
}

// Request/response over one TCP connection to the responder (which echoes
// after its greeting line): 1-byte ping-pong, per-transaction latency.
const RR_SOURCE = `
const net = require('node:net');
const [host, port, count, warm] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3]), Number(process.argv[4])];
const s = net.connect({ host, port });
s.setNoDelay(true);
const lat = [];
let greeted = false, i = 0, t0 = 0n;
const one = Buffer.from('x');
s.on('data', (d) => {
  if (!greeted) { if (!d.includes(10)) return; greeted = true; t0 = process.hrtime.bigint(); s.write(one); return; }
  const t = process.hrtime.bigint();
  if (i >= warm) lat.push(Number(t - t0) / 1000);
  if (++i >= count + warm) { s.destroy(); lat.sort((a, b) => a - b); const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
    process.stdout.write(JSON.stringify({ p50: q(0.5), p90: q(0.9), p99: q(0.99), n: lat.length })); return; }
  t0 = process.hrtime.bigint(); s.write(one);
});
s.on('error', (e) => { process.stderr.write(String(e)); process.exit(1); });
`;

export interface RrResult {
  p50: number;
  p90: number;
  p99: number;
  n: number;
}

/** TCP request/response latency in µs; `cpu` pins the client (pin the server the same way). */
export async function rrLatency(netns: string, host: string, port: number, o: { count?: number; cpu?: number } = {}): Promise<RrResult> {
  const argv = [process.execPath, '-e', RR_SOURCE, host, String(port), String(o.count ?? 5000), '200'];
  const r = await run(o.cpu === undefined ? argv : ['taskset', '-c', String(o.cpu), ...argv], { netns, timeoutMs: 60_000 });
  return JSON.parse(r.stdout) as RrResult;
}

// Short connections: connect, read the responder's greeting, close; `conc`
// loops in parallel until `ms` milliseconds passed or `total` connections were
// started. A connection that gets no greeting within `patience` ms counts as
// failed (a dropped SYN would otherwise stall a loop for the kernel's whole
// SYN retry schedule); after `maxFail` failures the run stops early.
const CRR_SOURCE = `
const net = require('node:net');
const [host, port, ms, conc, patience, total, maxFail] = process.argv.slice(1).map((x, i) => (i === 0 ? x : Number(x)));
const t0 = Date.now(), end = t0 + ms; let started = 0, done = 0, failed = 0, live = conc;
function loop() {
  if (Date.now() >= end || started >= total || failed >= maxFail) {
    if (--live === 0) { process.stdout.write(JSON.stringify({ done, failed, elapsed: Date.now() - t0 })); process.exit(0); }
    return;
  }
  started++;
  const s = net.connect({ host, port });
  let settled = false;
  const settle = (ok) => { if (settled) return; settled = true; clearTimeout(timer); ok ? done++ : failed++; s.destroy(); setImmediate(loop); };
  const timer = setTimeout(() => settle(false), patience);
  s.once('data', () => settle(true));
  s.on('error', () => settle(false));
}
for (let k = 0; k < conc; k++) loop();
`;

export interface ConnRateOptions {
  /** Stop after this long (default 2000 ms, or 10 min when `total` is given). */
  ms?: number;
  /** Stop after starting this many connections. */
  total?: number;
  concurrency?: number;
  /** A connection unanswered after this long counts as failed (default 1000 ms). */
  patienceMs?: number;
  /** Stop early after this many failures (default: never). */
  maxFailures?: number;
}

/** Short TCP connections to a responder: completed per second, and how many failed. */
export async function connRate(
  netns: string,
  host: string,
  port: number,
  o: ConnRateOptions = {},
): Promise<{ perSecond: number; done: number; failed: number }> {
  const ms = o.ms ?? (o.total ? 600_000 : 2000);
  const argv = [
    process.execPath, '-e', CRR_SOURCE, host, String(port), String(ms), String(o.concurrency ?? 4),
    String(o.patienceMs ?? 1000), String(o.total ?? 2 ** 31), String(o.maxFailures ?? 2 ** 31),
  ];
  const r = await run(argv, { netns, timeoutMs: ms + 30_000 });
  const j = JSON.parse(r.stdout) as { done: number; failed: number; elapsed: number };
  return { perSecond: (j.done * 1000) / Math.max(1, j.elapsed), done: j.done, failed: j.failed };
}

export { median } from '../common/stats.js';
