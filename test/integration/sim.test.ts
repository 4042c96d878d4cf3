// The simulator itself, on the kernel-only dataplanes ('none' and the
// flannel-style baseline), so it is proven independently of bvcni's programs.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import {
  cleanupLeftovers,
  connRate,
  createCluster,
  iperf,
  startIperfServer,
  RESPONDER_PORT,
  INTERNET_IP,
  linkInfo,
  ping,
  probeMany,
  startResponder,
  tcpWhoami,
  udpWhoami,
  uniquePrefix,
  vpcDrops,
  type Cluster,
} from '../../src/sim/index.js';
import { listNetns } from '../../src/sim/netns.js';
import { run } from '../../src/common/exec.js';

function alive(pid: string): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

function leftovers(prefix: string): string[] {
  return [
    ...listNetns(prefix),
    ...readdirSync('/sys/fs/bpf').filter((n) => n.startsWith(prefix)),
    ...readdirSync(tmpdir()).filter((n) => n.startsWith(prefix)),
  ];
}

describe('simulator: flannel-style baseline cluster', () => {
  let c: Cluster;
  before(async () => {
    c = await createCluster({ prefix: uniquePrefix('bvs'), nodes: 2, dataplane: 'flannel', podsPerNode: 1 });
    c.track(await startResponder(c.internet.path));
    for (const p of c.pods) c.track(await startResponder(p.path));
    for (const n of c.nodes) c.track(await startResponder(n.path));
  });
  after(() => c?.destroy());

  test('nodes, pods and the internet get the documented addresses and MTUs', async () => {
    assert.deepEqual(
      c.nodes.map((n) => [n.ip, n.podCidr]),
      [
        ['192.0.2.10', '10.244.0.0/24'],
        ['192.0.2.11', '10.244.1.0/24'],
      ],
    );
    assert.equal((await linkInfo(c.nodes[0]!.path, 'eth0')).mtu, 1500);
    assert.equal((await linkInfo(c.pods[0]!.path, 'eth0')).mtu, 1450);
    assert.ok(existsSync(c.nodes[1]!.stateDir));
  });

  test('the baseline programs what flannel does per remote node: FDB, neighbour and onlink route', async () => {
    const n0 = c.nodes[0]!;
    const fdb = (await run(['bridge', 'fdb', 'show', 'dev', 'flannel.1'], { netns: n0.path })).stdout;
    assert.match(fdb, /dst 192\.0\.2\.11 self permanent/);
    const neigh = (await run(['ip', '-4', 'neigh', 'show', 'dev', 'flannel.1'], { netns: n0.path })).stdout;
    assert.match(neigh, /^10\.244\.1\.0 lladdr \S+ PERMANENT/m);
    const routes = (await run(['ip', '-4', 'route'], { netns: n0.path })).stdout;
    assert.match(routes, /^10\.244\.1\.0\/24 via 10\.244\.1\.0 dev flannel\.1 onlink/m);
  });

  test('pods on different nodes reach each other with their own addresses (TCP, UDP, ping)', async () => {
    const [a, b] = c.pods;
    assert.ok((await ping(a!.path, b!.ip)).ok);
    const [t, u] = await probeMany(a!.path, [
      { ip: b!.ip, proto: 'tcp' },
      { ip: b!.ip, proto: 'udp' },
    ]);
    assert.deepEqual([t!.ok && t.peer, u!.ok && u.peer], [a!.ip, a!.ip]);
    assert.equal((await udpWhoami(b!.path, a!.ip)).peer, b!.ip);
  });

  test('the overlay MTU is exact: a full-size DF ping passes, one byte more does not', async () => {
    const [a, b] = c.pods;
    assert.ok((await ping(a!.path, b!.ip, { size: 1450 - 28, df: true })).ok);
    assert.equal((await ping(a!.path, b!.ip, { size: 1450 - 27, df: true, count: 1 })).ok, false);
  });

  test('the internet sees the node address (nft masquerade) and nodes reach it directly', async () => {
    const [a] = c.pods;
    assert.equal((await tcpWhoami(a!.path, INTERNET_IP)).peer, c.nodes[0]!.ip);
    assert.equal((await udpWhoami(a!.path, INTERNET_IP)).peer, c.nodes[0]!.ip);
    assert.equal((await tcpWhoami(c.nodes[1]!.path, INTERNET_IP)).peer, c.nodes[1]!.ip);
  });

  test('the nft masquerade baseline sustains a burst of 8,000 short connections', async () => {
    const r = await connRate(c.pods[0]!.path, INTERNET_IP, RESPONDER_PORT, { total: 8000, concurrency: 8, patienceMs: 2000, maxFailures: 10 });
    assert.deepEqual({ done: r.done, failed: r.failed }, { done: 8000, failed: 0 });
  });

  test('nodes reach each other on the underlay with their own addresses', async () => {
    assert.equal((await tcpWhoami(c.nodes[0]!.path, c.nodes[1]!.ip)).peer, c.nodes[0]!.ip);
  });

  test('a removed pod is gone and its address stops answering', async () => {
    const pod = await c.addPod(c.nodes[1]!, 'tmp');
    assert.ok((await ping(c.pods[0]!.path, pod.ip)).ok);
    await c.removePod(pod);
    assert.ok(!listNetns(pod.name).includes(pod.name));
    assert.equal((await ping(c.pods[0]!.path, pod.ip, { count: 1, timeoutS: 1 })).ok, false);
  });
});

describe('simulator: lifecycle', () => {
  test('an iperf3 server answers test after test: its reports are drained, not left to fill a pipe (64 KiB: 40 timed tests, ~100 of these)', async () => {
    const c = await createCluster({ prefix: uniquePrefix('bvs'), nodes: 1, dataplane: 'none' });
    try {
      await startIperfServer(c, c.nodes[0]!);
      for (let i = 0; i < 250; i++) {
        const r = await iperf(c.internet.path, c.nodes[0]!.ip, { bytes: '1M' });
        assert.ok(r.bytes > 0, `test ${i}: ${r.bytes} bytes`);
      }
    } finally {
      await c.destroy();
    }
  });

  test("'none' builds bare nodes: underlay and internet work, no bridge exists", async () => {
    const c = await createCluster({ prefix: uniquePrefix('bvs'), nodes: 2, dataplane: 'none' });
    try {
      c.track(await startResponder(c.internet.path));
      assert.equal((await tcpWhoami(c.nodes[1]!.path, INTERNET_IP)).peer, '192.0.2.11');
      const links = await run(['ip', '-br', 'link'], { netns: c.nodes[0]!.path });
      assert.doesNotMatch(links.stdout, /cni0|flannel/);
      // The underlay behaves like a cloud VPC: a pod address outside the overlay is dropped and counted.
      assert.equal(await vpcDrops(c), 0);
      await run(['ip', 'addr', 'add', '10.244.0.99/32', 'dev', 'eth0'], { netns: c.nodes[0]!.path });
      assert.equal((await ping(c.nodes[0]!.path, c.nodes[1]!.ip, { count: 2, source: '10.244.0.99', timeoutS: 1 })).ok, false);
      assert.ok((await vpcDrops(c)) >= 2);
      await assert.rejects(c.addPod(c.nodes[0]!, 'early'), /no bridge cni0/);
      assert.deepEqual(listNetns(`${c.prefix}-n0-`), [], 'a failed addPod leaves no pod namespace');
      assert.deepEqual(c.nodes[0]!.pods, []);
    } finally {
      await c.destroy();
    }
    assert.deepEqual(leftovers(c.prefix), []);
  });

  test('destroy removes namespaces, pins, temp dirs and kills processes in them', async () => {
    const c = await createCluster({ prefix: uniquePrefix('bvs'), nodes: 2, dataplane: 'flannel', podsPerNode: 1 });
    const sleeper = c.spawn(c.pods[0]!, ['sleep', '300']);
    mkdirSync(c.nodes[0]!.pinDir);
    assert.ok(leftovers(c.prefix).length >= 6);
    const exited = new Promise((r) => sleeper.once('exit', r));
    await c.destroy();
    await c.destroy(); // idempotent
    await exited;
    assert.deepEqual(leftovers(c.prefix), []);
  });

  test('cleanupLeftovers removes what a crashed run left (namespaces, processes, pins, dirs)', async () => {
    const c = await createCluster({ prefix: uniquePrefix('bvs'), nodes: 1, dataplane: 'flannel', podsPerNode: 1 });
    try {
      mkdirSync(c.nodes[0]!.pinDir);
      // A process nobody tracks, as after a crash of the test runner.
      const pid = (await run(['sh', '-c', `nsenter --net=${c.nodes[0]!.path} sleep 300 >/dev/null 2>&1 & echo $!`])).stdout.trim();
      assert.ok(alive(pid));
      const found = await cleanupLeftovers(c.prefix);
      assert.ok(found.netns.includes(`${c.prefix}-n0`) && found.netns.includes(`${c.prefix}-n0-p0`), String(found.netns));
      assert.deepEqual(found.pins, [c.nodes[0]!.pinDir]);
      assert.equal(found.dirs.length, 1);
      assert.deepEqual(leftovers(c.prefix), []);
      await new Promise((r) => setTimeout(r, 200)); // let init reap it
      assert.equal(alive(pid), false);
    } finally {
      await c.destroy();
    }
  });

  test('a process that dies with a cluster still up (uncaught error) leaves nothing behind, unless told to keep it', async () => {
    const prefix = uniquePrefix('bvs');
    const sim = new URL('../../src/sim/index.js', import.meta.url).pathname;
    const script = [
      `const { createCluster } = await import(${JSON.stringify(sim)});`,
      `await createCluster({ prefix: ${JSON.stringify(prefix)}, nodes: 1, dataplane: 'flannel', podsPerNode: 1 });`,
      `const kept = await createCluster({ prefix: ${JSON.stringify(prefix)} + 'k', nodes: 1, dataplane: 'none' });`,
      `kept.keepAfterExit();`,
      `console.log('up');`,
      `setImmediate(() => { throw new Error('crash'); });`,
    ].join('\n');
    const r = await run([process.execPath, '--import', 'tsx', '--input-type=module', '-e', script], { allowFail: true, timeoutMs: 60_000 });
    assert.match(r.stdout, /up/, r.stderr);
    assert.notEqual(r.code, 0);
    try {
      assert.deepEqual(leftovers(`${prefix}-`), []);
      assert.ok(leftovers(`${prefix}k-`).length > 0, 'keepAfterExit() must keep its cluster');
    } finally {
      await cleanupLeftovers(prefix);
    }
    assert.deepEqual(leftovers(prefix), []);
  });

  test('bad options are refused before anything is created', async () => {
    const prefix = uniquePrefix('bvs');
    await assert.rejects(createCluster({ prefix: 'BAD-prefix', nodes: 1, dataplane: 'none' }), /prefix/);
    await assert.rejects(createCluster({ prefix, nodes: 0, dataplane: 'none' }), /nodes/);
    await assert.rejects(createCluster({ prefix, nodes: 1, dataplane: 'none', mtu: 100 }), /mtu/);
    await assert.rejects(cleanupLeftovers('b'), /prefix/);
    assert.deepEqual(leftovers(prefix), []);
  });
});
