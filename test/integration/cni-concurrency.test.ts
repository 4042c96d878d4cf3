// 100 plugin processes at once against one node: the flock'd IPAM hands out
// 100 distinct addresses with no error; 100 parallel DELs empty the pool.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestNode, type CniOutcome } from '../fixtures/cni/harness.js';

const N = 100;

describe('bvcni under concurrency', { timeout: 300_000 }, () => {
  let node: TestNode;
  const pods: string[] = [];
  before(async () => {
    node = await TestNode.create();
    for (let i = 0; i < N; i++) pods.push(await node.pod(`c${i}`));
  });
  after(async () => {
    await node?.destroy();
  });

  test(`${N} parallel ADDs get ${N} distinct addresses; ${N} parallel DELs empty the pool`, async () => {
    const adds: CniOutcome[] = await Promise.all(
      pods.map((p, i) => node.exec({ command: 'ADD', containerId: `par${i}`, netns: p, ifname: 'eth0', stdin: node.conf('1.0.0') })),
    );
    const failures = adds.filter((r) => r.code !== 0);
    assert.deepEqual(failures.map((f) => f.stdout), [], 'no ADD failed');
    const ips = adds.map((r) => (r.json!.ips as { address: string }[])[0]!.address);
    assert.equal(new Set(ips).size, N, 'all addresses distinct');
    for (const ip of ips) assert.doesNotMatch(ip, /^10\.244\.1\.(0|1|255)\//, 'never network, gateway or broadcast');
    assert.equal(node.reservations().length, N);
    assert.equal((await node.hostVeths()).length, N);
    assert.equal((await node.endpoints()).length, N);
    // Every pod really has its own address.
    const onPods = await Promise.all(pods.map((p) => node.podAddrs(p)));
    assert.deepEqual(onPods.map((a) => a[0]).sort(), [...ips].sort());

    const dels = await Promise.all(
      pods.map((p, i) => node.exec({ command: 'DEL', containerId: `par${i}`, netns: p, ifname: 'eth0', stdin: node.conf('1.0.0') })),
    );
    assert.deepEqual(dels.filter((r) => r.code !== 0).map((r) => r.stdout), [], 'no DEL failed');
    assert.deepEqual(node.reservations(), [], 'pool empty');
    assert.deepEqual(await node.hostVeths(), []);
    assert.deepEqual(await node.endpoints(), []);
  });
});
