// What a /metrics scrape costs bvcnid with an empty NAT table and a full one
// (issue 13, item 4: "a scrape does bounded work"). The real bvcnid runs on one
// simulated node; the NAT map is filled directly through its pin with
// NAT_MAX (262,144) entries of made-up flows (addresses from 198.18.0.0/15,
// RFC 2544: nothing is ever sent to them). Rounds alternate empty and full
// (A B A B …). Printed, for the record:
//  - scrape latency (a client on the node's loopback, keep-alive, sequential);
//  - what the map walk a scrape used to do costs (get_next_key over every key,
//    as src/daemon/dataplane.ts did at scrape time before), in this process;
//  - the background count that replaces it: a whole pass, and its longest
//    slice, which is the longest the daemon's event loop is held by it.
// BVS_ROUNDS (default 3) and BVS_SCRAPES (scrapes per measurement, default 50)
// make it shorter.
import { performance } from 'node:perf_hooks';
import { createCluster, uniquePrefix, type Cluster, type SimNode } from '../../src/sim/index.js';
import { openNatMap } from '../../src/dataplane/maps.js';
import { NAT_MAX, type NatEntry, type NatKey } from '../../src/dataplane/abi.js';
import { intToIpv4 } from '../../loader/codec.js';
import { NAT_COUNT_SLICE } from '../../src/daemon/daemon.js';
import type { FakeKubeApiServer } from '../../src/sim/kube-apiserver.js';
import { BVCNID, DaemonProc, METRICS_PORT, nodeObject, startApiInUnderlay } from '../support/kube-daemons.js';
import { waitFor } from '../support/kube-util.js';
import { median, percentile, printTable } from './stats.js';

const ROUNDS = Number(process.env.BVS_ROUNDS ?? 3);
const SCRAPES = Number(process.env.BVS_SCRAPES ?? 50);

/** Sequential GETs of a URL from inside a namespace; prints each one's milliseconds as JSON. */
const SCRAPER = `
const http = require('node:http');
const [url, n] = [process.argv[1], Number(process.argv[2])];
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const out = [];
(async () => {
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await new Promise((resolve, reject) => http.get(url, { agent }, (r) => { r.resume(); r.on('end', resolve); }).on('error', reject));
    out.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  process.stdout.write(JSON.stringify(out));
  agent.destroy();
})();
`;

async function scrape(c: Cluster, n: SimNode): Promise<number[]> {
  const r = await c.exec(n, [process.execPath, '-e', SCRAPER, `http://127.0.0.1:${METRICS_PORT}/metrics`, String(SCRAPES)]);
  return JSON.parse(r.stdout) as number[];
}

function flows(count: number): [NatKey, NatEntry][] {
  const out: [NatKey, NatEntry][] = [];
  for (let i = 0; i < count; i++) {
    out.push([
      { saddr: intToIpv4(0x0af40100 + (i % 250) + 2), daddr: intToIpv4(0xc6120000 + Math.floor(i / 250)), sport: 10_000 + (i % 50_000), dport: 443, proto: 6, dir: 0 },
      { created_ns: 1n, last_seen_ns: 1n, to_addr: '192.0.2.10', to_port: 61_000 + (i % 4000), tcp_state: 2, flags: 0 },
    ]);
  }
  return out;
}

function fill(n: SimNode, entries: [NatKey, NatEntry][]): number {
  using nat = openNatMap(n.pinDir);
  for (let i = 0; i < entries.length; i += 8192) nat.updateBatch(entries.slice(i, i + 8192));
  let count = 0;
  for (const _ of nat.keys()) count++;
  return count;
}

function clear(n: SimNode): void {
  using nat = openNatMap(n.pinDir);
  nat.deleteBatch([...nat.keys()]);
}

/** The walk a scrape used to do: get_next_key over every key. */
function oldWalk(n: SimNode): { ms: number; entries: number } {
  using nat = openNatMap(n.pinDir);
  const t0 = performance.now();
  let entries = 0;
  for (const _ of nat.keys()) entries++;
  return { ms: performance.now() - t0, entries };
}

/** The background count: every slice timed (each is one event-loop turn in bvcnid). */
function newPass(n: SimNode): { ms: number; maxSliceMs: number; slices: number; entries: number } {
  using nat = openNatMap(n.pinDir);
  const walk = nat.batchCounter(NAT_COUNT_SLICE);
  if (!walk) throw new Error('no batch lookup on the NAT map');
  let entries = 0;
  let slices = 0;
  let maxSliceMs = 0;
  const t0 = performance.now();
  while (!walk.done) {
    const s0 = performance.now();
    entries += walk.step();
    maxSliceMs = Math.max(maxSliceMs, performance.now() - s0);
    slices++;
  }
  return { ms: performance.now() - t0, maxSliceMs, slices, entries };
}

async function main(): Promise<void> {
  const c = await createCluster({ prefix: uniquePrefix('bvs'), nodes: 1, dataplane: 'none' });
  let api: FakeKubeApiServer | undefined;
  let d: DaemonProc | undefined;
  try {
    const started = await startApiInUnderlay(c);
    api = started.api;
    const n = c.nodes[0]!;
    api.addNode(nodeObject(n));
    d = new DaemonProc(c, n, started.kubeconfig, ['--log-level', 'info', '--nat-count-interval', '1s']);
    if (!BVCNID) throw new Error('no bvcnid');
    d.start();
    await waitFor('bvcnid ready', () => d!.ready(), 30_000, 200);
    const entries = flows(NAT_MAX);
    const lat: Record<'empty' | 'full', number[]> = { empty: [], full: [] };
    const walks: ReturnType<typeof oldWalk>[] = [];
    const passes: ReturnType<typeof newPass>[] = [];
    let filled = 0;
    for (let r = 0; r < ROUNDS; r++) {
      clear(n);
      await waitFor('bvcnid counted an empty table', async () => (await d!.metric('bvcni_nat_entries')) === 0, 30_000, 200);
      lat.empty.push(...(await scrape(c, n)));
      filled = fill(n, entries);
      await waitFor('bvcnid counted the full table', async () => (await d!.metric('bvcni_nat_entries')) === filled, 30_000, 200);
      lat.full.push(...(await scrape(c, n)));
      walks.push(oldWalk(n));
      passes.push(newPass(n));
    }
    clear(n);
    const fmt = (x: number): string => x.toFixed(2);
    const row = (label: string, xs: number[]): string[] => [label, String(xs.length), fmt(median(xs)), fmt(percentile(xs, 90)), fmt(Math.max(...xs))];
    printTable(
      `bvcnid /metrics scrape, NAT table empty and full (${filled.toLocaleString('en')} entries written of ${NAT_MAX.toLocaleString('en')}), ${ROUNDS} interleaved rounds`,
      ['NAT table', 'scrapes', 'p50 ms', 'p90 ms', 'max ms'],
      [row('empty', lat.empty), row('full', lat.full)],
    );
    console.log(`full / empty p50: ${(median(lat.full) / median(lat.empty)).toFixed(2)}×`);
    printTable(
      'Counting the full NAT table (in this process, same FFI as bvcnid)',
      ['method', 'where', 'p50 ms per count', 'longest event-loop hold, ms'],
      [
        ['get_next_key over every key (a scrape before)', 'on the scrape path', fmt(median(walks.map((w) => w.ms))), fmt(Math.max(...walks.map((w) => w.ms)))],
        [
          `batch lookup, ${NAT_COUNT_SLICE} a slice (now)`,
          `background, ${passes[0]?.slices ?? 0} slices a pass`,
          fmt(median(passes.map((p) => p.ms))),
          fmt(Math.max(...passes.map((p) => p.maxSliceMs))),
        ],
      ],
    );
    for (const [i, w] of walks.entries()) if (w.entries !== passes[i]!.entries) throw new Error(`walk counted ${w.entries}, pass ${passes[i]!.entries}`);
  } finally {
    if (d?.running) await d.kill('SIGKILL');
    await api?.close();
    await c.destroy();
  }
}

await main();
