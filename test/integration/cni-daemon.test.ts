// The plugin's fast path: with bvcnid running on the node, the installed
// plugin hands every command to it over <dataDir>/bvcnid.sock. Proven here:
// the daemon really does the work (its log lines carry via=bvcnid), results
// match what the plugin alone returns, a DEL's veth goes after the answer,
// the daemon declines what it cannot see the same way, plugins alone and the
// daemon share the pool safely, and a daemon killed at any point leaves
// nothing that DEL or GC does not clean up.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestNode, daemonRequest, shape, type CniOutcome } from '../fixtures/cni/harness.js';
import { run } from '../../src/common/exec.js';
import { waitFor } from '../../src/common/wait.js';
import { daemonSocketPath } from '../../src/cni/delegate.js';
import { fastPathCheck } from '../../src/cli/commands/doctor.js';

const ALONE = { BVCNI_NO_DAEMON: '1' };

function logLines(node: TestNode): Record<string, unknown>[] {
  try {
    return readFileSync(join(node.dataDir, 'bvcni.log'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  } catch {
    return [];
  }
}

/** The log line of one finished command for one container: who handled it. */
function handledBy(node: TestNode, cmd: string, containerId: string): string | undefined {
  const l = logLines(node).filter((x) => x.cmd === cmd && x.containerId === containerId).at(-1);
  return l ? String(l.via ?? 'plugin') : undefined;
}

function ipOf(r: CniOutcome): string {
  return (r.json!.ips as { address: string }[])[0]!.address;
}

async function noVethsLeft(node: TestNode): Promise<void> {
  // bvcnid deletes a DEL's veth after answering: give the kernel its time.
  await waitFor('host veths deleted', async () => (await node.hostVeths()).length === 0, { timeoutMs: 10_000, intervalMs: 50 });
}

describe('bvcni with bvcnid serving it', { timeout: 300_000 }, () => {
  let node: TestNode;
  before(async () => {
    node = await TestNode.create();
    await node.startDaemon();
  });
  after(async () => {
    await node?.destroy();
  });

  test('ADD, CHECK, STATUS, DEL and GC are done by bvcnid, with the same results as the plugin alone', async () => {
    const conf = node.conf('1.1.0');
    const pd = await node.pod('d');
    const pa = await node.pod('a');
    const viaDaemon = await node.exec({ command: 'ADD', containerId: 'cd', netns: pd, ifname: 'eth0', stdin: conf });
    const alone = await node.exec({ command: 'ADD', containerId: 'ca', netns: pa, ifname: 'eth0', stdin: conf, env: ALONE });
    assert.equal(viaDaemon.code, 0, viaDaemon.stdout);
    assert.equal(alone.code, 0, alone.stdout);
    assert.equal(handledBy(node, 'ADD', 'cd'), 'bvcnid');
    assert.equal(handledBy(node, 'ADD', 'ca'), 'plugin');
    assert.deepEqual(shape(viaDaemon.json), shape(alone.json));
    assert.equal((viaDaemon.json!.interfaces as { sandbox?: string }[])[2]!.sandbox, pd);

    // The pod the daemon configured works: its address, route and endpoint entry.
    const ip = ipOf(viaDaemon);
    assert.deepEqual(await node.podAddrs(pd), [ip]);
    await run(['ping', '-c', '1', '-W', '2', '10.244.1.1'], { netns: pd });
    assert.ok((await node.endpoints()).includes(ip.split('/')[0]!));

    const check = await node.exec({ command: 'CHECK', containerId: 'cd', netns: pd, ifname: 'eth0', stdin: { ...conf, prevResult: viaDaemon.json } });
    assert.equal(check.code, 0, check.stdout);
    const status = await node.exec({ command: 'STATUS', stdin: conf });
    assert.equal(status.code, 0, status.stdout);

    // A CHECK the daemon runs fails exactly as the plugin's would.
    await run(['ip', 'addr', 'flush', 'dev', 'eth0'], { netns: pd });
    const bad = await node.exec({ command: 'CHECK', containerId: 'cd', netns: pd, ifname: 'eth0', stdin: { ...conf, prevResult: viaDaemon.json } });
    assert.equal(handledBy(node, 'CHECK', 'cd'), 'bvcnid');
    const badAlone = await node.exec({ command: 'CHECK', containerId: 'cd', netns: pd, ifname: 'eth0', stdin: { ...conf, prevResult: viaDaemon.json }, env: ALONE });
    assert.equal(bad.code, 1);
    assert.deepEqual(bad.json, badAlone.json);

    const del = await node.exec({ command: 'DEL', containerId: 'cd', netns: pd, ifname: 'eth0', stdin: conf });
    assert.equal(del.code, 0, del.stdout);
    assert.equal(handledBy(node, 'DEL', 'cd'), 'bvcnid');
    // Answered before the veth went; the address and the entry are gone already.
    assert.ok(!node.reservations().includes(ip.split('/')[0]!));
    assert.ok(!(await node.endpoints()).includes(ip.split('/')[0]!));
    // DEL again: idempotent through the daemon too.
    assert.equal((await node.exec({ command: 'DEL', containerId: 'cd', netns: pd, ifname: 'eth0', stdin: conf })).code, 0);

    const gc = await node.exec({ command: 'GC', stdin: { ...conf, 'cni.dev/valid-attachments': [] } });
    assert.equal(gc.code, 0, gc.stdout);
    assert.deepEqual(node.reservations(), []);
    assert.deepEqual(await node.endpoints(), []);
    await noVethsLeft(node);
    const pdGone = await node.podAddrs(pd);
    assert.deepEqual(pdGone, [], 'the pod interface went with its veth');
  });

  test('errors come back as the spec JSON, as from the plugin alone', async () => {
    const pod = await node.pod('e');
    const cases: { name: string; stdin: object | string; env?: Record<string, string> }[] = [
      { name: 'bad podcidr', stdin: { ...node.conf('1.0.0'), podcidr: '10.244.1.0/33' } },
      { name: 'unsupported version', stdin: { ...node.conf('1.0.0'), cniVersion: '9.9.9' } },
      { name: 'bad ifname', stdin: node.conf('1.0.0'), env: { CNI_IFNAME: 'a/b' } },
    ];
    for (const c of cases) {
      const via = await node.exec({ command: 'ADD', containerId: 'ce', netns: pod, ifname: 'eth0', stdin: c.stdin, env: c.env });
      const alone = await node.exec({ command: 'ADD', containerId: 'ce', netns: pod, ifname: 'eth0', stdin: c.stdin, env: { ...c.env, ...ALONE } });
      assert.equal(via.code, 1, c.name);
      assert.deepEqual(via.json, alone.json, c.name);
    }
    assert.deepEqual(node.reservations(), []);
  });

  test('declines what it sees differently: the plugin then works alone', async () => {
    // A namespace path the daemon would resolve to another namespace than the plugin's is
    // simulated by a request that states another identity; the daemon must refuse it.
    const pod = await node.pod('x');
    const reply = await daemonRequest(daemonSocketPath(node.dataDir), {
      protocol: 1,
      env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'cx', CNI_NETNS: pod, CNI_IFNAME: 'eth0' },
      stdin: JSON.stringify(node.conf('1.0.0')),
      nodeNs: { dev: 1, ino: 1 },
      podNs: { dev: 1, ino: 2 },
    });
    assert.match(String(reply.declined), /another network namespace/);
    assert.deepEqual(node.reservations(), [], 'a declined request did nothing');
    assert.match(String((await daemonRequest(daemonSocketPath(node.dataDir), { protocol: 99 })).declined), /protocol/);

    // Another pin directory than the daemon's: declined, and the plugin answers alone (nothing pinned there).
    const other = await node.exec({ command: 'ADD', containerId: 'cx', netns: pod, ifname: 'eth0', stdin: node.conf('1.0.0', { pinDir: '/sys/fs/bpf/bvcni-test-nothing' }) });
    assert.equal(other.code, 1);
    assert.equal(other.json!.code, 11);
    assert.equal(handledBy(node, 'ADD', 'cx'), 'plugin');
  });

  test('100 parallel ADDs, half through bvcnid and half alone, share the pool; parallel DELs empty it', async () => {
    const N = 100;
    const pods: string[] = [];
    for (let i = 0; i < N; i++) pods.push(await node.pod(`m${i}`));
    const env = (i: number): Record<string, string> | undefined => (i % 2 ? ALONE : undefined);
    const adds = await Promise.all(pods.map((p, i) => node.exec({ command: 'ADD', containerId: `mix${i}`, netns: p, ifname: 'eth0', stdin: node.conf('1.0.0'), env: env(i) })));
    assert.deepEqual(adds.filter((r) => r.code !== 0).map((r) => r.stdout), [], 'no ADD failed');
    const ips = adds.map(ipOf);
    assert.equal(new Set(ips).size, N, 'all addresses distinct');
    assert.equal(node.reservations().length, N);
    assert.equal((await node.endpoints()).length, N);
    const via = pods.map((_, i) => handledBy(node, 'ADD', `mix${i}`));
    assert.equal(via.filter((v) => v === 'bvcnid').length, N / 2);
    const dels = await Promise.all(pods.map((p, i) => node.exec({ command: 'DEL', containerId: `mix${i}`, netns: p, ifname: 'eth0', stdin: node.conf('1.0.0'), env: env(i + 1) })));
    assert.deepEqual(dels.filter((r) => r.code !== 0).map((r) => r.stdout), [], 'no DEL failed');
    assert.deepEqual(node.reservations(), []);
    assert.deepEqual(await node.endpoints(), []);
    await noVethsLeft(node);
    pods.forEach((p) => node.deletePod(p));
  });

  test('bvcnid killed (stale socket) → the plugin works alone; restarted → it serves again; GC leaves nothing', async () => {
    const conf = node.conf('1.1.0');
    const p1 = await node.pod('k1');
    const p2 = await node.pod('k2');
    assert.equal((await node.exec({ command: 'ADD', containerId: 'k1', netns: p1, ifname: 'eth0', stdin: conf })).code, 0);
    // Killed right after answering a DEL: its veth delete may not have run.
    assert.equal((await node.exec({ command: 'DEL', containerId: 'k1', netns: p1, ifname: 'eth0', stdin: conf })).code, 0);
    assert.equal((await fastPathCheck(node.dataDir)).result, 'ok');
    await node.stopDaemon('SIGKILL');
    const dead = await fastPathCheck(node.dataDir);
    assert.equal(dead.result, 'fail', 'bvcnictl doctor sees the socket left by a dead bvcnid');
    assert.match(dead.detail, /ECONNREFUSED/);
    const alone = await node.exec({ command: 'ADD', containerId: 'k2', netns: p2, ifname: 'eth0', stdin: conf });
    assert.equal(alone.code, 0, alone.stdout);
    assert.equal(handledBy(node, 'ADD', 'k2'), 'plugin');

    await node.startDaemon();
    assert.equal((await fastPathCheck(node.dataDir)).result, 'ok');
    const p3 = await node.pod('k3');
    const served = await node.exec({ command: 'ADD', containerId: 'k3', netns: p3, ifname: 'eth0', stdin: conf });
    assert.equal(served.code, 0, served.stdout);
    assert.equal(handledBy(node, 'ADD', 'k3'), 'bvcnid');
    assert.notEqual(ipOf(served), ipOf(alone));

    const gc = await node.exec({ command: 'GC', stdin: { ...conf, 'cni.dev/valid-attachments': [{ containerID: 'k3', ifname: 'eth0' }] } });
    assert.equal(gc.code, 0, gc.stdout);
    assert.deepEqual(node.reservations(), [ipOf(served).split('/')[0]]);
    assert.equal((await node.hostVeths()).length, 1);
    assert.equal((await node.exec({ command: 'DEL', containerId: 'k3', netns: p3, ifname: 'eth0', stdin: conf })).code, 0);
    await noVethsLeft(node);
    assert.deepEqual(node.reservations(), []);
    await node.stopDaemon();
    assert.equal((await fastPathCheck(node.dataDir)).result, 'skip', 'a stopped bvcnid removes its socket');
  });
});
