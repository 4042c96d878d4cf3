// The real bvcnid on two simulated nodes, hardened (issue 13, item 4): its
// health and metrics listeners are on the node's loopback and no pod reaches
// them; a watch gone silent is resumed; a hung API server turns /healthz to
// 503 within --stuck-after while pods keep their traffic, and bvcnid recovers
// in place when the server answers again.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createCluster, ping, startResponder, tcpWhoami, uniquePrefix, type Cluster, type SimNetns, type SimNode, type SimPod } from '../../src/sim/index.js';
import { run } from '../../src/common/exec.js';
import { runCli } from '../../src/cli/run.js';
import { FakeKubeApiServer } from '../../src/sim/kube-apiserver.js';
import { makeNode } from '../../src/sim/kube-node.js';
import { BVCNID, DaemonProc, HEALTH_PORT, METRICS_PORT, expectedTunnel, httpGet, nodeObject, startApiInUnderlay, tunnelDump, waitTunnel } from '../support/kube-daemons.js';
import { sleep, waitFor } from '../support/kube-util.js';

// Small bounds so the test runs in seconds; main.ts refuses --stuck-after <= idle + api timeout.
const IDLE_MS = 2000;
const STUCK_MS = 6000;
const BOUNDS = ['--api-timeout', '1s', '--api-body-timeout', '2s', '--watch-idle-timeout', `${IDLE_MS}ms`, '--stuck-after', `${STUCK_MS}ms`];
/** A listener on every address of the node: proves a pod's TCP probe reaches the node's addresses at all. */
const CONTROL_PORT = 9199;

/** Whether a TCP connection from ns to ip:port is accepted (socat exits 0 only then). */
async function tcpConnects(ns: SimNetns, ip: string, port: number): Promise<boolean> {
  const r = await run(['socat', '-T', '1', '/dev/null', `TCP:${ip}:${port},connect-timeout=2`], { netns: ns.path, allowFail: true, timeoutMs: 10_000 });
  return r.code === 0;
}

describe('bvcnid: listeners off the pod network, watch and API deadlines, /healthz when stuck', { timeout: 300_000 }, () => {
  let c: Cluster;
  let api: FakeKubeApiServer;
  const daemons: DaemonProc[] = [];
  const pods: SimPod[] = [];
  const control: ChildProcess[] = [];
  const node = (i: number): SimNode => c.nodes[i]!;

  before(async () => {
    if (!existsSync(BVCNID)) throw new Error(`${BVCNID} missing: run make build`);
    c = await createCluster({ prefix: uniquePrefix('bvz'), nodes: 2, dataplane: 'none' });
    let kubeconfig: string;
    // No periodic bookmarks: a quiet cluster's watch is then kept alive only by its restarts.
    ({ api, kubeconfig } = await startApiInUnderlay(c));
    for (let i = 0; i < 2; i++) api.addNode(nodeObject(node(i)));
    for (let i = 0; i < 2; i++) {
      const d = new DaemonProc(c, node(i), kubeconfig, [...BOUNDS, '--nat-count-interval', '1s']);
      daemons.push(d);
      d.start();
    }
    for (let i = 0; i < 2; i++) await waitTunnel(node(i), expectedTunnel([node(1 - i)]), 30_000);
    for (const d of daemons) await waitFor(`${d.node.name} ready`, () => d.ready(), 20_000, 200);
    for (let i = 0; i < 2; i++) pods.push(await c.addPod(node(i), 'a', { via: 'plugin' }));
  });

  after(async () => {
    try {
      for (const p of control) p.kill('SIGKILL');
      for (const d of daemons) if (d.running) await d.kill('SIGKILL');
      await api?.close();
    } finally {
      await c?.destroy();
    }
  });

  test('health and metrics answer on the node loopback only: no pod reaches them on a node IP or the gateway', async () => {
    const d0 = daemons[0]!;
    // Control: they answer on the node's loopback, each listener only its own paths.
    assert.equal((await d0.http('/healthz')).status, 200);
    assert.equal((await d0.http('/readyz')).status, 200);
    const m = await d0.http('/metrics');
    assert.equal(m.status, 200);
    assert.match(m.body, /^bvcni_tunnel_nodes 1$/m);
    assert.equal((await httpGet(c, node(0), `http://127.0.0.1:${HEALTH_PORT}/metrics`)).status, 404, 'no /metrics on the health listener');
    assert.equal((await httpGet(c, node(0), `http://127.0.0.1:${METRICS_PORT}/healthz`)).status, 404, 'no /healthz on the metrics listener');

    // Control: a listener on every address of node 0 is reached by the same TCP probe, from a local and a remote pod.
    control.push(await startResponder(node(0).path, CONTROL_PORT));
    const targets = [
      { from: pods[0]!, ip: node(0).gateway, what: "local pod → its gateway" },
      { from: pods[0]!, ip: node(0).ip, what: "local pod → its node's IP" },
      { from: pods[1]!, ip: node(0).ip, what: "remote pod → node 0's IP" },
    ];
    for (const t of targets) {
      assert.ok(await tcpConnects(t.from, t.ip, CONTROL_PORT), `control: ${t.what}:${CONTROL_PORT} accepts`);
      const seen = await tcpWhoami(t.from.path, t.ip, CONTROL_PORT);
      assert.equal(seen.peer, t.from.ip, `control: ${t.what} reached the node's listener`);
    }
    // The attack: the same probes at bvcnid's ports, TCP and HTTP.
    for (const t of targets) {
      for (const port of [HEALTH_PORT, METRICS_PORT]) {
        assert.equal(await tcpConnects(t.from, t.ip, port), false, `${t.what}:${port} must not accept`);
        for (const path of ['/healthz', '/metrics']) {
          const r = await httpGet(c, t.from, `http://${t.ip}:${port}${path}`, 2);
          assert.equal(r.status, 0, `${t.what}:${port}${path} answered ${r.status}: ${r.body.slice(0, 80)}`);
        }
      }
    }
  });

  test('a watch gone silent (no event, no bookmark) is resumed from its resourceVersion; a quiet cluster stays healthy', async () => {
    const d0 = daemons[0]!;
    const restartsBefore = (await d0.metric('bvcni_node_watch_idle_restarts_total')) ?? 0;
    const listsBefore = api.countRequests('list');
    const watchesBefore = api.requests.filter((r) => r.verb === 'watch').length;
    assert.ok(api.silenceWatches() >= 2, 'both daemons had a watch open');
    // A change the silent streams never deliver: it must arrive through the resumed watch.
    const ghost = { podCidr: '10.244.77.0/24', ip: '192.0.2.77' };
    api.addNode(makeNode('bvh-ghost', { podCIDR: ghost.podCidr, internalIP: ghost.ip }));
    await sleep(IDLE_MS / 2);
    assert.deepEqual(tunnelDump(node(0)), expectedTunnel([node(1)]), 'a silent stream delivered nothing');
    api.silenceWatches(false);
    await waitTunnel(node(0), expectedTunnel([node(1), ghost]), 4 * IDLE_MS);
    await waitTunnel(node(1), expectedTunnel([node(0), ghost]), 4 * IDLE_MS);
    const logged = d0.logged(/node watch silent/).at(-1);
    assert.equal(logged?.silentMs, IDLE_MS, 'restarted by the idle watchdog with the configured bound');
    assert.ok(((await d0.metric('bvcni_node_watch_idle_restarts_total')) ?? 0) > restartsBefore, 'idle restarts counted');
    assert.equal(api.countRequests('list'), listsBefore, 'resumed, not relisted');
    const resumed = api.requests.filter((r) => r.verb === 'watch').slice(watchesBefore);
    assert.ok(resumed.length >= 2 && resumed.every((r) => /resourceVersion=\d+/.test(r.url)), 'every new watch resumes from a resourceVersion');

    // Quiet, no bookmarks (the fake sends none unless asked): watches are restarted every IDLE_MS, which is progress.
    const quietUntil = Date.now() + 2 * STUCK_MS;
    while (Date.now() < quietUntil) {
      for (const d of daemons) assert.equal((await d.http('/healthz')).status, 200, `${d.node.name} healthy on a quiet cluster`);
      await sleep(1000);
    }
    assert.ok(((await d0.metric('bvcni_node_watch_idle_restarts_total')) ?? 0) >= restartsBefore + 3, 'the quiet watch kept being restarted');
    api.deleteNode('bvh-ghost');
    await waitTunnel(node(0), expectedTunnel([node(1)]), 4 * IDLE_MS);
  });

  test('a hung API server (connects, never answers): /healthz fails within --stuck-after while pods keep their traffic; answered again, bvcnid recovers in place', async () => {
    control.push(await startResponder(pods[1]!.path));
    const maps = [0, 1].map((i) => tunnelDump(node(i)));
    const exits = daemons.map((d) => d.exits);
    for (const d of daemons) assert.equal((await d.http('/healthz')).status, 200, 'healthy before');
    api.hang();
    const hungAt = Date.now();
    const unhealthy = new Set<number>();
    // Generous: the bound, the liveness of a loaded machine's event loop, one backoff.
    while (unhealthy.size < 2) {
      assert.ok(Date.now() - hungAt < STUCK_MS + 20_000, `both /healthz failing within the bound (failing: ${[...unhealthy].join(',')})`);
      const r = await ping(pods[0]!.path, pods[1]!.ip, { count: 1, timeoutS: 2 });
      assert.ok(r.ok, `cross-node ping during the hang: ${r.stdout}`);
      const seen = await tcpWhoami(pods[0]!.path, pods[1]!.ip);
      assert.equal(seen.peer, pods[0]!.ip, 'cross-node TCP during the hang, from the pod itself');
      for (const [i, d] of daemons.entries()) {
        const h = await d.http('/healthz');
        if (h.status === 503) {
          assert.match(h.body, /API sync stuck/);
          unhealthy.add(i);
        } else assert.equal(h.status, 200, 'the health listener keeps answering');
      }
      await sleep(500);
    }
    assert.ok(api.heldCount + api.requests.filter((r) => r.status === 0).length > 0, 'requests reached the hung server');
    // bvcnictl status (default --health-addr, the daemon's) shows why.
    const st = await runCli(['status', '--json', '--pin-dir', node(0).pinDir, '--netns', node(0).path]);
    const daemon = (JSON.parse(st.output) as { daemon: { state: string; detail: string } }).daemon;
    assert.equal(daemon.state, 'not-ready');
    assert.match(daemon.detail, /\/healthz 503 unhealthy: API sync stuck/);
    for (let i = 0; i < 2; i++) assert.deepEqual(tunnelDump(node(i)), maps[i], `n${i} map untouched by the hang`);
    assert.ok(((await daemons[0]!.metric('bvcni_api_errors_total', { op: 'list_watch', code: 'ETIMEDOUT' })) ?? 0) >= 1, 'timeouts counted');

    api.hang(false);
    for (const d of daemons) await waitFor(`${d.node.name} healthy again`, async () => (await d.http('/healthz')).status === 200, 30_000, 250);
    assert.deepEqual(daemons.map((d) => d.exits), exits, 'recovered in place, no restart');
    // The sync works again: a change reaches both maps.
    const late = { podCidr: '10.244.78.0/24', ip: '192.0.2.78' };
    api.addNode(makeNode('bvh-late', { podCIDR: late.podCidr, internalIP: late.ip }));
    await waitTunnel(node(0), expectedTunnel([node(1), late]), 20_000);
    api.deleteNode('bvh-late');
    await waitTunnel(node(0), expectedTunnel([node(1)]), 20_000);
  });
});
