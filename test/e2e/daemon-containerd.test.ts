// bvcnid and install-cni in real containers (containerd + runc, on the node
// namespace of a simulated cluster), set up as deploy/bvcni.yaml sets them up:
// the runtime's default seccomp profile (what RuntimeDefault is), a read-only
// root, /proc/sys read-only as runc mounts it, only their volumes writable and
// only the capabilities the manifest lists (read from it). Where the emulation
// in test/integration/daemon-privileges.test.ts cannot go: the seccomp profile
// the runtime derives from those capabilities. Uses a containerd of its own
// (own socket and state), nothing global.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCluster, ping, uniquePrefix, type Cluster, type SimNode } from '../../src/sim/index.js';
import type { FakeKubeApiServer } from '../../src/sim/kube-apiserver.js';
import { BVCNID, DaemonProc, REPO_ROOT, nodeObject, startApiInUnderlay } from '../support/kube-daemons.js';
import { waitFor } from '../support/kube-util.js';
import { manifestContainer } from '../support/container.js';
import { PrivateContainerd, checkoutMounts, type CtrMount } from '../support/containerd.js';
import { NODE_PLUGIN_PROBE, nodePluginProbeArgs } from '../support/plugin-probe.js';

const installer = manifestContainer('install-cni');
const daemon = manifestContainer('bvcnid');
const CAP_BITS: Record<string, number> = { NET_ADMIN: 12, SYS_ADMIN: 21, PERFMON: 38, BPF: 39 };
const capMask = (caps: readonly string[]): string => caps.reduce((m, c) => m | (1n << BigInt(CAP_BITS[c]!)), 0n).toString(16);

describe('bvcnid in a real container: containerd, its default seccomp profile, the manifest\'s capabilities', {
  timeout: 300_000,
  skip: (!existsSync('/usr/bin/containerd') || !existsSync('/usr/bin/ctr')) && 'containerd not installed',
}, () => {
  let c: Cluster;
  let api: FakeKubeApiServer;
  let kubeconfig: string;
  let n0: SimNode;
  let peer: DaemonProc;
  let ctrd: PrivateContainerd;
  let work: string;
  let d0: DaemonProc;

  /** bvcnid run by `ctr run` in n0's namespace: SIGTERM reaches it through ctr's signal forwarding. */
  class ContainerDaemon extends DaemonProc {
    override args(): string[] {
      const argv = super.args();
      argv.splice(argv.indexOf('--cni-bin-dir'), 2); // the DaemonSet gives bvcnid none
      const mounts: CtrMount[] = [
        ...checkoutMounts(REPO_ROOT),
        { src: c.dir }, // the kubeconfig, read-only like the service account's token
        { src: n0.confDir, rw: true },
        { src: n0.stateDir, rw: true },
        { src: '/sys/fs/bpf', rw: true },
        { src: '/run/netns', slave: true },
      ];
      return ctrd.runArgv({ id: `${c.prefix}-bvcnid`, caps: daemon.caps, mounts, argv });
    }
  }

  before(async () => {
    if (!existsSync(BVCNID)) throw new Error(`${BVCNID} missing: run make build`);
    c = await createCluster({ prefix: uniquePrefix('bvq'), nodes: 2, dataplane: 'none' });
    n0 = c.nodes[0]!;
    ({ api, kubeconfig } = await startApiInUnderlay(c));
    for (const n of c.nodes) api.addNode(nodeObject(n));
    await c.exec(n0, ['sh', '-ec', manifestContainer('prepare-node').command[2]!]);
    peer = new DaemonProc(c, c.nodes[1]!, kubeconfig);
    peer.start();
    work = mkdtempSync(join(tmpdir(), `${c.prefix}-ctrd-`));
    ctrd = new PrivateContainerd(work, n0.path);
    await ctrd.start();
    d0 = new ContainerDaemon(c, n0, kubeconfig);
  });

  after(async () => {
    try {
      if (d0?.running) await d0.kill('SIGTERM');
      if (peer?.running) await peer.kill('SIGKILL');
      await ctrd?.stop();
      await api?.close();
    } finally {
      if (work) rmSync(work, { recursive: true, force: true });
      await c?.destroy();
    }
  });

  test('install-cni, with no capability, installs the plugin into its one writable mount', async () => {
    assert.deepEqual(installer.caps, []);
    const argv = [process.execPath, BVCNID, ...installer.args.map((a) => (a.startsWith('--cni-bin-dir=') ? `--cni-bin-dir=${n0.binDir}` : a))];
    const run = (mounts: CtrMount[], id: string) => c.exec(n0, ctrd.runArgv({ id, caps: installer.caps, mounts, argv }), { allowFail: true, timeoutMs: 60_000 });
    // Control: without the bin dir mounted writable, the read-only container cannot install.
    const denied = await run([...checkoutMounts(REPO_ROOT), { src: n0.binDir }], `${c.prefix}-inst0`);
    assert.equal(denied.code, 1, denied.stdout + denied.stderr);
    assert.match(denied.stdout, /EROFS|read-only file system/i);
    const r = await run([...checkoutMounts(REPO_ROOT), { src: n0.binDir, rw: true }], `${c.prefix}-inst1`);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /CNI plugin installed/);
    const v = await c.exec(n0, ['env', '-i', 'CNI_COMMAND=VERSION', join(n0.binDir, 'bvcni')], { input: '{"cniVersion":"1.0.0"}' });
    assert.match(v.stdout, /supportedVersions/);
    // The front answers VERSION alone: the installed Node plugin must start too.
    const viaNode = await c.exec(n0, ['env', '-i', ...nodePluginProbeArgs(), join(n0.binDir, 'bvcni')], { input: NODE_PLUGIN_PROBE.input, allowFail: true });
    assert.match(viaNode.stdout, NODE_PLUGIN_PROBE.answer, viaNode.stderr);
  });

  test('bvcnid, NET_ADMIN and SYS_ADMIN only, seccomp on: ready, serves ADD and DEL inside pod namespaces, traffic flows, a restart adopts', async () => {
    const installed = readdirSync(n0.binDir).sort();
    d0.start();
    await waitFor('bvcnid in its container ready', () => d0.ready(), 60_000).catch((e: Error) => {
      throw new Error(`${e.message}\n${JSON.stringify(d0.logs.slice(-8), null, 1)}`);
    });
    await waitFor('peer ready', () => peer.ready(), 30_000);
    // What the runtime gave it: the default seccomp filter, the manifest's capabilities, nothing more.
    const status = readFileSync(`/proc/${await ctrd.pid(`${c.prefix}-bvcnid`)}/status`, 'utf8');
    assert.match(status, /^Seccomp:\s+2$/m, 'a seccomp filter is installed');
    assert.equal(BigInt(`0x${/^CapEff:\s*([0-9a-f]+)$/m.exec(status)![1]}`).toString(16), capMask(daemon.caps));
    assert.equal(BigInt(`0x${/^CapBnd:\s*([0-9a-f]+)$/m.exec(status)![1]}`).toString(16), capMask(daemon.caps));

    const p0 = await c.addPod(n0, 'a', { via: 'plugin' });
    const p1 = await c.addPod(c.nodes[1]!, 'a', { via: 'plugin' });
    assert.ok((await ping(p0.path, p1.ip, { count: 2, timeoutS: 2 })).ok, 'n0 pod → n1 pod');
    const log = (): string[][] =>
      readFileSync(join(n0.stateDir, 'bvcni.log'), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, string>)
        .map((l) => [l.cmd!, l.via!]);
    // Served by bvcnid: it saw the pod's /run/netns entry (created after it started) and entered it.
    assert.deepEqual(log(), [['ADD', 'bvcnid']]);

    await d0.kill('SIGTERM');
    d0.start();
    await waitFor('bvcnid in its container ready again', () => d0.ready(), 60_000);
    assert.ok((await ping(p0.path, p1.ip, { count: 2, timeoutS: 2 })).ok, 'after the restart');
    assert.deepEqual(d0.logged(/dataplane setup failed/), []);
    await c.removePod(p0);
    assert.deepEqual(log(), [
      ['ADD', 'bvcnid'],
      ['DEL', 'bvcnid'],
    ]);
    assert.deepEqual(readdirSync(n0.binDir).sort(), installed, 'bvcnid installed nothing');
  });
});
