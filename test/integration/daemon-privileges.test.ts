// bvcnid and the plugin's installer with exactly the privileges deploy/bvcni.yaml
// gives them (read from it): capabilities, read-only root, read-only /proc/sys,
// no_new_privs, only their read-write volumes writable (test/support/container.ts).
// The manifest's set is enough for set-up, a CNI ADD and DEL that bvcnid serves
// (it enters the pod's namespace), traffic, and a restart that adopts the pinned
// programs; each capability taken away fails the way the manifest says.
// Node n1 runs an ordinary bvcnid: the peer for cross-node traffic.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../src/common/exec.js';
import { createCluster, ping, uniquePrefix, type Cluster, type SimNode } from '../../src/sim/index.js';
import type { FakeKubeApiServer } from '../../src/sim/kube-apiserver.js';
import { BVCNID, DaemonProc, nodeObject, startApiInUnderlay } from '../support/kube-daemons.js';
import { waitFor } from '../support/kube-util.js';
import { inContainer, manifestContainer, securityOf, MANIFEST, type ContainerSecurity } from '../support/container.js';
import { NODE_PLUGIN_PROBE, nodePluginProbeArgs } from '../support/plugin-probe.js';

const CAP_BITS: Record<string, number> = { NET_ADMIN: 12, SYS_ADMIN: 21, PERFMON: 38, BPF: 39 };
const capMask = (caps: readonly string[]): bigint =>
  caps.reduce((m, c) => {
    const bit = CAP_BITS[c];
    if (bit === undefined) throw new Error(`unknown capability ${c}`);
    return m | (1n << BigInt(bit));
  }, 0n);

const prepare = manifestContainer('prepare-node');
const installer = manifestContainer('install-cni');
const daemon = manifestContainer('bvcnid');

/** bvcnid on a simulated node as the DaemonSet's container runs it, with a capability set to try. */
class ContainedDaemon extends DaemonProc {
  caps: readonly string[] = daemon.caps;
  override args(): string[] {
    const argv = super.args();
    // The DaemonSet gives bvcnid no bin dir (its init container installs the plugin).
    if (!daemon.args.some((a) => a.startsWith('--cni-bin-dir'))) argv.splice(argv.indexOf('--cni-bin-dir'), 2);
    const sec = securityOf(daemon, { '/etc/cni/net.d': this.node.confDir, '/var/lib/cni/bvcni': this.node.stateDir });
    return inContainer({ ...sec, caps: this.caps }, argv);
  }
}

const setupFailures = (d: DaemonProc, err: RegExp): Record<string, unknown>[] => d.logged(/dataplane setup failed/, (l) => err.test(String(l.err)));

describe('bvcnid with only what deploy/bvcni.yaml gives it', { timeout: 300_000 }, () => {
  let c: Cluster;
  let api: FakeKubeApiServer;
  let kubeconfig: string;
  let n0: SimNode;
  let d0: ContainedDaemon;
  let peer: DaemonProc;

  before(async () => {
    if (!existsSync(BVCNID)) throw new Error(`${BVCNID} missing: run make build`);
    c = await createCluster({ prefix: uniquePrefix('bvp'), nodes: 2, dataplane: 'none' });
    n0 = c.nodes[0]!;
    ({ api, kubeconfig } = await startApiInUnderlay(c));
    for (const n of c.nodes) api.addNode(nodeObject(n));
    // prepare-node is privileged: its script runs as is, in n0's namespace.
    assert.deepEqual(prepare.command.slice(0, 2), ['/bin/sh', '-ec']);
    assert.ok(prepare.privileged);
    await c.exec(n0, ['sh', '-ec', prepare.command[2]!]);
    peer = new DaemonProc(c, c.nodes[1]!, kubeconfig);
    peer.start();
    d0 = new ContainedDaemon(c, n0, kubeconfig);
  });

  after(async () => {
    try {
      for (const d of [d0, peer]) if (d?.running) await d.kill('SIGKILL');
      await api?.close();
    } finally {
      await c?.destroy();
    }
  });

  const installArgv = (sec: ContainerSecurity): string[] =>
    inContainer(sec, [process.execPath, BVCNID, ...installer.args.map((a) => (a.startsWith('--cni-bin-dir=') ? `--cni-bin-dir=${n0.binDir}` : a))]);

  test('install-cni as the manifest runs it (no capability, no_new_privs, read-only root) installs the plugin into its one writable mount', async () => {
    const sec = securityOf(installer, { '/opt/cni/bin': n0.binDir });
    assert.deepEqual(sec.caps, []);
    assert.ok(sec.noNewPrivs && sec.readOnlyRootFilesystem);
    // Control: the emulated container really is read-only outside its volumes.
    const denied = await c.exec(n0, installArgv({ ...sec, writable: [] }), { allowFail: true });
    assert.equal(denied.code, 1, denied.stdout + denied.stderr);
    assert.match(denied.stdout, /EROFS|read-only file system/i);

    const r = await c.exec(n0, installArgv(sec), { allowFail: true });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const v = await c.exec(n0, ['env', '-i', 'CNI_COMMAND=VERSION', join(n0.binDir, 'bvcni')], { input: '{"cniVersion":"1.0.0"}' });
    assert.match(v.stdout, /supportedVersions/);
    // The front answers VERSION alone: the installed Node plugin must start too.
    const viaNode = await c.exec(n0, ['env', '-i', ...nodePluginProbeArgs(), join(n0.binDir, 'bvcni')], { input: NODE_PLUGIN_PROBE.input, allowFail: true });
    assert.match(viaNode.stdout, NODE_PLUGIN_PROBE.answer, viaNode.stderr);
  });

  test("bvcnid with exactly the manifest's capabilities: ready, serves ADD and DEL inside pod namespaces, traffic flows, a restart adopts", async () => {
    const installed = readdirSync(n0.binDir).sort();
    d0.start();
    await waitFor('bvcnid on n0 ready', () => d0.ready(), 30_000);
    await waitFor('peer ready', () => peer.ready(), 30_000);
    // The emulation holds: the process has the manifest's capabilities and nothing else.
    const status = readFileSync(`/proc/${d0.child!.pid}/status`, 'utf8');
    const eff = BigInt(`0x${/^CapEff:\s*([0-9a-f]+)$/m.exec(status)![1]}`);
    assert.equal(eff.toString(16), capMask(daemon.caps).toString(16), 'effective capabilities are the manifest set');
    assert.ok(existsSync(join(n0.confDir, '00-bvcni.conflist')));
    // The VXLAN device has no IPv6 address (addrgenmode none; disable_ipv6 too where /proc/sys lets it).
    const v6 = await run(['ip', '-6', '-o', 'addr', 'show', 'dev', n0.vxlanDev], { netns: n0.path });
    assert.equal(v6.stdout.trim(), '', `no IPv6 address on ${n0.vxlanDev}`);

    const p0 = await c.addPod(n0, 'a', { via: 'plugin' });
    const p1 = await c.addPod(c.nodes[1]!, 'a', { via: 'plugin' });
    assert.ok((await ping(p0.path, p1.ip, { count: 2, timeoutS: 2 })).ok, 'n0 pod → n1 pod');
    assert.ok((await ping(p1.path, p0.ip, { count: 2, timeoutS: 2 })).ok, 'n1 pod → n0 pod');
    const log = (): Record<string, unknown>[] =>
      readFileSync(join(n0.stateDir, 'bvcni.log'), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(
      log().map((l) => [l.cmd, l.via, l.msg]),
      [['ADD', 'bvcnid', 'added']],
      'bvcnid served the ADD (it entered the pod namespace), the plugin did not do it alone',
    );

    await d0.kill('SIGTERM');
    d0.start();
    await waitFor('bvcnid on n0 ready again', () => d0.ready(), 30_000);
    assert.ok((await ping(p0.path, p1.ip, { count: 2, timeoutS: 2 })).ok, 'after the restart');
    assert.deepEqual(d0.logged(/dataplane setup failed/), []);

    await c.removePod(p0);
    assert.deepEqual(
      log().map((l) => [l.cmd, l.via]),
      [
        ['ADD', 'bvcnid'],
        ['DEL', 'bvcnid'],
      ],
    );
    assert.deepEqual(readdirSync(n0.binDir).sort(), installed, 'bvcnid installed nothing');
    await d0.kill('SIGTERM');
  });

  test('without NET_ADMIN: every netlink change is refused, set-up never finishes', async () => {
    d0.caps = daemon.caps.filter((x) => x !== 'NET_ADMIN');
    d0.logs.length = 0;
    d0.start();
    await waitFor('set-up fails on netlink', () => setupFailures(d0, /(create|set) (bridge|vxlan|link) .*: EPERM/).length > 0, 30_000);
    assert.equal(await d0.ready(), false);
    await d0.kill('SIGTERM');
  });

  test('without SYS_ADMIN (NET_ADMIN alone): every bpf() call is refused, set-up never finishes', async () => {
    d0.caps = daemon.caps.filter((x) => x !== 'SYS_ADMIN');
    d0.logs.length = 0;
    d0.start();
    await waitFor('set-up fails on bpf()', () => setupFailures(d0, /load \S+bpf_pod\.o: EPERM/).length > 0, 30_000);
    assert.equal(await d0.ready(), false);
    await d0.kill('SIGTERM');
  });

  test("SYS_ADMIN is for setns: with BPF and PERFMON in its place bvcnid sets up and adopts, but cannot enter a pod's namespace (ADD fails, code 104 EPERM)", async () => {
    d0.caps = [...daemon.caps.filter((x) => x !== 'SYS_ADMIN'), 'BPF', 'PERFMON'];
    d0.logs.length = 0;
    d0.start();
    await waitFor('bvcnid on n0 ready', () => d0.ready(), 30_000);
    await assert.rejects(c.addPod(n0, 'b', { via: 'plugin' }), /"code":104.*enter network namespace .*EPERM/);
    await d0.kill('SIGTERM');
  });

  test('and PERFMON, in that alternative set, is what gets bpf_pod past the verifier', async () => {
    d0.caps = [...daemon.caps.filter((x) => x !== 'SYS_ADMIN'), 'BPF'];
    d0.logs.length = 0;
    d0.start();
    // EACCES from the verifier. Its reason ("… prohibited for !root") is at the end of a log that can
    // outgrow libbpf's buffer (the no-conntrack build's does), so only the rejection itself is asserted.
    // Or E2BIG: without PERFMON the verifier also walks the speculative paths, and with the hostPort
    // hook in bpf_pod that walk reaches its complexity limit before the !root rejection.
    await waitFor('the verifier refuses bpf_pod', () => setupFailures(d0, /(EACCES|E2BIG) \(program pod_from_container rejected by the verifier/).length > 0, 30_000);
    assert.equal(await d0.ready(), false);
    await d0.kill('SIGTERM');
  });

  test('the manifest documents each failure found here', () => {
    const text = readFileSync(MANIFEST, 'utf8');
    for (const quote of ['set link ...: EPERM', 'code 104', 'load bpf_pod.o: EPERM', 'prohibited for !root']) assert.ok(text.includes(quote), quote);
  });
});
