// bvcnid benchmarks (issue 5), with the real daemon binary in simulated node
// namespaces and the fake API server in the underlay:
//  1. convergence: a Node event at the API server → the tunnel entry visible
//     (or gone) in every daemon's pinned map; p50/p99 over 200 events;
//  2. scale: initial sync of 5,000 Nodes (list request at the API server → all
//     10,000 entries in the map) and the daemon's RSS, interleaved (A B C A B C…)
//     with the same daemon on V8's default heap flags and with programming the
//     same 5,000 nodes flannel's way (neighbour + onlink route through
//     `ip -batch`, FDB through `bridge -batch`) in a namespace; and, as the
//     floor under any way of reading the list, the same pages fetched from the
//     same node and discarded.
// bvcnid runs with the node options the DaemonSet gives it (deploy/bvcni.yaml).
// The remote Nodes are kubelet-sized (~13 KiB of JSON each: images, conditions,
// managedFields…; makeRealisticNode) unless BVK_NODE_SIZE=small asks for the
// ~0.4 KiB ones of makeNode, which carry only what the daemon reads.
// The 5,000 remote node addresses come from 198.18.0.0/15 (RFC 2544, for
// benchmarks); nothing is ever routed to them, they are only map values.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../src/common/exec.js';
import { intToIpv4, ipv4ToInt } from '../../loader/codec.js';
import { openDataplaneMaps } from '../../src/dataplane/index.js';
import { createCluster, UNDERLAY_GATEWAY, uniquePrefix, type Cluster } from '../../src/sim/index.js';
import { LIST_PAGE } from '../../src/kube/client.js';
import { type FakeKubeApiServer } from '../../src/sim/kube-apiserver.js';
import { makeNode } from '../../src/sim/kube-node.js';
import { makeRealisticNode } from '../support/kube-nodes.js';
import { BVCNID, DaemonProc, deployedNodeOptions, nodeObject, rssMiB, startApiInUnderlay } from '../support/kube-daemons.js';
import { sleep, waitFor } from '../support/kube-util.js';
import { median, percentile, printTable } from './stats.js';

const EVENTS = Number(process.env.BVK_EVENTS ?? 200);
const SCALE = Number(process.env.BVK_SCALE ?? 5000);
const ROUNDS = Number(process.env.BVK_ROUNDS ?? 3);
const NODE_SIZE = process.env.BVK_NODE_SIZE ?? 'realistic';
if (NODE_SIZE !== 'realistic' && NODE_SIZE !== 'small') throw new Error(`BVK_NODE_SIZE=${NODE_SIZE}: realistic or small`);
const remoteNode = NODE_SIZE === 'realistic' ? makeRealisticNode : makeNode;
/** What the bench's Nodes weigh, for its output. */
const NODE_BYTES = Buffer.byteLength(JSON.stringify(remoteNode('bvk-r1234', { podCIDR: '10.5.210.0/24', internalIP: '198.18.4.211' })));
const SIZE_LABEL = `${NODE_SIZE} Nodes, ${(NODE_BYTES / 1024).toFixed(1)} KiB of JSON each`;

// BVK_NODE_FLAGS (even empty) stands in for the deployed options, to try others.
const DEPLOYED_FLAGS = process.env.BVK_NODE_FLAGS ?? deployedNodeOptions();

/** DaemonProc takes node's own flags from BVK_NODE_FLAGS when it builds the command line. */
function setNodeFlags(flags: string): void {
  process.env.BVK_NODE_FLAGS = flags;
}
setNodeFlags(DEPLOYED_FLAGS);

/**
 * BVK_COMPARE='label=/path/to/bvcnid;…' adds other builds of the daemon to the
 * scale rounds (with the deployed flags), to compare a change in the same run.
 */
const COMPARE = (process.env.BVK_COMPARE ?? '')
  .split(';')
  .filter(Boolean)
  .map((kv) => {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new Error(`BVK_COMPARE: ${kv} is not label=path`);
    return { label: kv.slice(0, eq), binary: kv.slice(eq + 1) };
  });

/** A DaemonProc that runs another bvcnid build. */
class OtherDaemonProc extends DaemonProc {
  constructor(
    readonly binary: string,
    ...rest: ConstructorParameters<typeof DaemonProc>
  ) {
    super(...rest);
  }
  override args(): string[] {
    return super.args().map((a) => (a === BVCNID ? this.binary : a));
  }
}

function remote(i: number): { name: string; podCidr: string; ip: string; mac: string } {
  // 10.1.0.0/24 … 10.20.x.0/24: inside the bench's cluster CIDR 10.0.0.0/8, clear of the simulated nodes' 10.244/16.
  const podCidr = `10.${1 + (i >> 8)}.${i & 255}.0/24`;
  const ip = intToIpv4(ipv4ToInt('198.18.0.0') + i + 1);
  const mac = `0a:58:${[(i >> 16) & 255, (i >> 8) & 255, i & 255, 1].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
  return { name: `bvk-r${i}`, podCidr, ip, mac };
}

const fmt = (ms: number): string => ms.toFixed(1);

async function convergence(): Promise<void> {
  const c = await createCluster({ prefix: uniquePrefix('bvk'), nodes: 3, dataplane: 'none' });
  let api: FakeKubeApiServer | undefined;
  const daemons: DaemonProc[] = [];
  try {
    const started = await startApiInUnderlay(c);
    api = started.api;
    for (const n of c.nodes) api.addNode(nodeObject(n));
    for (const n of c.nodes) daemons.push(new DaemonProc(c, n, started.kubeconfig, ['--log-level', 'info', '--cluster-cidr', '10.0.0.0/8', '--service-cidr', '172.20.0.0/16']));
    daemons.forEach((d) => d.start());
    for (const d of daemons) await waitFor(`${d.node.name} ready`, () => d.ready(), 30_000);
    const maps = c.nodes.map((n) => openDataplaneMaps(n.pinDir));
    const lat: { add: number[]; del: number[] } = { add: [], del: [] };
    try {
      for (let e = 0; e < EVENTS; e++) {
        const r = remote(e >> 1);
        const [addr, len] = r.podCidr.split('/');
        const key = { prefixlen: Number(len), addr: addr! };
        const adding = e % 2 === 0;
        const t0 = performance.now();
        if (adding) api.addNode(remoteNode(r.name, { podCIDR: r.podCidr, internalIP: r.ip }));
        else api.deleteNode(r.name);
        const pending = new Set(maps.map((_, i) => i));
        for (;;) {
          for (const i of [...pending]) if ((maps[i]!.tunnel.lookup(key) !== undefined) === adding) pending.delete(i);
          if (pending.size === 0) break;
          if (performance.now() - t0 > 10_000) throw new Error(`event ${e} not converged after 10 s on ${[...pending]}`);
          await new Promise((res) => setTimeout(res, 0.5));
        }
        (adding ? lat.add : lat.del).push(performance.now() - t0);
        await sleep(5); // events spaced so each is measured on its own
      }
    } finally {
      maps.forEach((m) => m.close());
    }
    const all = [...lat.add, ...lat.del];
    printTable(
      `Convergence: Node event at the API server → tunnel map of all 3 daemons (${EVENTS} events; ${SIZE_LABEL}; node flags ${DEPLOYED_FLAGS || 'none'})`,
      ['events', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'target'],
      [
        ['add', fmt(median(lat.add)), fmt(percentile(lat.add, 90)), fmt(percentile(lat.add, 99)), fmt(Math.max(...lat.add)), ''],
        ['delete', fmt(median(lat.del)), fmt(percentile(lat.del, 90)), fmt(percentile(lat.del, 99)), fmt(Math.max(...lat.del)), ''],
        ['all', fmt(median(all)), fmt(percentile(all, 90)), fmt(percentile(all, 99)), fmt(Math.max(...all)), `p99 ≤ 200 ms: ${percentile(all, 99) <= 200 ? 'met' : 'NOT met'}`],
      ],
    );
  } finally {
    for (const d of daemons) if (d.running) await d.kill('SIGKILL');
    await api?.close();
    await c.destroy();
  }
}

interface SyncResult {
  ms: number;
  fromSpawnMs: number;
  reconcileMs: number;
  rss: number;
  hwm: number;
  anon: number;
}

async function daemonSync(c: Cluster, api: FakeKubeApiServer, kubeconfig: string, round: number, nodeFlags: string, binary?: string): Promise<SyncResult> {
  const n = c.nodes[0]!;
  setNodeFlags(nodeFlags);
  const daemonArgs = ['--log-level', 'info', '--cluster-cidr', '10.0.0.0/8', '--service-cidr', '172.20.0.0/16'];
  const d = binary ? new OtherDaemonProc(binary, c, n, kubeconfig, daemonArgs) : new DaemonProc(c, n, kubeconfig, daemonArgs);
  // A fresh node each round: no dataplane, no pins (what a first start sees).
  await run([...d.args(), '--uninstall'], { netns: n.path, allowFail: true });
  const listsBefore = api.requests.filter((r) => r.verb === 'list').length;
  const spawnedAt = Date.now();
  d.start();
  try {
    // The daemon writes podCIDRs first, then node /32s, each in Node creation
    // order: the last node's /32 is the last entry written. All entries are
    // still counted, and waited for should the order ever change.
    const lastKey = { prefixlen: 32, addr: remote(SCALE - 1).ip };
    await waitFor('pins', () => {
      try {
        openDataplaneMaps(n.pinDir).close();
        return true;
      } catch {
        return false;
      }
    }, 30_000, 2);
    const maps = openDataplaneMaps(n.pinDir);
    let doneAt = 0;
    try {
      await waitFor('last entry', () => {
        if (maps.tunnel.lookup(lastKey) === undefined) return false;
        doneAt = Date.now();
        return true;
      }, 60_000, 2);
      let count = 0;
      let short = false;
      await waitFor(`all ${SCALE * 2} entries`, () => {
        count = 0;
        for (const _ of maps.tunnel.keys()) count++;
        if (count === SCALE * 2) {
          if (short) doneAt = Date.now();
          return true;
        }
        short = true;
        return false;
      }, 10_000, 2).catch(() => {
        throw new Error(`round ${round}: ${count} entries, want ${SCALE * 2}`);
      });
    } finally {
      maps.close();
    }
    const list = api.requests.filter((r) => r.verb === 'list')[listsBefore];
    if (!list) throw new Error('no list request seen');
    await sleep(300);
    const rec = d.logged(/tunnel map reconciled/)[0];
    if (process.env.BVK_DEBUG) for (const l of d.logs) if (!l.libbpf) console.log(l.time, l.msg, l.ms ?? '', l.rssMiB ?? '', l.heapMiB ?? '');
    if (process.env.BVK_DEBUG) console.log('list at', new Date(list.at).toISOString(), 'done at', new Date(doneAt).toISOString());
    const mem = rssMiB(d.child!.pid!);
    return { ms: doneAt - list.at, fromSpawnMs: doneAt - spawnedAt, reconcileMs: Number(rec?.ms ?? NaN), ...mem };
  } finally {
    await d.kill('SIGKILL');
  }
}

async function flannelProgram(c: Cluster, round: number): Promise<number> {
  const ns = await c.addNetns(`fl${round}`);
  await run(['ip', 'link', 'add', 'flannel.1', 'type', 'vxlan', 'id', '1', 'local', '192.0.2.99', 'dstport', '4789', 'nolearning'], { netns: ns.path });
  await run(['ip', 'link', 'set', 'flannel.1', 'up'], { netns: ns.path });
  const ipBatch: string[] = [];
  const fdbBatch: string[] = [];
  for (let i = 0; i < SCALE; i++) {
    const r = remote(i);
    const vtep = r.podCidr.split('/')[0]!;
    ipBatch.push(`neigh replace ${vtep} lladdr ${r.mac} dev flannel.1 nud permanent`);
    ipBatch.push(`route replace ${r.podCidr} via ${vtep} dev flannel.1 onlink`);
    fdbBatch.push(`fdb replace ${r.mac} dev flannel.1 dst ${r.ip} self permanent`);
  }
  const ipFile = join(c.dir, `ip-batch-${round}`);
  const fdbFile = join(c.dir, `fdb-batch-${round}`);
  writeFileSync(ipFile, ipBatch.join('\n') + '\n');
  writeFileSync(fdbFile, fdbBatch.join('\n') + '\n');
  const t0 = performance.now();
  await run(['ip', '-batch', ipFile], { netns: ns.path });
  await run(['bridge', '-batch', fdbFile], { netns: ns.path });
  const ms = performance.now() - t0;
  const routes = await run(['ip', '-4', 'route', 'show', 'dev', 'flannel.1'], { netns: ns.path });
  const nRoutes = routes.stdout.split('\n').filter(Boolean).length;
  if (nRoutes !== SCALE) throw new Error(`flannel round ${round}: ${nRoutes} routes, want ${SCALE}`);
  await run(['ip', 'netns', 'del', ns.name]);
  return ms;
}

// Reads every page the daemon's list reads (same node, same page size) and
// throws the bytes away: what the API server and the wire alone cost, the floor
// under any way of reading them.
const WIRE_SCRIPT = `
const http = require('node:http');
const [base, limit] = process.argv.slice(1);
const t0 = performance.now();
let pages = 0, bytes = 0;
function page(cont) {
  const q = '?limit=' + limit + (cont ? '&continue=' + encodeURIComponent(cont) : '');
  http.get(base + '/api/v1/nodes' + q, { headers: { accept: 'application/json' } }, (res) => {
    if (res.statusCode !== 200) throw new Error('status ' + res.statusCode);
    let head = '';
    res.on('data', (c) => {
      bytes += c.length;
      if (head.length < 4096) head += c.toString('latin1', 0, Math.min(c.length, 4096));
    });
    res.on('end', () => {
      pages++;
      const next = /"continue":"([^"]*)"/.exec(head)?.[1];
      if (next) page(next);
      else console.log(JSON.stringify({ ms: performance.now() - t0, pages, bytes }));
    });
  }).on('error', (e) => { throw e; });
}
page('');
`;

async function wireFloor(c: Cluster, api: FakeKubeApiServer): Promise<{ ms: number; pages: number; bytes: number }> {
  const r = await run([process.execPath, '-e', WIRE_SCRIPT, api.url(UNDERLAY_GATEWAY), String(LIST_PAGE)], { netns: c.nodes[0]!.path });
  return JSON.parse(r.stdout) as { ms: number; pages: number; bytes: number };
}

async function scale(): Promise<void> {
  const c = await createCluster({ prefix: uniquePrefix('bvk'), nodes: 1, dataplane: 'none' });
  let api: FakeKubeApiServer | undefined;
  try {
    const started = await startApiInUnderlay(c);
    api = started.api;
    api.addNode(nodeObject(c.nodes[0]!));
    for (let i = 0; i < SCALE; i++) {
      const r = remote(i);
      api.addNode(remoteNode(r.name, { podCIDR: r.podCidr, internalIP: r.ip }));
    }
    // The same daemon on V8's defaults, when the deployment changes them: what the flags buy and cost.
    const variants = [
      { label: `bvcnid (node flags: ${DEPLOYED_FLAGS || 'none'})`, flags: DEPLOYED_FLAGS, binary: undefined as string | undefined },
      ...(DEPLOYED_FLAGS ? [{ label: 'bvcnid on V8 defaults', flags: '', binary: undefined }] : []),
      ...COMPARE.map((x) => ({ label: x.label, flags: DEPLOYED_FLAGS, binary: x.binary })),
    ];
    const runs = variants.map(() => [] as SyncResult[]);
    const fms: number[] = [];
    const wire: { ms: number; pages: number; bytes: number }[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      wire.push(await wireFloor(c, api));
      console.log(`round ${round}: the same ${wire.at(-1)!.pages} pages fetched and discarded ${fmt(wire.at(-1)!.ms)} ms`);
      for (const [i, v] of variants.entries()) {
        const d = await daemonSync(c, api, started.kubeconfig, round, v.flags, v.binary);
        runs[i]!.push(d);
        console.log(`round ${round}, ${v.label}: sync ${fmt(d.ms)} ms (from process start ${fmt(d.fromSpawnMs)} ms, reconcile ${fmt(d.reconcileMs)} ms, RSS ${d.rss.toFixed(0)} MiB, peak ${d.hwm.toFixed(0)} MiB, anon ${d.anon.toFixed(0)} MiB)`);
      }
      fms.push(await flannelProgram(c, round));
      console.log(`round ${round}: flannel-style ip/bridge -batch ${fmt(fms.at(-1)!)} ms`);
    }
    setNodeFlags(DEPLOYED_FLAGS);
    const rows: string[][] = [];
    for (const [i, v] of variants.entries()) {
      const r = runs[i]!;
      const m = (k: keyof SyncResult): number => median(r.map((x) => x[k]));
      const ratio = m('ms') / median(fms);
      // Like for like: bvcnid's programming of the nodes (desired state from the
      // listed Nodes, then the map writes) against flannel's programming of them.
      const programRatio = m('reconcileMs') / median(fms);
      // A flannel daemon would fetch the same list before programming.
      const withListRatio = m('ms') / (median(fms) + median(wire.map((w) => w.ms)));
      const shipped = i === 0;
      rows.push(
        [`${v.label}: list request → all entries in the map`, fmt(m('ms')), `reconcile alone ${fmt(m('reconcileMs'))} ms; from process start (Node.js start-up, own Node GET, dataplane set-up) ${fmt(m('fromSpawnMs'))} ms`, shipped ? `≤ 1000 ms: ${m('ms') <= 1000 ? 'met' : 'NOT met'}` : ''],
        [`${v.label}: RSS after sync`, `${m('rss').toFixed(0)} MiB`, `peak ${m('hwm').toFixed(0)} MiB; private (RssAnon) ${m('anon').toFixed(0)} MiB`, shipped ? `peak ≤ 100 MiB: ${m('hwm') <= 100 ? 'met' : 'NOT met'}` : ''],
        [`${v.label}: programming the nodes, ratio to flannel's`, programRatio.toFixed(2) + '×', `reconcile ${fmt(m('reconcileMs'))} ms vs ip/bridge -batch ${fmt(median(fms))} ms`, shipped ? `≤ 0.5×: ${programRatio <= 0.5 ? 'met' : 'NOT met'}` : ''],
        [`${v.label}: whole sync, ratio to flannel's programming alone`, ratio.toFixed(2) + '×', `with the list fetch added to flannel's side too: ${withListRatio.toFixed(2)}×`, ''],
      );
    }
    const wireMs = median(wire.map((w) => w.ms));
    rows.push([
      'floor: the same list pages fetched and discarded (API server + wire)',
      fmt(wireMs),
      `${wire[0]!.pages} pages, ${(wire[0]!.bytes / 1048576).toFixed(1)} MiB; ratio to flannel ${(wireMs / median(fms)).toFixed(2)}×`,
      '',
    ]);
    rows.push(['flannel-style (neigh + route + fdb via -batch)', fmt(median(fms)), `${SCALE * 3} kernel entries`, 'baseline']);
    printTable(`Scale: initial sync of ${SCALE} Nodes (${SIZE_LABEL}; ${ROUNDS} interleaved rounds, medians)`, ['variant', 'time ms', 'detail', 'target'], rows);
  } finally {
    await api?.close();
    await c.destroy();
  }
}

const which = process.argv[2];
if (!which || which === 'convergence') await convergence();
if (!which || which === 'scale') await scale();
