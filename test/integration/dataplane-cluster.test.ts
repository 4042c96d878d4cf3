// bvcni's dataplane across a simulated 3-node cluster (2 pods per node):
// issue 3's cross-node test list, against the real kernel.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  connRate,
  createCluster,
  disableChecksumOffload,
  RESPONDER_PORT,
  iperf,
  IPERF_PORT,
  loadDataplane,
  ping,
  probeMany,
  removeTunnel,
  restoreTunnel,
  startIperfServer,
  startResponder,
  tcpCounters,
  tcpWhoami,
  udpWhoami,
  uniquePrefix,
  vpcDrops,
  type Cluster,
  type DataplaneApi,
  type DropStat,
  type SimNetns,
  type SimNode,
  type SimPod,
} from '../../src/sim/index.js';
import { listTc } from '../../src/dataplane/tc-filters.js';
import { run } from '../../src/common/exec.js';
import { listNat } from '../../src/dataplane/index.js';
import { Defaults as NodeDefaults } from '../../src/common/defaults.js';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

function dropCount(stats: DropStat[], reason: string): bigint {
  return stats.filter((s) => s.reason === reason || s.reason === `REASON_${reason}`).reduce((a, s) => a + s.packets, 0n);
}

describe('bvcni dataplane: 3 simulated nodes × 2 pods', () => {
  let c: Cluster;
  let dp: DataplaneApi;
  const pod = (n: number, k: number): SimPod => c.nodes[n]!.pods[k]!;
  const node = (n: number): SimNode => c.nodes[n]!;

  before(async () => {
    dp = await loadDataplane();
    c = await createCluster({ prefix: uniquePrefix('bvs'), nodes: 3, dataplane: 'bvcni', podsPerNode: 2 });
    const everyone: SimNetns[] = [c.internet, ...c.nodes, ...c.pods];
    await Promise.all(everyone.map(async (ns) => c.track(await startResponder(ns.path))));
  });
  after(() => c?.destroy());

  test('every pod reaches every other pod, same node and cross node, both directions: ping, TCP, UDP, own source IP', async () => {
    const failures: string[] = [];
    await Promise.all(
      c.pods.map(async (src) => {
        const dsts = c.pods.filter((d) => d !== src);
        const outcomes = await probeMany(
          src.path,
          dsts.flatMap((d) => [
            { ip: d.ip, proto: 'tcp' as const },
            { ip: d.ip, proto: 'udp' as const },
          ]),
        );
        outcomes.forEach((o, i) => {
          const d = dsts[i >> 1]!;
          const proto = i & 1 ? 'udp' : 'tcp';
          if (!o.ok) failures.push(`${proto} ${src.name} → ${d.name}: ${o.error}`);
          else if (o.peer !== src.ip) failures.push(`${proto} ${src.name} → ${d.name}: seen as ${o.peer}, want ${src.ip}`);
        });
        const pings = await Promise.all(dsts.map((d) => ping(src.path, d.ip, { count: 1 })));
        pings.forEach((p, i) => p.ok || failures.push(`ping ${src.name} → ${dsts[i]!.name}: ${p.stdout.trim()}`));
      }),
    );
    assert.deepEqual(failures, []);
  });

  test('pod → internet is masqueraded to its node IP (TCP, UDP, ping); the internet never sees a pod IP', async () => {
    for (const n of [0, 2]) {
      const p = pod(n, 1);
      assert.equal((await tcpWhoami(p.path, c.internet.ip)).peer, node(n).ip);
      assert.equal((await udpWhoami(p.path, c.internet.ip)).peer, node(n).ip);
      assert.ok((await ping(p.path, c.internet.ip)).ok, `ping ${p.name} → internet`);
    }
  });

  test('node → pod on its own and on other nodes, and pod → other node IPs: ping and TCP with real addresses', async () => {
    for (const [from, to] of [
      [0, pod(0, 0)],
      [0, pod(1, 1)],
      [2, pod(0, 1)],
    ] as const) {
      const n = node(from);
      const seen = await tcpWhoami(n.path, to.ip);
      // The node speaks from one of its own addresses (uplink or bridge), never translated.
      assert.ok([n.ip, n.gateway].includes(seen.peer), `${n.name} → ${to.name} seen as ${seen.peer}`);
      assert.equal(seen.local, to.ip);
      assert.ok((await ping(n.path, to.ip)).ok, `ping ${n.name} → ${to.name}`);
    }
    for (const [p, to] of [
      [pod(0, 0), node(1)],
      [pod(2, 1), node(0)],
    ] as const) {
      const seen = await tcpWhoami(p.path, to.ip);
      assert.equal(seen.peer, p.ip, `${p.name} → ${to.name} must keep the pod address`);
      assert.equal(seen.local, to.ip);
      assert.ok((await ping(p.path, to.ip)).ok, `ping ${p.name} → ${to.name}`);
    }
  });

  test('a pod created through the real CNI plugin talks across nodes and to the internet; DEL removes it', async (t) => {
    if (!existsSync(join(REPO, 'dist/bin/bvcni'))) return t.skip('dist/bin/bvcni not built (make build)');
    const p = await c.addPod(node(1), 'cni', { via: 'plugin' });
    let removed = false;
    try {
      assert.match(p.ip, /^10\.244\.1\.\d+$/);
      c.track(await startResponder(p.path));
      assert.equal((await tcpWhoami(p.path, pod(2, 0).ip)).peer, p.ip);
      assert.equal((await tcpWhoami(pod(0, 1).path, p.ip)).peer, pod(0, 1).ip);
      assert.equal((await udpWhoami(p.path, c.internet.ip)).peer, node(1).ip);
      await c.removePod(p);
      removed = true;
      assert.equal((await ping(pod(0, 1).path, p.ip, { count: 1, timeoutS: 1 })).ok, false);
    } finally {
      if (!removed) await c.removePod(p).catch(() => undefined);
    }
  });

  test('masquerade: a burst of short connections, twice the NAT port range, all succeed (closed mappings are recycled)', async () => {
    const range = NodeDefaults.natPortMax - NodeDefaults.natPortMin + 1;
    const p = pod(2, 1);
    const r = await connRate(p.path, c.internet.ip, RESPONDER_PORT, { total: 2 * range, concurrency: 8, patienceMs: 2000, maxFailures: 10 });
    assert.deepEqual({ done: r.done, failed: r.failed }, { done: 2 * range, failed: 0 });
    assert.equal(dropCount(dp.readDropStats(node(2).pinDir), 'DROP_NAT_NO_PORT'), 0n);
  });

  test('after all that traffic, no node holds an FDB, neighbour or route entry for another node or its pods', async () => {
    for (const n of c.nodes) {
      const others = c.nodes.filter((o) => o !== n);
      const fdb = (await c.exec(n, ['bridge', 'fdb', 'show', 'dev', n.vxlanDev])).stdout;
      assert.doesNotMatch(fdb, /\bdst\b/, `${n.name} VXLAN FDB: ${fdb}`);
      const neigh = (await c.exec(n, ['ip', '-4', 'neigh', 'show'])).stdout;
      for (const o of others) {
        const remotePods = new RegExp(`^10\\.244\\.${o.index}\\.\\d+ `, 'm');
        assert.doesNotMatch(neigh, remotePods, `${n.name} has neighbour entries for ${o.name}'s pods: ${neigh}`);
      }
      assert.doesNotMatch(neigh, new RegExp(`dev ${n.vxlanDev.replace('.', '\\.')}\\b`), `${n.name}: neighbours on the VXLAN device: ${neigh}`);
      const routes = (await c.exec(n, ['ip', '-4', 'route', 'show', 'table', 'all'])).stdout;
      for (const o of others) assert.ok(!routes.includes(o.podCidr), `${n.name} routes ${o.podCidr}: ${routes}`);
    }
  });

  test('ICMP errors of masqueraded flows reach the pod: port unreachable (UDP) and fragmentation needed (TCP keeps flowing)', async () => {
    const p = pod(1, 1);
    // Nothing listens on 7999 in the internet: without reverse NAT of the ICMP error the probe times out instead.
    const [closed] = await probeMany(p.path, [{ ip: c.internet.ip, port: 7999, proto: 'udp' }], 2000);
    assert.deepEqual(closed, { ok: false, error: 'ECONNREFUSED' });

    // A narrower hop between the underlay router and the internet: the router answers big DF packets with
    // "fragmentation needed" addressed to the node IP; the pod must learn the path MTU from it. (Only the
    // router's side shrinks, or the server would advertise a small MSS and no big packet would be sent.)
    await startIperfServer(c, c.internet);
    await c.exec(c.underlay, ['ip', 'link', 'set', 'inet', 'mtu', '1300']);
    try {
      await c.exec(p, ['ip', 'route', 'flush', 'cache']);
      const r = await iperf(p.path, c.internet.ip, { bytes: '5M' });
      assert.ok(r.bytes > 1_000_000, `received ${r.bytes}`);
      const route = (await c.exec(p, ['ip', 'route', 'get', c.internet.ip])).stdout;
      assert.match(route, /mtu 1300/, `the pod learned no path MTU: ${route}`);
    } finally {
      await c.exec(c.underlay, ['ip', 'link', 'set', 'inet', 'mtu', '1500']);
      await c.exec(p, ['ip', 'route', 'flush', 'cache']);
    }
  });

  test('bvcni leaves no nftables or iptables rule in any node', async () => {
    for (const n of c.nodes) {
      const nft = await c.exec(n, ['nft', 'list', 'ruleset']);
      assert.doesNotMatch(nft.stdout, /bvcni|masquerade|snat|dnat|\bchain\b/i, `${n.name}: ${nft.stdout}`);
      for (const tool of ['iptables-save', 'iptables-legacy-save']) {
        const r = await c.exec(n, [tool], { allowFail: true });
        if (r.code === 127) continue;
        const rules = r.stdout.split('\n').filter((l) => l.startsWith('-A') || /bvcni/i.test(l));
        assert.deepEqual(rules, [], `${n.name} ${tool}`);
      }
    }
  });

  test('a pod sending with a source that is not its own is dropped and counted as DROP_SPOOFED', async () => {
    const p = pod(0, 0);
    const fake = '10.244.0.222';
    const before = dropCount(dp.readDropStats(node(0).pinDir), 'DROP_SPOOFED');
    await c.exec(p, ['ip', 'addr', 'add', `${fake}/32`, 'dev', 'eth0']);
    try {
      // Without anti-spoofing the replies would come back to `fake` (the pod holds it) and ping would pass.
      const r = await ping(p.path, pod(1, 0).ip, { count: 3, source: fake, timeoutS: 1 });
      assert.equal(r.ok, false, `spoofed ping went through: ${r.stdout}`);
    } finally {
      await c.exec(p, ['ip', 'addr', 'del', `${fake}/32`, 'dev', 'eth0']);
    }
    const after = dropCount(dp.readDropStats(node(0).pinDir), 'DROP_SPOOFED');
    assert.ok(after - before >= 3n, `DROP_SPOOFED grew by ${after - before}`);
    assert.ok((await ping(p.path, pod(1, 0).ip)).ok, 'the pod own address still works');
  });

  test("removing a node's tunnel entry stops traffic to its pods; restoring it restores traffic", async () => {
    const src = pod(0, 1);
    const cut = pod(1, 0);
    const other = pod(2, 0);
    await removeTunnel(node(0), node(1));
    try {
      const [toCut, toOther] = await probeMany(
        src.path,
        [
          { ip: cut.ip, proto: 'tcp' },
          { ip: other.ip, proto: 'tcp' },
        ],
        1500,
      );
      assert.equal(toCut!.ok, false, 'traffic to the removed node must stop');
      assert.ok(toOther!.ok, 'traffic to other nodes is unaffected');
      assert.equal((await ping(src.path, cut.ip, { count: 1, timeoutS: 1 })).ok, false);
    } finally {
      await restoreTunnel(node(0), node(1));
    }
    assert.equal((await tcpWhoami(src.path, cut.ip)).peer, src.ip);
  });

  test('replacing the programs under a running iperf3 flow does not reset it', async () => {
    const client = pod(0, 0);
    const server = pod(1, 1);
    await startIperfServer(c, server);
    const vx = (n: SimNode) => listTc({ ifname: n.vxlanDev, netns: n.path }, 'ingress').map((f) => f.progId);
    const idsBefore = [vx(node(0)), vx(node(1))];
    const flow = iperf(client.path, server.ip, { seconds: 6 });
    await new Promise((r) => setTimeout(r, 2000));
    for (const n of [node(0), node(1)]) (await dp.ensureNodeDataplane(n.dataplaneConfig)).close();
    const res = await flow; // throws if iperf3 saw the connection reset
    const idsAfter = [vx(node(0)), vx(node(1))];
    assert.notDeepEqual(idsAfter, idsBefore, 'the programs were actually replaced');
    assert.ok(res.intervals.length >= 5, `intervals: ${res.intervals}`);
    assert.ok(res.intervals.slice(2).every((g) => g > 0), `the flow stalled: ${res.intervals.map((g) => g.toFixed(2))}`);
  });

  // A NIC without UDP tunnel offloads: the programs encapsulate pods' TCP super-packets
  // themselves, so the kernel must be able to cut them up in software at the uplink with
  // correct inner headers and checksums. The segments reach the receiver unverified by any
  // device (CHECKSUM_NONE), so its TCP checks every one.
  test('an uplink without transmit offloads segments encapsulated super-packets in software, with correct checksums', async () => {
    const a = pod(0, 0);
    const b = pod(1, 1);
    const sender = node(0);
    // Through `ip`: /sys/class/net would show the namespace sysfs was mounted in, not this one.
    const txStats = async (): Promise<{ packets: number; bytes: number }> => {
      const r = await run(['ip', '-j', '-s', 'link', 'show', 'dev', sender.uplink], { netns: sender.path });
      return (JSON.parse(r.stdout) as { stats64: { tx: { packets: number; bytes: number } } }[])[0]!.stats64.tx;
    };
    await run(['ethtool', '-K', sender.uplink, 'tx', 'off'], { netns: sender.path });
    try {
      await startIperfServer(c, b, 5202);
      const before = await tcpCounters(b.path);
      const txBefore = await txStats();
      await iperf(a.path, b.ip, { bytes: '20M', port: 5202 });
      const txAfter = await txStats();
      const after = await tcpCounters(b.path);
      const perPacket = (txAfter.bytes - txBefore.bytes) / (txAfter.packets - txBefore.packets);
      assert.ok(perPacket <= 1514, `the uplink sent ${perPacket.toFixed(0)} bytes per packet: not segmented`);
      assert.ok(after.InSegs! - before.InSegs! > 10_000, `${b.name} received ${after.InSegs! - before.InSegs!} segments`);
      assert.equal(after.InCsumErrors! - before.InCsumErrors!, 0, 'TcpInCsumErrors');
    } finally {
      await run(['ethtool', '-K', sender.uplink, 'tx', 'on'], { netns: sender.path });
    }
  });

  test('with checksum offloads off: 1,400-byte DF pings and bulk TCP through the overlay and the masquerade, no TcpInCsumErrors', async () => {
    await disableChecksumOffload(c);
    const a = pod(0, 1);
    const b = pod(2, 0);
    await startIperfServer(c, b);
    await startIperfServer(c, c.internet);
    const watched: SimNetns[] = [a, b, c.internet];
    const before = await Promise.all(watched.map((ns) => tcpCounters(ns.path)));
    for (const [x, y] of [
      [a, b],
      [b, a],
    ] as const)
      assert.ok((await ping(x.path, y.ip, { size: 1400, df: true, count: 3 })).ok, `1400-byte DF ping ${x.name} → ${y.name}`);
    assert.ok((await ping(a.path, c.internet.ip, { size: 1400, df: true, count: 3 })).ok, '1400-byte DF ping to the internet');
    for (const reverse of [false, true]) {
      await iperf(a.path, b.ip, { bytes: '30M', reverse });
      await iperf(a.path, c.internet.ip, { bytes: '30M', reverse });
    }
    const after = await Promise.all(watched.map((ns) => tcpCounters(ns.path)));
    watched.forEach((ns, i) => {
      assert.equal(after[i]!.InCsumErrors! - before[i]!.InCsumErrors!, 0, `TcpInCsumErrors in ${ns.name}`);
      // The counters must have seen the transfers, or the check proves nothing.
      assert.ok(after[i]!.InSegs! - before[i]!.InSegs! > 1000, `${ns.name} received ${after[i]!.InSegs! - before[i]!.InSegs!} segments`);
    });
  });

  // kube-proxy's NodePort with externalTrafficPolicy=Local: DNAT to a pod of this node and no
  // SNAT, so the pod answers the client's own address, outside the cluster. That reply must go
  // through the host's conntrack (un-DNAT), not through bvcni's masquerade; if it were
  // masqueraded the client would get a SYN-ACK from a port it never called and the connect fails.
  test('a NodePort-style DNAT to a local pod works from outside: the reply is left to the host conntrack', async () => {
    const n = node(0);
    const p = pod(0, 0);
    const nodePort = '30080';
    await c.exec(n, ['iptables', '-t', 'nat', '-A', 'PREROUTING', '-d', n.ip, '-p', 'tcp', '--dport', nodePort,
      '-j', 'DNAT', '--to-destination', `${p.ip}:${RESPONDER_PORT}`]);
    try {
      const seen = await tcpWhoami(c.internet.path, n.ip, Number(nodePort));
      assert.equal(seen.peer, c.internet.ip, 'the pod sees the outside client itself (no SNAT)');
      // The reply's own tuple (from the pod's listening port): earlier tests' pod → internet flows differ.
      const mine = listNat(n.pinDir, { podIp: p.ip }).filter(
        (f) => f.key.saddr === p.ip && f.key.sport === RESPONDER_PORT && f.key.daddr === c.internet.ip,
      );
      assert.deepEqual(mine, [], 'bvcni created no masquerade mapping for the reply');
    } finally {
      // Remove the whole table iptables-nft created, so no other test sees a leftover chain.
      await c.exec(n, ['nft', 'delete', 'table', 'ip', 'nat'], { allowFail: true });
    }
  });

  // kube-proxy's default NodePort (externalTrafficPolicy=Cluster): DNAT to a pod on another node and
  // SNAT to the node IP. The node forwards the request into the overlay (bpf_overlay's egress
  // encapsulates it) and the pod's answer comes back to the node's IP (bpf_host decapsulates it
  // and hands it to the VXLAN device's receive side), where conntrack undoes both translations.
  test('a NodePort-style DNAT to a pod on another node, with SNAT, works from outside through the overlay', async () => {
    const n = node(0);
    const p = pod(1, 0);
    const [whoamiPort, iperfPort] = [30081, 30082];
    await startIperfServer(c, p);
    for (const [nodePort, podPort] of [[whoamiPort, RESPONDER_PORT], [iperfPort, IPERF_PORT]]) {
      await c.exec(n, ['iptables', '-t', 'nat', '-A', 'PREROUTING', '-d', n.ip, '-p', 'tcp', '--dport', String(nodePort),
        '-j', 'DNAT', '--to-destination', `${p.ip}:${podPort}`]);
    }
    await c.exec(n, ['iptables', '-t', 'nat', '-A', 'POSTROUTING', '-d', p.ip, '-p', 'tcp', '-j', 'MASQUERADE']);
    try {
      const seen = await tcpWhoami(c.internet.path, n.ip, whoamiPort);
      assert.equal(seen.peer, n.ip, 'the pod sees the node that took the NodePort connection');
      for (const reverse of [false, true]) {
        const r = await iperf(c.internet.path, n.ip, { bytes: '20M', port: iperfPort, reverse });
        assert.ok(r.bytes > 10_000_000, `${reverse ? 'pod → outside' : 'outside → pod'}: received ${r.bytes}`);
      }
    } finally {
      await c.exec(n, ['nft', 'delete', 'table', 'ip', 'nat'], { allowFail: true });
    }
  });

  test('after every test above, the underlay never carried a packet with a pod address outside the overlay', async () => {
    assert.equal(await vpcDrops(c), 0);
  });
});
