// The real bvcnid on simulated nodes (one per node namespace) against the fake
// API server in the underlay (over TLS): convergence and cross-node pod traffic through
// the plugin the daemons install, node add/delete/IP change, a 30 s API
// outage, SIGKILL under a running flow, bad Node objects, SIGTERM, uninstall.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  iperf,
  ping,
  startIperfServer,
  type Cluster,
  type SimNode,
  type SimPod,
  UNDERLAY_GATEWAY,
} from '../../src/sim/index.js';
import { FakeKubeApiServer } from '../../src/sim/kube-apiserver.js';
import { makeNode } from '../../src/sim/kube-node.js';
import { makeServerTls } from '../../src/sim/tls.js';
import { expectedTunnel, KubeCluster, tunnelDump, waitTunnel } from '../support/kube-daemons.js';
import { sleep, waitFor } from '../support/kube-util.js';

const OUTAGE_MS = Number(process.env.BVK_OUTAGE_MS ?? 30_000);

describe('bvcnid on 3 (+1) simulated nodes', { timeout: 300_000 }, () => {
  let c: Cluster;
  let api: FakeKubeApiServer;
  // Node 3 exists as a namespace from the start; its Node object and daemon come later ("node added").
  // Over TLS, as a real cluster's API server: the daemons verify it with the CA their kubeconfig names.
  const k = new KubeCluster({ prefix: 'bvk', nodes: 4, registered: 3, waitReady: false, api: { tls: makeServerTls([UNDERLAY_GATEWAY]) } });
  const daemons = k.daemons;
  const pods: SimPod[] = [];
  const node = (i: number): SimNode => c.nodes[i]!;
  const members = (...idx: number[]): { podCidr: string; ip: string }[] => idx.map((i) => ({ podCidr: node(i).podCidr, ip: node(i).ip }));
  let n2Ip = '';

  before(async () => {
    ({ c, api } = await k.start());
    n2Ip = node(2).ip;
  });

  after(async () => {
    await k.teardown();
    const failed = daemons.filter((d) => d.logs.some((l) => l.level === 60 || (l.raw && /stderr/.test(String(l.msg)))));
    for (const d of failed) console.log(`--- ${d.node.name} fatal/stderr logs:`, d.logs.filter((l) => l.level === 60 || l.raw).slice(-5));
  });

  test('daemons converge: each tunnel map holds the other nodes, plugin and conflist installed, node condition set, ready', async () => {
    for (let i = 0; i < 3; i++) await waitTunnel(node(i), expectedTunnel(members(...[0, 1, 2].filter((j) => j !== i))), 30_000);
    for (let i = 0; i < 3; i++) {
      const d = daemons[i]!;
      await waitFor(`${d.node.name} ready`, () => d.ready(), 15_000);
      const conf = JSON.parse(readFileSync(join(d.node.confDir, '00-bvcni.conflist'), 'utf8')) as { plugins: { type: string; podcidr: string; mtu: number; pinDir: string }[] };
      assert.equal(conf.plugins[0]!.type, 'bvcni');
      assert.equal(conf.plugins[0]!.podcidr, d.node.podCidr);
      assert.equal(conf.plugins[0]!.mtu, 1500, "pods get the uplink's MTU (their routes through the tunnel the overlay's)");
      assert.equal(conf.plugins[0]!.pinDir, d.node.pinDir);
      assert.ok(existsSync(join(d.node.binDir, 'bvcni')), 'plugin installed');
      await waitFor('NetworkUnavailable=False', () =>
        api.getNode(d.node.name)?.status?.conditions?.some((x) => x.type === 'NetworkUnavailable' && x.status === 'False'),
      );
      assert.equal(await d.metric('bvcni_tunnel_nodes'), 2);
      assert.equal(d.logged(/dataplane setup failed/).length, 0);
    }
  });

  test('pods created through the installed plugin reach each other across nodes', async () => {
    for (let i = 0; i < 3; i++) pods.push(await c.addPod(node(i), 'a', { via: 'plugin' }));
    for (const [a, b] of [[0, 1], [1, 2], [2, 0], [1, 0]] as const) {
      const r = await ping(pods[a]!.path, pods[b]!.ip, { count: 2, timeoutS: 2 });
      assert.ok(r.ok, `pod on n${a} → pod on n${b} (${pods[b]!.ip}): ${r.stdout}${r.stderr}`);
    }
    assert.equal(await daemons[0]!.metric('bvcni_ipam_used'), 1);
  });

  test('a node added (first without a podCIDR: its daemon waits and says so) becomes reachable', async () => {
    const d3 = daemons[3]!;
    api.addNode(makeNode(node(3).name, { internalIP: node(3).ip }));
    d3.start();
    await waitFor('waiting log', () => d3.logged(/waiting for this node to have a podCIDR/).length > 0, 15_000);
    assert.equal(await d3.ready(), false);
    assert.ok(!existsSync(join(node(3).confDir, '00-bvcni.conflist')), 'no conflist before the dataplane is ready');
    assert.ok(d3.running, 'no crash while waiting');
    api.modifyNode(node(3).name, (n) => (n.spec = { podCIDR: node(3).podCidr, podCIDRs: [node(3).podCidr] }));
    await waitFor('n3 ready', () => d3.ready(), 30_000);
    for (let i = 0; i < 4; i++) await waitTunnel(node(i), expectedTunnel(members(...[0, 1, 2, 3].filter((j) => j !== i))));
    pods[3] = await c.addPod(node(3), 'a', { via: 'plugin' });
    for (const src of [0, 2]) {
      const r = await ping(pods[src]!.path, pods[3]!.ip, { count: 2, timeoutS: 2 });
      assert.ok(r.ok, `n${src} pod → new node's pod: ${r.stdout}`);
    }
  });

  test('a node deleted: its entries leave every tunnel map and its pods become unreachable', async () => {
    await daemons[3]!.kill('SIGTERM');
    api.deleteNode(node(3).name);
    for (let i = 0; i < 3; i++) await waitTunnel(node(i), expectedTunnel(members(...[0, 1, 2].filter((j) => j !== i))));
    const r = await ping(pods[0]!.path, pods[3]!.ip, { count: 1, timeoutS: 1 });
    assert.equal(r.ok, false, 'no route to a deleted node');
  });

  test('a node IP change: entries move to the new IP and traffic follows', async () => {
    const n2 = node(2);
    const newIp = '192.0.2.112';
    await c.exec(n2, ['ip', 'addr', 'add', `${newIp}/24`, 'dev', n2.uplink]);
    api.modifyNode(n2.name, (n) => {
      n.status!.addresses = [{ type: 'InternalIP', address: newIp }, { type: 'Hostname', address: n2.name }];
    });
    n2Ip = newIp;
    for (const i of [0, 1]) await waitTunnel(node(i), expectedTunnel([...members(...[0, 1].filter((j) => j !== i)), { podCidr: n2.podCidr, ip: newIp }]));
    await waitFor('n2 re-set its own address', () => daemons[2]!.logged(/InternalIP changed/).length > 0);
    await waitFor('n2 ready again', () => daemons[2]!.ready());
    // The old address is gone: only the new one can carry the overlay now.
    // Promotion keeps the new (secondary) address when the old primary goes, as a re-addressed host would.
    await c.exec(n2, ['sysctl', '-qw', `net.ipv4.conf.${n2.uplink}.promote_secondaries=1`]);
    await c.exec(n2, ['ip', 'addr', 'del', `${n2.ip}/24`, 'dev', n2.uplink]);
    await c.exec(n2, ['ip', 'route', 'replace', 'default', 'via', UNDERLAY_GATEWAY]);
    for (const [a, b] of [[0, 2], [2, 1]] as const) {
      const r = await ping(pods[a]!.path, pods[b]!.ip, { count: 2, timeoutS: 2 });
      assert.ok(r.ok, `pod n${a} → pod n${b} after the IP change: ${r.stdout}`);
    }
  });

  test(`API server stopped for ${OUTAGE_MS / 1000} s: maps unchanged, traffic flows, ready; back: resync`, async () => {
    const before = [0, 1, 2].map((i) => tunnelDump(node(i)));
    const errorsBefore = (await daemons[0]!.metric('bvcni_api_errors_total', { op: 'list_watch', code: 'ECONNREFUSED' })) ?? 0;
    await api.stop();
    // A change the daemons cannot see until the server is back, with the history lost (410 → relist).
    api.addNode(makeNode('bvk-ghost', { podCIDR: '10.244.50.0/24', internalIP: '192.0.2.50' }));
    const until = Date.now() + OUTAGE_MS;
    while (Date.now() < until) {
      for (let i = 0; i < 3; i++) assert.deepEqual(tunnelDump(node(i)), before[i], `n${i} map unchanged during the outage`);
      const r = await ping(pods[0]!.path, pods[1]!.ip, { count: 1, timeoutS: 2 });
      assert.ok(r.ok, 'cross-node traffic flows during the outage');
      assert.ok(await daemons[1]!.ready(), 'still ready during the outage');
      await sleep(2000);
    }
    const errors = (await daemons[0]!.metric('bvcni_api_errors_total', { op: 'list_watch', code: 'ECONNREFUSED' })) ?? 0;
    assert.ok(errors > errorsBefore, `API errors counted (${errorsBefore} → ${errors})`);
    api.compact();
    await api.start();
    const ghost = { podCidr: '10.244.50.0/24', ip: '192.0.2.50' };
    await waitTunnel(node(0), expectedTunnel([...members(1), { podCidr: node(2).podCidr, ip: n2Ip }, ghost]), 30_000);
    await waitTunnel(node(1), expectedTunnel([...members(0), { podCidr: node(2).podCidr, ip: n2Ip }, ghost]), 30_000);
    api.deleteNode('bvk-ghost');
    await waitTunnel(node(0), expectedTunnel([...members(1), { podCidr: node(2).podCidr, ip: n2Ip }]));
  });

  test('daemons SIGKILLed and restarted under running iperf3 flows (cross-node and masqueraded): no flow is reset, nothing rewritten', async () => {
    await startIperfServer(c, pods[1]!);
    await startIperfServer(c, c.internet);
    const flow = iperf(pods[0]!.path, pods[1]!.ip, { seconds: 8 });
    const masq = iperf(pods[0]!.path, c.internet.ip, { seconds: 8 });
    await sleep(2000);
    const before = tunnelDump(node(0));
    for (const i of [0, 1]) {
      const k = await daemons[i]!.kill('SIGKILL');
      assert.equal(k.signal, 'SIGKILL');
    }
    await sleep(500);
    for (const i of [0, 1]) daemons[i]!.start();
    await waitFor('restarted daemons ready', async () => (await daemons[0]!.ready()) && (await daemons[1]!.ready()), 20_000);
    // iperf() throws if iperf3 saw a reset or any error.
    for (const [what, res] of [['cross-node', await flow], ['masqueraded', await masq]] as const) {
      assert.ok(res.bytes > 0, what);
      assert.ok(Math.min(...res.intervals.slice(1)) > 0, `${what}: no stalled second: ${res.intervals.map((x) => x.toFixed(2)).join(' ')}`);
    }
    assert.deepEqual(tunnelDump(node(0)), before);
    const restartLog = daemons[0]!.logged(/dataplane attached/).at(-1)!;
    assert.equal(restartLog.adoptedEntries, before.length, 'the restart adopted the pinned entries');
    assert.equal(daemons[0]!.logged(/tunnel map reconciled/).filter((l) => (l.time as string) > (restartLog.time as string)).length, 0, 'no write after the restart');
  });

  test('every bad Node object is logged once, counted, skipped; the daemon stays ready', async () => {
    const d = daemons[0]!;
    const before = tunnelDump(node(0));
    const bad = [
      { name: 'bvk-nocidr', node: makeNode('bvk-nocidr', { internalIP: '192.0.2.60' }), reason: 'no_podcidr' },
      { name: 'bvk-badcidr', node: makeNode('bvk-badcidr', { podCIDR: '10.244.999.0/24', internalIP: '192.0.2.61' }), reason: 'invalid_podcidr' },
      { name: 'bvk-v6', node: makeNode('bvk-v6', { podCIDR: 'fd00:10:244:62::/64', internalIP: 'fd00::62' }), reason: 'ipv6_only' },
      { name: 'bvk-overlap', node: makeNode('bvk-overlap', { podCIDR: node(1).podCidr, internalIP: '192.0.2.63' }), reason: 'overlapping_podcidr' },
      { name: 'bvk-noip', node: makeNode('bvk-noip', { podCIDR: '10.244.64.0/24' }), reason: 'no_internal_ip' },
    ];
    for (const b of bad) api.addNode(b.node);
    await waitFor('all bad nodes logged', () => bad.every((b) => d.logged(/skipping unusable Node/, (l) => l.node === b.name).length === 1), 15_000);
    // A further change to a bad node does not log it again.
    api.modifyNode('bvk-noip', (n) => (n.metadata!.labels = { touched: 'yes' }));
    await sleep(500);
    for (const b of bad) {
      const lines = d.logged(/skipping unusable Node/, (l) => l.node === b.name);
      assert.equal(lines.length, 1, `${b.name} logged once`);
      assert.equal(lines[0]!.reason, b.reason);
      assert.equal(await d.metric('bvcni_skipped_nodes', { reason: b.reason }), 1, `${b.reason} counted`);
      assert.ok(((await d.metric('bvcni_bad_node_events_total', { reason: b.reason })) ?? 0) >= 1);
    }
    assert.deepEqual(tunnelDump(node(0)), before, 'bad nodes never reach the tunnel map');
    assert.ok(d.running && (await d.ready()), 'still running and ready');
    for (const b of bad) api.deleteNode(b.name);
    await waitFor('skipped gauge cleared', async () => (await d.metric('bvcni_skipped_nodes', { reason: 'no_podcidr' })) === undefined);
  });

  test('/metrics exposes reconcile duration, drops by reason, NAT table size and IPAM usage', async () => {
    // A fresh masqueraded mapping (ICMP echo, idle-expired) so the NAT table is not empty.
    assert.ok((await ping(pods[0]!.path, c.internet.ip, { count: 1 })).ok);
    // Counted in the background (--nat-count-interval, 10 s by default): the gauge lags by up to that plus one pass.
    await waitFor('NAT table size counted', async () => ((await daemons[0]!.metric('bvcni_nat_entries')) ?? 0) >= 1, 30_000, 500);
    const age = await daemons[0]!.metric('bvcni_nat_entries_age_seconds');
    assert.ok(age !== undefined && age >= 0 && age < 30, `the count's age is exposed (${age})`);
    const { status, body } = await daemons[0]!.http('/metrics');
    assert.equal(status, 200);
    for (const name of ['bvcni_reconcile_duration_seconds_count', 'bvcni_drops_packets{reason="DROP_NO_TUNNEL"', 'bvcni_nat_entries', 'bvcni_ipam_used', 'bvcni_ipam_capacity 253', 'bvcni_tunnel_entries 4'])
      assert.ok(body.includes(name), `metrics carry ${name}`);
    assert.equal((await daemons[0]!.http('/healthz')).status, 200);
  });

  test('SIGTERM leaves the dataplane in place; --uninstall removes programs, maps, devices, conflist and plugin', async () => {
    const d = daemons[1]!;
    const t = await d.kill('SIGTERM');
    assert.equal(t.code, 0);
    assert.ok(existsSync(node(1).pinDir) && existsSync(join(node(1).confDir, '00-bvcni.conflist')));
    const r = await ping(pods[0]!.path, pods[1]!.ip, { count: 2, timeoutS: 2 });
    assert.ok(r.ok, 'pods keep their network with the daemon stopped');
    const un = await c.exec(node(1), [...d.args(), '--uninstall'], { allowFail: true });
    assert.equal(un.code, 0, un.stderr + un.stdout);
    assert.ok(!existsSync(node(1).pinDir), 'pins removed');
    assert.ok(!existsSync(join(node(1).confDir, '00-bvcni.conflist')), 'conflist removed');
    assert.ok(!existsSync(join(node(1).binDir, 'bvcni')), 'plugin removed');
    const link = await c.exec(node(1), ['ip', 'link', 'show', node(1).bridge], { allowFail: true });
    assert.notEqual(link.code, 0, 'bridge removed');
  });
});
