// The daemon's start-up and restart order in-process, against the fake API
// server on loopback through the real client library, with a fake dataplane:
// what must happen before the conflist appears, and what must never happen to
// an adopted map while the API server is away.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pino } from 'pino';
import { KubeConfig } from '@kubernetes/client-node';
import { Daemon, type DaemonConfig } from '../../src/daemon/daemon.js';
import type { AttachedDataplane, DataplaneDriver, NodeDataplaneConfig } from '../../src/daemon/dataplane.js';
import { conditionPatcher, nodeApi, nodeGetter } from '../../src/kube/client.js';
import { DaemonMetrics } from '../../src/daemon/metrics.js';
import type { TunnelTable } from '../../src/daemon/reconcile.js';
import type { TunnelKey, TunnelValue } from '../../src/dataplane/abi.js';
import { FakeKubeApiServer } from '../../src/sim/kube-apiserver.js';
import { makeNode } from '../../src/sim/kube-node.js';
import { sleep, testDaemonConfig, waitFor } from '../support/kube-util.js';

class FakeTunnel implements TunnelTable {
  readonly m = new Map<string, [TunnelKey, TunnelValue]>();
  writes = 0;
  removes = 0;
  onFirstWrite?: () => void;
  entries(): Iterable<[TunnelKey, TunnelValue]> {
    return [...this.m.values()];
  }
  update(k: TunnelKey, v: TunnelValue): void {
    if (this.writes === 0) this.onFirstWrite?.();
    this.writes++;
    this.m.set(`${k.addr}/${k.prefixlen}`, [k, v]);
  }
  delete(k: TunnelKey): boolean {
    this.removes++;
    return this.m.delete(`${k.addr}/${k.prefixlen}`);
  }
  close(): void {}
  keys(): string[] {
    return [...this.m.keys()].sort();
  }
}

class FakeDataplane implements DataplaneDriver {
  readonly tunnel = new FakeTunnel();
  attached = false;
  ensures = 0;
  failNext = 0;
  /** Order of observable steps, to check the conflist comes last. */
  conflistExists: () => boolean = () => false;
  /** InternalIPs the daemon asked the uplink of, and the uplink it then set up on. */
  readonly uplinkAsked: string[] = [];
  lastUplink?: string;
  constructor(private readonly events: string[]) {}
  async findUplink(nodeIp: string): Promise<string> {
    this.uplinkAsked.push(nodeIp);
    return `nic-of-${nodeIp}`;
  }
  async ensure(cfg?: NodeDataplaneConfig): Promise<AttachedDataplane> {
    this.ensures++;
    this.lastUplink = cfg?.uplink;
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('EPERM: cannot create the bridge');
    }
    this.attached = true;
    this.events.push(this.conflistExists() ? 'conflist before dataplane!' : 'dataplane');
    return { mtu: 1450, tunnel: this.tunnel, natWalk: () => ({ done: true, step: () => 0 }), close: () => {} };
  }
  async remove(): Promise<void> {}
  ready(): boolean {
    return this.attached;
  }
  drops(): [] {
    return [];
  }
}

interface Harness {
  daemon: Daemon;
  dp: FakeDataplane;
  logs: Record<string, unknown>[];
  cfg: DaemonConfig;
  events: string[];
}

describe('bvcnid start-up order and restarts (in-process, fake dataplane)', () => {
  let srv: FakeKubeApiServer;
  let dir: string;
  const daemons: Daemon[] = [];
  before(async () => {
    srv = new FakeKubeApiServer();
    await srv.start();
    dir = mkdtempSync(join(tmpdir(), 'bvk-life-'));
    mkdirSync(join(dir, 'src/bvcni.d'), { recursive: true });
    writeFileSync(join(dir, 'src/bvcni'), '#!/bin/sh\n');
    writeFileSync(join(dir, 'src/bvcni.d/lib'), 'x');
  });
  after(async () => {
    for (const d of daemons) await d.stop();
    await srv.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function harness(name: string, dp?: FakeDataplane, override: Partial<DaemonConfig> = {}): Harness {
    const kc = new KubeConfig();
    kc.loadFromString(srv.kubeconfig());
    const logs: Record<string, unknown>[] = [];
    const events: string[] = [];
    const log = pino({ level: 'debug' }, { write: (s: string) => void logs.push(JSON.parse(s) as Record<string, unknown>) });
    const cfg = testDaemonConfig(dir, name, override);
    const fake = dp ?? new FakeDataplane(events);
    fake.conflistExists = () => existsSync(join(cfg.cniConfDir, '00-bvcni.conflist'));
    fake.tunnel.onFirstWrite = () => events.push(fake.conflistExists() ? 'conflist before the tunnel map!' : 'tunnel');
    const patcher = conditionPatcher(kc);
    const daemon = new Daemon(cfg, {
      log,
      api: nodeApi(kc),
      getNode: nodeGetter(kc),
      patcher: {
        setNetworkAvailable: async (n, m) => {
          events.push(existsSync(join(cfg.cniConfDir, '00-bvcni.conflist')) ? 'conflist' : 'condition before conflist!', 'condition');
          await patcher.setNetworkAvailable(n, m);
        },
      },
      dataplane: fake,
      metrics: new DaemonMetrics(),
    });
    daemons.push(daemon);
    return { daemon, dp: fake, logs, cfg, events };
  }

  const conflist = (h: Harness): string => join(h.cfg.cniConfDir, '00-bvcni.conflist');

  test('without --iface the uplink is the interface found for the Node\'s InternalIP; with it, --iface', async () => {
    srv.addNode(makeNode('life-u', { podCIDR: '10.244.7.0/24', internalIP: '192.0.2.17' }));
    const h = harness('life-u');
    h.cfg.iface = '';
    h.daemon.start();
    await waitFor('ready', () => h.daemon.ready().ready);
    assert.deepEqual(h.dp.uplinkAsked, ['192.0.2.17']);
    assert.equal(h.dp.lastUplink, 'nic-of-192.0.2.17');
    await h.daemon.stop();
    const named = harness('life-u');
    named.daemon.start();
    await waitFor('ready', () => named.daemon.ready().ready);
    assert.deepEqual(named.dp.uplinkAsked, [], '--iface given: nothing to find');
    assert.equal(named.dp.lastUplink, 'eth0');
    await named.daemon.stop();
    srv.deleteNode('life-u');
  });

  test('conflist only after the dataplane is attached and the tunnel map reflects a full list; then the Node condition', async () => {
    srv.addNode(makeNode('life-a', { podCIDR: '10.244.1.0/24', internalIP: '192.0.2.11' }));
    srv.addNode(makeNode('life-b', { podCIDR: '10.244.2.0/24', internalIP: '192.0.2.12' }));
    const h = harness('life-a');
    h.daemon.start();
    await waitFor('ready', () => h.daemon.ready().ready);
    await waitFor('condition', () => srv.getNode('life-a')?.status?.conditions?.some((c) => c.type === 'NetworkUnavailable' && c.status === 'False'));
    assert.deepEqual(h.events, ['dataplane', 'tunnel', 'conflist', 'condition']);
    assert.deepEqual(h.dp.tunnel.keys(), ['10.244.2.0/24', '192.0.2.12/32']);
    const conf = JSON.parse(readFileSync(conflist(h), 'utf8')) as { cniVersion: string; plugins: Record<string, unknown>[] };
    assert.equal(conf.cniVersion, '1.0.0');
    assert.deepEqual(conf.plugins[0], { type: 'bvcni', podcidr: '10.244.1.0/24', bridge: 'cni0', mtu: 1450, dataDir: h.cfg.stateDir, pinDir: h.cfg.pinDir, capabilities: { portMappings: true } });
    const installed = realpathSync(join(h.cfg.cniBinDir, 'bvcni'));
    assert.ok(existsSync(join(dirname(installed), 'bvcni.d/lib')), 'the support directory beside the resolved plugin');
    await h.daemon.stop();
  });

  test('without a CNI bin dir (the DaemonSet: its init container installs the plugin) nothing is installed, the conflist still written', async () => {
    srv.addNode(makeNode('life-n', { podCIDR: '10.244.8.0/24', internalIP: '192.0.2.18' }));
    const h = harness('life-n', undefined, { cniBinDir: '' });
    h.daemon.start();
    await waitFor('ready', () => h.daemon.ready().ready);
    assert.ok(existsSync(conflist(h)), 'conflist written');
    assert.ok(!existsSync(join(dir, 'life-n', 'bin')), 'no plugin directory created');
    assert.ok(h.logs.some((l) => l.msg === 'dataplane attached' && l.plugin === undefined));
    // Control: the same daemon given a bin dir installs there.
    await h.daemon.stop();
    const withBin = harness('life-n', undefined, { cniBinDir: join(dir, 'life-n', 'bin') });
    withBin.daemon.start();
    await waitFor('ready', () => withBin.daemon.ready().ready);
    assert.ok(existsSync(join(dir, 'life-n', 'bin', 'bvcni')), 'installed when asked to');
    await withBin.daemon.stop();
    srv.deleteNode('life-n');
  });

  test('restart while the API server is down: the adopted map and the conflist are left alone, not ready; resync applies only the difference', async () => {
    const events: string[] = [];
    const dp = new FakeDataplane(events);
    dp.attached = true; // programs and maps still pinned from the previous daemon
    // What a previous daemon left pinned: b is still right, c was deleted while nobody watched.
    dp.tunnel.update({ prefixlen: 24, addr: '10.244.2.0' }, { node_ip: '192.0.2.12', flags: 0 });
    dp.tunnel.update({ prefixlen: 32, addr: '192.0.2.12' }, { node_ip: '192.0.2.12', flags: 1 });
    dp.tunnel.update({ prefixlen: 24, addr: '10.244.3.0' }, { node_ip: '192.0.2.13', flags: 0 });
    dp.tunnel.writes = 0;
    const h = harness('life-a', dp);
    assert.ok(existsSync(conflist(h)), 'left by the previous daemon');
    await srv.stop();
    try {
      h.daemon.start();
      await waitFor('retries logged', () => h.logs.filter((l) => /cannot read this node's Node object/.test(String(l.msg))).length >= 2, 10_000);
      assert.equal(h.daemon.ready().ready, false);
      assert.equal(dp.tunnel.removes + dp.tunnel.writes, 0, 'nothing written while the API server is away');
      assert.equal(dp.tunnel.m.size, 3);
      assert.ok(existsSync(conflist(h)), 'pods keep being created through the still-loaded dataplane');
    } finally {
      await srv.start();
    }
    await waitFor('ready after the API server is back', () => h.daemon.ready().ready, 15_000);
    assert.deepEqual(dp.tunnel.keys(), ['10.244.2.0/24', '192.0.2.12/32']);
    assert.equal(dp.tunnel.writes, 0, 'entries that were right are not rewritten');
    assert.equal(dp.tunnel.removes, 1);
    await h.daemon.stop();
  });

  test('after a reboot (nothing pinned) a leftover conflist is removed until the dataplane is back', async () => {
    const h = harness('life-d');
    mkdirSync(h.cfg.cniConfDir, { recursive: true });
    writeFileSync(conflist(h), '{"stale":true}');
    await srv.stop();
    try {
      h.daemon.start();
      assert.ok(!existsSync(conflist(h)), 'stale conflist removed at start');
    } finally {
      await srv.start();
    }
    srv.addNode(makeNode('life-d', { podCIDR: '10.244.4.0/24', internalIP: '192.0.2.14' }));
    await waitFor('conflist back once ready', () => existsSync(conflist(h)) && h.daemon.ready().ready, 15_000);
    assert.match(readFileSync(conflist(h), 'utf8'), /10\.244\.4\.0\/24/);
    await h.daemon.stop();
  });

  test('a failing dataplane setup is logged and retried, never a crash; no conflist until it succeeds', async () => {
    srv.addNode(makeNode('life-c', { podCIDR: '10.244.3.0/24', internalIP: '192.0.2.13' }));
    const events: string[] = [];
    const dp = new FakeDataplane(events);
    dp.failNext = 2;
    const h = harness('life-c', dp);
    h.daemon.start();
    await waitFor('ready after retries', () => h.daemon.ready().ready, 15_000);
    assert.equal(dp.ensures, 3);
    assert.equal(h.logs.filter((l) => l.msg === 'dataplane setup failed; retrying').length, 2);
    assert.ok(existsSync(conflist(h)));
    await h.daemon.stop();
  });

  test('a Node update that changes nothing of the tunnel map (a kubelet heartbeat) costs no reconcile; a new InternalIP does', async () => {
    srv.addNode(makeNode('life-h', { podCIDR: '10.244.5.0/24', internalIP: '192.0.2.15' }));
    srv.addNode(makeNode('life-i', { podCIDR: '10.244.6.0/24', internalIP: '192.0.2.16' }));
    const h = harness('life-h');
    h.daemon.start();
    await waitFor('ready', () => h.daemon.ready().ready, 15_000);
    const before = h.daemon.reconciles;
    for (let beat = 0; beat < 5; beat++) {
      srv.modifyNode('life-i', (n) => {
        n.metadata!.labels = { ...n.metadata!.labels, heartbeat: String(beat) };
        n.status!.conditions = [{ type: 'Ready', status: 'True', lastHeartbeatTime: new Date(), reason: 'KubeletReady' }];
      });
      // Apart, so that no two of them could share a reconcile.
      await sleep(100);
    }
    srv.modifyNode('life-i', (n) => {
      n.status!.addresses = [{ type: 'InternalIP', address: '192.0.2.26' }];
    });
    await waitFor('the new InternalIP in the map', () => h.dp.tunnel.keys().includes('192.0.2.26/32'));
    assert.equal(h.daemon.reconciles - before, 1, 'only the InternalIP change reconciled');
    assert.equal(h.dp.tunnel.m.get('10.244.6.0/24')?.[1].node_ip, '192.0.2.26');
    await h.daemon.stop();
    srv.deleteNode('life-h');
    srv.deleteNode('life-i');
  });

  test('SIGTERM path (stop) is idempotent and leaves the conflist and the map in place', async () => {
    const h = harness('life-c');
    h.daemon.start();
    await waitFor('ready', () => h.daemon.ready().ready, 15_000);
    const before = h.dp.tunnel.keys();
    await h.daemon.stop();
    await h.daemon.stop();
    assert.ok(existsSync(conflist(h)));
    assert.deepEqual(h.dp.tunnel.keys(), before);
    assert.equal(h.daemon.live().live, false);
  });
});
