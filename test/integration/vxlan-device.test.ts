// The VXLAN device and the VNI on bvcnid's set-up path (src/dataplane/node.ts):
// a VNI outside 1..16777215 is refused before anything is created; a device
// under our name that is not ours (a fixed VNI) is recreated, as flannel does,
// and said so; another device holding the UDP port is refused by name, not
// deleted; adopting a dataplane set up with another VNI says it changed.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { run } from '../../src/common/exec.js';
import { ensureNodeDataplane, ensureNodeLinks, readDataplaneConfig, removeNodeDataplane, type NodeDataplaneConfig } from '../../src/dataplane/index.js';
import { getLink, socketIn, type NetlinkSocket } from '../../src/netlink/index.js';
import { createNetns, deleteNetnsSync, uniquePrefix } from '../../src/sim/netns.js';

const P = uniquePrefix('vxd');

describe('the VXLAN device and the VNI at set-up', { timeout: 120_000 }, () => {
  let ns = '';
  let s: NetlinkSocket;
  let cfg: NodeDataplaneConfig;
  const ip = (...args: string[]) => run(['ip', ...args], { netns: ns });

  before(async () => {
    ns = await createNetns(`${P}-node`);
    await ip('link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'ulpeer');
    await ip('link', 'set', 'eth0', 'up');
    await ip('link', 'set', 'ulpeer', 'up');
    await ip('addr', 'add', '192.0.2.10/24', 'dev', 'eth0');
    s = socketIn(ns);
    cfg = {
      pinDir: `/sys/fs/bpf/${P}`,
      netns: ns,
      bridge: `${P.slice(0, 10)}br`,
      vxlanDev: 'vxlan.1',
      vxlanPort: 8472,
      vni: 1,
      uplink: 'eth0',
      nodeIp: '192.0.2.10',
      podCidr: '10.244.1.0/24',
      clusterCidr: '10.244.0.0/16',
    };
  });

  after(async () => {
    try {
      await removeNodeDataplane(cfg);
    } catch {
      /* the namespace and the pins go below anyway */
    }
    s?.close();
    deleteNetnsSync(`${P}-node`);
    rmSync(cfg.pinDir, { recursive: true, force: true });
  });

  test('a VNI outside 1..16777215 is a clear error and creates nothing; the largest one is taken', () => {
    for (const vni of [0, -1, 16777216, 1.5, Number.NaN]) {
      assert.throws(() => ensureNodeLinks({ ...cfg, vni }, s), /VNI .* out of range: a VXLAN network identifier is 24 bits, 1\.\.16777215/, `VNI ${vni}`);
      assert.equal(getLink(s, cfg.vxlanDev), undefined, `nothing created for VNI ${vni}`);
      assert.equal(getLink(s, cfg.bridge), undefined, `no bridge for VNI ${vni}`);
    }
    const l = ensureNodeLinks({ ...cfg, vni: 16777215 }, s);
    assert.equal(l.vxlan.vxlan?.external, true);
    assert.deepEqual(l.notes, []);
  });

  test('a device under our name with a fixed VNI is recreated in external mode, as flannel recreates an incompatible device, and the note names its VNI', async () => {
    await ip('link', 'del', cfg.vxlanDev);
    await ip('link', 'add', cfg.vxlanDev, 'type', 'vxlan', 'id', '7', 'dstport', '8472');
    assert.equal(getLink(s, cfg.vxlanDev)?.vxlan?.vni, 7, 'the VNI is read back');
    const l = ensureNodeLinks(cfg, s);
    assert.equal(l.notes.length, 1);
    assert.match(l.notes[0]!, /vxlan\.1 existed as a VXLAN device with VNI 7 on UDP port 8472; recreated as an external/);
    const now = getLink(s, cfg.vxlanDev);
    assert.equal(now?.vxlan?.external, true);
    assert.equal(now?.vxlan?.vni, 0);
    assert.deepEqual(ensureNodeLinks(cfg, s).notes, [], 'our own device is adopted as it is');
  });

  test("another device up on the VXLAN port is refused by name and left alone; down, it is no obstacle", async () => {
    await ip('link', 'del', cfg.vxlanDev);
    await ip('link', 'add', 'flan.1', 'type', 'vxlan', 'id', '1', 'dstport', '8472');
    await ip('link', 'set', 'flan.1', 'up');
    assert.throws(() => ensureNodeLinks(cfg, s), /UDP port 8472 is taken by a VXLAN device with VNI 1 on UDP port 8472 "flan\.1".*--vxlan-port/);
    assert.equal(getLink(s, 'flan.1')?.up, true, 'not ours: not deleted');
    // The control: the same set-up passes once that device lets go of the port.
    await ip('link', 'set', 'flan.1', 'down');
    const l = ensureNodeLinks(cfg, s);
    assert.equal(l.vxlan.up, true);
    await ip('link', 'del', 'flan.1');
  });

  test('adopting a dataplane set up with another VNI switches the config map to the new one and says so', async () => {
    const first = await ensureNodeDataplane(cfg);
    first.close();
    assert.deepEqual(first.notes, []);
    assert.equal(readDataplaneConfig(cfg.pinDir)?.vni, 1);
    const again = await ensureNodeDataplane({ ...cfg, vni: 5 });
    again.close();
    assert.deepEqual(again.notes, ['VNI changed from 1 to 5: this node now reaches only nodes that use VNI 5 (every node needs the same --vni)']);
    assert.equal(readDataplaneConfig(cfg.pinDir)?.vni, 5);
    const same = await ensureNodeDataplane({ ...cfg, vni: 5 });
    same.close();
    assert.deepEqual(same.notes, []);
  });
});
