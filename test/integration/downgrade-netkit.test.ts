// `bvcnid --prepare-downgrade` on a node with netkit pods: v0.1.0 has no
// netkit and cannot serve them, so it refuses (exit 1) naming each one and
// converts nothing; with only veth pods the same command converts the maps.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { FEATURES, probeKernelFeatures } from '../../src/dataplane/features.js';
import { PLUGIN, TestNode } from '../fixtures/cni/harness.js';
import { BVCNID } from '../support/kube-daemons.js';
import { abiOf, pinnedLayout } from '../support/upgrade.js';

const probed = await probeKernelFeatures({ specs: FEATURES.filter((f) => f.id === 'netkit') });
const netkit = probed.features[0]!;
const skip =
  netkit.state === 'yes' || process.env.BVCNI_REQUIRE_NETKIT === '1'
    ? false
    : `needs netkit (Linux 6.7, CONFIG_NETKIT); kernel ${probed.kernel}: ${netkit.state}. Run it with make test-kernels KERNELS=6.12 WHAT=netkit`;

describe('bvcnid --prepare-downgrade with netkit pods', { skip, timeout: 180_000 }, () => {
  let node: TestNode;
  before(async () => {
    assert.ok(existsSync(PLUGIN) && existsSync(BVCNID), 'run make build first');
    node = await TestNode.create();
  });
  after(async () => {
    await node?.destroy();
  });

  function prepareDowngrade(): { code: number | null; out: string } {
    const r = spawnSync(
      '/usr/bin/nsenter',
      [`--net=${node.ns}`, '--', process.execPath, BVCNID, '--prepare-downgrade', '--pin-dir', node.pinDir, '--state-dir', node.dataDir, '--log-level', 'info'],
      { encoding: 'utf8' },
    );
    return { code: r.status, out: r.stdout + r.stderr };
  }

  async function add(containerId: string, netns: string, extra: Record<string, unknown> = {}): Promise<string> {
    const r = await node.exec({ command: 'ADD', containerId, netns, ifname: 'eth0', stdin: node.conf('1.0.0', extra) });
    assert.equal(r.code, 0, r.stdout);
    return (r.json!.ips as { address: string }[])[0]!.address.split('/')[0]!;
  }

  test('refused, naming each netkit pod (address, host device, container), with nothing converted; converted once only veth pods remain', async () => {
    const nkPod = await node.pod('dgnk');
    const vethPod = await node.pod('dgv');
    const nkIp = await add('dg-netkit', nkPod, { podDevice: 'netkit' });
    const vethIp = await add('dg-veth', vethPod);
    assert.equal(abiOf(pinnedLayout(node.pinDir)), 2);

    const refused = prepareDowngrade();
    assert.equal(refused.code, 1, refused.out);
    assert.match(refused.out, /cannot prepare the downgrade: v0\.1\.0 has no netkit and cannot serve this node's netkit pods/);
    assert.match(refused.out, new RegExp(`${nkIp.replace(/\./g, '\\.')} \\(nk[0-9a-f]{11}, container dg-netkit\\)`), 'the pod named');
    assert.doesNotMatch(refused.out.split('netkit pods:')[1] ?? '', new RegExp(`${vethIp.replace(/\./g, '\\.')} \\(`), 'the veth pod is not in the list');
    assert.equal(abiOf(pinnedLayout(node.pinDir)), 2, 'nothing converted');
    assert.deepEqual((await node.endpoints()).sort(), [nkIp, vethIp].sort(), 'both pods keep their entries');

    // The control: the same command, once the netkit pod is gone, converts the maps.
    const del = await node.exec({ command: 'DEL', containerId: 'dg-netkit', netns: nkPod, ifname: 'eth0', stdin: node.conf('1.0.0', { podDevice: 'netkit' }) });
    assert.equal(del.code, 0, del.stdout);
    const done = prepareDowngrade();
    assert.equal(done.code, 0, done.out);
    assert.equal(abiOf(pinnedLayout(node.pinDir)), 1, 'converted to ABI 1');
    assert.deepEqual(await node.endpoints(), [vethIp]);

    const delVeth = await node.exec({ command: 'DEL', containerId: 'dg-veth', netns: vethPod, ifname: 'eth0', stdin: node.conf('1.0.0') });
    assert.equal(delVeth.code, 0, delVeth.stdout);
    assert.deepEqual(node.reservations(), []);
  });
});
