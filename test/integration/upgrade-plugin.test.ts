// make test-upgrade, the plugin swap (issue 15): v0.1.0's plugin and this
// build's, each alone against the pinned maps and each served by the other's
// bvcnid, as a rollout that switches the plugin (install-cni) before the node's
// bvcnid does. And what v0.1.0 does by itself with ABI 2 maps (the reason for
// --prepare-downgrade): it refuses them, and the ABI 2 dataplane goes on.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { listTc } from '../../src/dataplane/tc-filters.js';
import { openDataplaneMaps } from '../../src/dataplane/index.js';
import { run } from '../../src/common/exec.js';
import { probeMany, startResponder, type Cluster, type SimNode, type SimPod } from '../../src/sim/index.js';
import type { FakeKubeApiServer } from '../../src/sim/kube-apiserver.js';
import { KubeCluster, REPO_ROOT } from '../support/kube-daemons.js';
import { releaseBuild, V0_1_0, type ReleaseBuild } from '../support/release-build.js';
import { waitFor } from '../support/kube-util.js';
import { abiOf, pinnedLayout, prepareDowngrade, roll, THIS_BUILD } from '../support/upgrade.js';

const NEW_PLUGIN = join(REPO_ROOT, 'dist/bin/bvcni');

describe('plugin swap: v0.1.0 and this build, alone and through either bvcnid (2 nodes)', { timeout: 600_000 }, () => {
  let rel: ReleaseBuild;
  let c: Cluster;
  let api: FakeKubeApiServer;
  const k = new KubeCluster({ prefix: 'upp', nodes: 2 });
  const daemons = k.daemons;
  const node = (i: number): SimNode => c.nodes[i]!;
  let remote: SimPod;

  before(async () => {
    rel = releaseBuild(V0_1_0, (l) => console.log(l));
    ({ c, api } = await k.start({ build: rel }));
    remote = await c.addPod(node(1), 'r', { via: 'plugin' });
    c.track(await startResponder(remote.path));
  });

  after(async () => {
    await k.teardown();
  });

  /** One CNI call with a given plugin executable and the node's installed conflist. */
  async function cni(bin: string, command: 'ADD' | 'DEL', pod: SimPod): Promise<{ code: number; out: string }> {
    const n = pod.node;
    const list = JSON.parse(readFileSync(join(n.confDir, '00-bvcni.conflist'), 'utf8')) as { cniVersion: string; name: string; plugins: Record<string, unknown>[] };
    const conf = JSON.stringify({ cniVersion: list.cniVersion, name: list.name, ...list.plugins[0] });
    const r = await run([bin], {
      netns: n.path,
      input: conf,
      allowFail: true,
      env: { PATH: process.env.PATH, CNI_COMMAND: command, CNI_CONTAINERID: pod.name, CNI_NETNS: pod.path, CNI_IFNAME: 'eth0', CNI_PATH: n.binDir },
    });
    return { code: r.code, out: (r.stdout + r.stderr).trim() };
  }

  /** A pod on node 0 through `bin`; it reaches the remote pod from its own address. */
  async function addAndCheck(bin: string, name: string): Promise<SimPod> {
    const pod = await c.addPod(node(0), name, { via: 'plugin', plugin: bin });
    const [tcp] = await probeMany(pod.path, [{ ip: remote.ip, proto: 'tcp' }], 3000);
    assert.ok(tcp!.ok && tcp!.peer === pod.ip, `${name} (${bin}) reaches ${remote.ip}: ${tcp!.ok ? tcp!.peer : tcp!.error}`);
    return pod;
  }

  async function delWith(bin: string, pod: SimPod): Promise<void> {
    const r = await cni(bin, 'DEL', pod);
    assert.equal(r.code, 0, `DEL of ${pod.name} with ${bin}: ${r.out}`);
    assert.equal(endpointIps().includes(pod.ip), false, `${pod.ip}'s endpoint entry removed`);
    assert.equal(reservedIps().includes(pod.ip), false, `${pod.ip} released`);
    await c.removePod(pod); // a second DEL (tolerated), and the namespace
  }

  function endpointIps(): string[] {
    using maps = openDataplaneMaps(node(0).pinDir);
    return [...maps.endpoints.keys()].map((k) => k.ip).sort();
  }

  /** IPAM reservations (one file per IP in <dataDir>/<network>/, the same store in both releases). */
  function reservedIps(): string[] {
    const dir = join(node(0).stateDir, 'bvcni');
    return existsSync(dir) ? readdirSync(dir).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)).sort() : [];
  }

  test("install-cni first: this build's plugin alone on v0.1.0's ABI 1 maps adds and deletes pods, then its bvcnid migrates them", async () => {
    const d = daemons[0]!;
    const old = await addAndCheck(rel.plugin, 'old0');
    await d.kill('SIGTERM'); // the rollout stopped the old bvcnid; the new one is not up yet
    assert.equal(abiOf(pinnedLayout(node(0).pinDir)), 1);
    const fresh = await addAndCheck(NEW_PLUGIN, 'new0');
    await delWith(NEW_PLUGIN, old);
    assert.equal(abiOf(pinnedLayout(node(0).pinDir)), 1, 'the plugin wrote in the layout it found');
    await roll(d, THIS_BUILD, { beforeStart: async () => {} });
    assert.equal(abiOf(pinnedLayout(node(0).pinDir)), 2);
    assert.ok(endpointIps().includes(fresh.ip), "the plugin's ABI 1 entry migrated");
    const [tcp] = await probeMany(fresh.path, [{ ip: remote.ip, proto: 'tcp' }], 3000);
    assert.ok(tcp!.ok && tcp!.peer === fresh.ip, 'the pod added before the migration still connects');
  });

  test("with this build's bvcnid running: v0.1.0's plugin is served by it (same socket protocol, same IPAM store), both ways", async () => {
    const a = await addAndCheck(rel.plugin, 'old1');
    await delWith(NEW_PLUGIN, a);
    const b = await addAndCheck(NEW_PLUGIN, 'new1');
    await delWith(rel.plugin, b);
    const d2 = await addAndCheck(rel.plugin, 'old2');
    await delWith(rel.plugin, d2);
  });

  test("v0.1.0's plugin alone on ABI 2 maps refuses clearly and corrupts nothing; v0.1.0's bvcnid refuses the maps and the ABI 2 dataplane goes on", async () => {
    const d = daemons[0]!;
    await d.kill('SIGTERM');
    const entries = endpointIps();
    const reserved = reservedIps();
    const pod = await c.addNetns('lone');
    const r = await cni(rel.plugin, 'ADD', { ...pod, node: node(0), podName: 'lone', ip: '', mac: '', ifname: 'eth0', hostIfname: '', via: 'plugin' });
    assert.notEqual(r.code, 0, `v0.1.0's plugin alone must not write an ABI 2 map: ${r.out}`);
    assert.match(r.out, /value 24 bytes, codecs expect 4 \/ 20/, 'a clear error: the layout it found and the one it knows');
    assert.deepEqual(endpointIps(), entries, 'the endpoint map is as it was');
    assert.deepEqual(reservedIps(), reserved, 'no IP leaked');
    assert.equal(abiOf(pinnedLayout(node(0).pinDir)), 2);

    // v0.1.0's bvcnid by itself (no --prepare-downgrade): libbpf will not reuse the maps.
    const progs = listTc({ ifname: node(0).uplink, netns: node(0).path }, 'ingress').map((f) => f.progId);
    d.build = rel;
    d.start();
    await waitFor('v0.1.0 refuses the ABI 2 maps', () => d.logged(/dataplane setup failed/).length > 0, 60_000);
    assert.notEqual((await d.http('/readyz')).status, 200, 'v0.1.0 not ready');
    assert.deepEqual(listTc({ ifname: node(0).uplink, netns: node(0).path }, 'ingress').map((f) => f.progId), progs, 'the ABI 2 programs stay');
    const survivor = node(0).pods.find((p) => p.podName === 'new0')!;
    const [tcp] = await probeMany(survivor.path, [{ ip: remote.ip, proto: 'tcp' }], 3000);
    assert.ok(tcp!.ok && tcp!.peer === survivor.ip, `and keep forwarding: ${tcp!.ok ? tcp!.peer : tcp!.error}`);

    // The way back: --prepare-downgrade, then v0.1.0 adopts.
    await roll(d, rel, {
      beforeStart: async () => {
        const p = await prepareDowngrade(c, d);
        assert.equal(p.code, 0, p.out);
      },
    });
    assert.equal(abiOf(pinnedLayout(node(0).pinDir)), 1);
    const back = await addAndCheck(rel.plugin, 'old3');
    await delWith(rel.plugin, back);
    // A pod this build's plugin added (its reservation has the ADD's record on a third line,
    // after the two v0.1.0 reads): v0.1.0 finds it and deletes it whole.
    await delWith(rel.plugin, survivor);
  });
});
