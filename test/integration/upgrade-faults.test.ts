// make test-upgrade, the faults (issue 15): bvcnid SIGKILLed right after each
// step of a migration (both ways: v0.1.0 -> this build, and this build's
// --prepare-downgrade) is finished or rolled back by the next start, with
// traffic flowing and a TCP transfer across it all never reset; and a pinned
// map this build cannot convert is refused by name, the old dataplane left
// untouched and /readyz not ready.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { listTc } from '../../src/dataplane/tc-filters.js';
import { COMMIT_PIN, MapName, MIGRATION_STEPS, STAGING_DIR, type MigrationStep } from '../../src/dataplane/index.js';
import { run } from '../../src/common/exec.js';
import { createCluster, probeMany, startResponder, uniquePrefix, type Cluster, type SimNode, type SimPod } from '../../src/sim/index.js';
import type { FakeKubeApiServer } from '../../src/sim/kube-apiserver.js';
import { BVCNID, DaemonProc, nodeObject, REPO_ROOT, startApiInUnderlay } from '../support/kube-daemons.js';
import { releaseBuild, V0_1_0, type ReleaseBuild } from '../support/release-build.js';
import { waitFor } from '../support/kube-util.js';
import { abiOf, FlowEnd, pinnedLayout, prepareDowngrade, roll, THIS_BUILD } from '../support/upgrade.js';

const TCP_PORT = 7111;
const KILL_ENV = 'BVCNI_TEST_KILL_AT_MIGRATION_STEP';
/** Every step after which a kill leaves something to recover ('done' leaves nothing). */
const KILL_STEPS = MIGRATION_STEPS.filter((s) => s !== 'done');
const expectedRecovery = (s: MigrationStep): string => (s === 'staged' || s === 'copied' ? 'rolled-back' : 'rolled-forward');

describe('migration faults: SIGKILL at each step, an unmigratable map (2 nodes, from v0.1.0)', { timeout: 900_000 }, () => {
  let rel: ReleaseBuild;
  let c: Cluster;
  let api: FakeKubeApiServer;
  const daemons: DaemonProc[] = [];
  const pods: SimPod[] = [];
  const node = (i: number): SimNode => c.nodes[i]!;
  let tcpSink: FlowEnd;
  let tcpSource: FlowEnd;

  before(async () => {
    if (!existsSync(BVCNID)) throw new Error(`${BVCNID} missing: run make build`);
    rel = releaseBuild(V0_1_0, (l) => console.log(l));
    c = await createCluster({ prefix: uniquePrefix('upf'), nodes: 2, dataplane: 'none' });
    let kubeconfig: string;
    ({ api, kubeconfig } = await startApiInUnderlay(c));
    for (let i = 0; i < 2; i++) {
      api.addNode(nodeObject(node(i)));
      const d = new DaemonProc(c, node(i), kubeconfig);
      d.build = rel;
      daemons.push(d);
      d.start();
    }
    for (const d of daemons) await waitFor(`${d.node.name} ready on v0.1.0`, () => d.ready(), 60_000);
    for (let i = 0; i < 2; i++) pods.push(await c.addPod(node(i), 'a', { via: 'plugin' }));
    for (const p of pods) c.track(await startResponder(p.path));
    // One transfer from node 1's pod to node 0's across every kill and recovery below.
    tcpSink = new FlowEnd(c, pods[0]!, 'tcp-sink', [TCP_PORT]);
    await tcpSink.ready();
    tcpSource = new FlowEnd(c, pods[1]!, 'tcp-source', [pods[0]!.ip, TCP_PORT, 1_000_000]);
    await tcpSource.ready();
  });

  after(async () => {
    try {
      for (const d of daemons) if (d.running) await d.kill('SIGKILL');
      await api?.close();
    } finally {
      await c?.destroy();
    }
  });

  async function allPairs(when: string): Promise<void> {
    for (const src of pods) {
      const targets = pods.filter((p) => p !== src).flatMap((p) => [{ ip: p.ip, proto: 'tcp' as const }, { ip: p.ip, proto: 'udp' as const }]);
      const out = await probeMany(src.path, targets, 3000);
      out.forEach((o, i) => assert.ok(o.ok && o.peer === src.ip, `${when}: ${src.name} -> ${targets[i]!.ip}/${targets[i]!.proto}: ${o.ok ? o.peer : o.error}`));
    }
  }

  /** The programs attached at the node's uplink and VXLAN device, and on its first pod's veth. */
  function attached(n: SimNode): number[] {
    const pod = pods.find((p) => p.node === n)!;
    return [
      ...listTc({ ifname: n.uplink, netns: n.path }, 'ingress'),
      ...listTc({ ifname: n.vxlanDev, netns: n.path }, 'ingress'),
      ...listTc({ ifname: n.vxlanDev, netns: n.path }, 'egress'),
      ...listTc({ ifname: pod.hostIfname, netns: n.path }, 'ingress'),
    ].map((f) => f.progId);
  }

  for (const step of KILL_STEPS) {
    test(`killed after '${step}' on the way up, then after '${step}' on the way down: each next start recovers (${expectedRecovery(step)})`, async () => {
      const d = daemons[0]!;
      const n = d.node;
      assert.equal(abiOf(pinnedLayout(n.pinDir)), 1, 'starts from v0.1.0');

      // Up: this build, killed by itself right after the step.
      await d.kill('SIGTERM');
      d.build = THIS_BUILD;
      d.env = { [KILL_ENV]: step };
      d.start();
      const died = await new Promise<NodeJS.Signals | null>((r) => d.child!.once('exit', (_code, sig) => r(sig)));
      assert.equal(died, 'SIGKILL', `bvcnid reached '${step}' and was killed there`);
      assert.ok(existsSync(join(n.pinDir, STAGING_DIR)), 'the kill left a migration under way');
      assert.equal(existsSync(join(n.pinDir, STAGING_DIR, COMMIT_PIN)), expectedRecovery(step) === 'rolled-forward', 'committed or not, as the step says');
      await allPairs(`killed after '${step}'`);
      if (step === 'committed') {
        // bvcnid down with the copy done: a pod added now by this build's plugin alone lands in
        // the old map only (under the old pod program); the merge after the swap must carry it.
        const mid = await c.addPod(n, 'mid', { via: 'plugin', plugin: join(REPO_ROOT, 'dist/bin/bvcni') });
        c.track(await startResponder(mid.path));
        pods.push(mid);
        await allPairs('a pod added while the migration waits to roll forward');
      }
      d.env = {};
      const before = d.logs.length;
      d.start();
      await waitFor(`${n.name} ready after the kill at '${step}'`, () => d.ready(), 60_000);
      const l = pinnedLayout(n.pinDir);
      assert.equal(abiOf(l), 2, `fully on ABI 2: ${JSON.stringify(l)}`);
      assert.equal(l.staging, false);
      // Its log line may trail /readyz through the pipe.
      const mig = await waitFor('the migration logged', () => d.logs.slice(before).find((x) => /migrated to this release's layouts/.test(String(x.msg))), 5000);
      assert.equal(mig?.recovered, expectedRecovery(step), `the start after the kill ${expectedRecovery(step)}: ${JSON.stringify(mig)}`);
      await allPairs(`recovered from '${step}'`);

      // Down: --prepare-downgrade killed at the same step, run again, then v0.1.0.
      await d.kill('SIGTERM');
      const killed = await prepareDowngrade(c, d, { [KILL_ENV]: step });
      assert.notEqual(killed.code, 0, `--prepare-downgrade killed after '${step}'`);
      assert.ok(existsSync(join(n.pinDir, STAGING_DIR)));
      await allPairs(`--prepare-downgrade killed after '${step}'`);
      await roll(d, rel, {
        beforeStart: async () => {
          const again = await prepareDowngrade(c, d);
          assert.equal(again.code, 0, again.out);
          assert.match(again.out, new RegExp(`"recovered":"${expectedRecovery(step)}"`));
        },
      });
      assert.equal(abiOf(pinnedLayout(n.pinDir)), 1, 'fully back on ABI 1');
      assert.equal(d.logged(/dataplane setup failed/).length, 0, 'v0.1.0 adopted the maps');
      await allPairs(`back on v0.1.0 after '${step}'`);
    });
  }

  test('a pinned map with no known conversion: refused by name, the v0.1.0 dataplane untouched, /readyz not ready', async () => {
    const d = daemons[0]!;
    const n = d.node;
    await d.kill('SIGTERM');
    const progs = attached(n);
    const layout = pinnedLayout(n.pinDir);
    assert.equal(abiOf(layout), 1);
    // The NAT map's pin replaced by one with another key size (v0.1.0's programs keep theirs: they hold it).
    const nat = join(n.pinDir, MapName.nat);
    unlinkSync(nat);
    await run(['bpftool', 'map', 'create', nat, 'type', 'lru_hash', 'key', '12', 'value', '24', 'entries', '1024', 'name', 'bvcni_nat']);
    d.build = THIS_BUILD;
    d.start();
    await waitFor('the refusal logged', () => d.logged(/dataplane setup failed/).length > 0, 60_000);
    const err = String(d.logged(/dataplane setup failed/)[0]!.err);
    assert.match(err, /cannot migrate pinned map bvcni_nat: .*key 12 B.*key 16 B.*no conversion known for a key of another size/);
    assert.equal((await d.http('/readyz')).status, 503, 'not ready');
    assert.deepEqual(attached(n), progs, "v0.1.0's programs still attached, unchanged");
    const now = pinnedLayout(n.pinDir);
    assert.deepEqual({ ...now.maps, [MapName.nat]: undefined }, { ...layout.maps, [MapName.nat]: undefined }, 'every other map as it was');
    assert.equal(now.staging, false, 'nothing staged');
    await allPairs('after the refusal');
  });

  test('the transfer across every kill, recovery and refusal was never reset and lost nothing', async () => {
    const src = (await tcpSource.finish()) as { sent: number; error: string | null };
    const sink = (await tcpSink.finish()) as { received: number; error: string | null };
    assert.equal(src.error, null);
    assert.equal(sink.error, null);
    assert.ok(src.sent > 0 && sink.received === src.sent, `sent ${src.sent}, received ${sink.received}`);
  });
});
