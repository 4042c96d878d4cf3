// Real runtimes drive the installed plugin: containerd (`ctr run --cni`) and
// podman (CNI backend), each with a busybox rootfs. Both runtimes' CNI calls
// are made from the process that runs them, so ctr and podman are run inside
// a node namespace of our own (with the real dataplane loaded): the bridge
// and host veths live there, never in the root namespace.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../src/common/exec.js';
import { PLUGIN, TestNode } from '../fixtures/cni/harness.js';
import { waitFor } from '../../src/common/wait.js';
import { createNetns, deleteNetnsSync } from '../../src/sim/netns.js';
import { RESPONDER_SOURCE } from '../../src/sim/responder.js';
import { probeMany } from '../../src/sim/probe.js';

const BUSYBOX = '/bin/busybox';

function rootfs(dir: string): string {
  mkdirSync(join(dir, 'bin'), { recursive: true });
  for (const d of ['proc', 'sys', 'dev', 'tmp', 'etc', 'run']) mkdirSync(join(dir, d), { recursive: true });
  cpSync(BUSYBOX, join(dir, 'bin/busybox'));
  for (const app of ['sh', 'ip', 'ping', 'sleep', 'cat', 'ls', 'echo']) symlinkSync('/bin/busybox', join(dir, 'bin', app));
  writeFileSync(join(dir, 'etc/hosts'), '127.0.0.1 localhost\n');
  return dir;
}

function conflist(node: TestNode, name: string): string {
  return JSON.stringify({
    cniVersion: '1.0.0',
    name,
    plugins: [{ type: 'bvcni', podcidr: node.podCidr, bridge: node.bridge, dataDir: node.dataDir, pinDir: node.pinDir, capabilities: { portMappings: true } }],
  });
}

/** containerd shims started for our containerd (their command line names our socket). */
function shimPids(work: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8');
      if (cmd.startsWith('/usr/bin/containerd-shim') && cmd.includes(`${work}/containerd.sock`)) out.push(Number(d));
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

/** A timer that does not keep the test process alive. */
function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

/** libcni caches results under /var/lib/cni/results: remove what the runtimes created there, if it was not there before. */
function restoreCniCache(): () => void {
  const created = ['/var/lib/cni', '/var/lib/cni/results'].filter((d) => !existsSync(d));
  return () => {
    for (const d of created.reverse()) {
      try {
        if (readdirSync(d).length === 0) rmSync(d, { recursive: true });
      } catch {
        /* not there */
      }
    }
  };
}

function exited(p: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => (p.exitCode !== null ? resolve(p.exitCode) : p.once('close', (c) => resolve(c))));
}

describe('containerd: ctr run --cni', { timeout: 240_000, skip: !existsSync('/usr/bin/containerd') && 'containerd not installed' }, () => {
  let node: TestNode;
  let work: string;
  let containerd: ChildProcess | undefined;
  const restore: (() => void)[] = [];
  const address = (): string => join(work, 'containerd.sock');
  const ctr = (args: string[], opts: { allowFail?: boolean; timeoutMs?: number } = {}) =>
    run(['ctr', '--address', address(), ...args], { netns: node.ns, ...opts });

  before(async () => {
    restore.push(restoreCniCache());
    node = await TestNode.create();
    work = mkdtempSync(join(tmpdir(), `${node.prefix}-ctrd-`));
    writeFileSync(
      join(work, 'config.toml'),
      `version = 2\nroot = "${work}/root"\nstate = "${work}/state"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[plugins."io.containerd.internal.v1.opt"]\n  path = "${work}/opt"\n[grpc]\n  address = "${address()}"\n`,
    );
    // ctr only reads /etc/cni/net.d (the lexically first file) and /opt/cni/bin, then
    // /usr/lib/cni: install there for this test only, and put back what was there.
    const confFile = `/etc/cni/net.d/00-${node.prefix}.conflist`;
    mkdirSync('/etc/cni/net.d', { recursive: true });
    const first = readdirSync('/etc/cni/net.d').sort()[0];
    assert.ok(!first || first > `00-${node.prefix}.conflist`, `a lexically earlier CNI config is present: ${first}`);
    writeFileSync(confFile, conflist(node, node.prefix));
    restore.push(() => rmSync(confFile, { force: true }));
    const hadOptCni = existsSync('/opt/cni');
    const hadBinDir = existsSync('/opt/cni/bin');
    mkdirSync('/opt/cni/bin', { recursive: true });
    for (const f of ['bvcni', 'bvcni.d']) {
      const dst = join('/opt/cni/bin', f);
      if (existsSync(dst)) {
        renameSync(dst, `${dst}.${node.prefix}-saved`);
        restore.push(() => {
          rmSync(dst, { recursive: true, force: true });
          renameSync(`${dst}.${node.prefix}-saved`, dst);
        });
      } else restore.push(() => rmSync(dst, { recursive: true, force: true }));
      cpSync(f === 'bvcni' ? PLUGIN : `${PLUGIN}.d`, dst, { recursive: true });
    }
    restore.push(() => {
      if (!hadBinDir) rmSync('/opt/cni/bin', { recursive: true, force: true });
      if (!hadOptCni) rmSync('/opt/cni', { recursive: true, force: true });
    });
    containerd = spawn('/usr/bin/nsenter', [`--net=${node.ns}`, '--', 'containerd', '--config', join(work, 'config.toml')], { stdio: 'ignore' });
    await waitFor('containerd socket', async () => existsSync(address()) && (await ctr(['version'], { allowFail: true })).code === 0, { timeoutMs: 30_000 });
  });

  after(async () => {
    const t0 = Date.now();
    if (containerd && containerd.exitCode === null) {
      containerd.kill('SIGTERM');
      await Promise.race([exited(containerd), delay(5000)]);
      if (containerd.exitCode === null) containerd.kill('SIGKILL');
    }
    console.log(`# containerd stopped after ${Date.now() - t0} ms`);
    // A shim whose task could not be deleted outlives containerd: end ours, by pid.
    for (const pid of shimPids(work)) process.kill(pid, 'SIGKILL');
    for (const r of restore.reverse()) r();
    if (work) rmSync(work, { recursive: true, force: true });
    await node?.destroy();
  });

  test('two containers get addresses from bvcni, reach each other and the gateway; removal releases', async () => {
    const r1 = rootfs(join(work, 'rootfs1'));
    const r2 = rootfs(join(work, 'rootfs2'));
    const c1 = `${node.prefix}-c1`;
    const c2 = `${node.prefix}-c2`;
    const long = spawn('/usr/bin/nsenter', [`--net=${node.ns}`, '--', 'ctr', '--address', address(), 'run', '--rm', '--cni', '--rootfs', r1, c1, '/bin/sleep', '120'], { stdio: 'ignore' });
    try {
      await waitFor('first container address', () => node.reservations(node.prefix).length === 1, { timeoutMs: 30_000 });
      const ip1 = node.reservations(node.prefix)[0]!;
      assert.match(ip1, /^10\.244\.1\.\d+$/);
      const out = await ctr(['run', '--rm', '--cni', '--rootfs', r2, c2, '/bin/sh', '-c', `ip -4 addr show eth0; ping -c1 -W2 10.244.1.1 && ping -c1 -W2 ${ip1} && echo REACHED`], { timeoutMs: 60_000 });
      assert.match(out.stdout, /inet 10\.244\.1\.\d+\/24/, 'second container has an address from the podCIDR');
      assert.doesNotMatch(out.stdout, new RegExp(`inet ${ip1.replace(/\./g, '\\.')}/`), 'a different one');
      assert.match(out.stdout, /REACHED/, 'reached the gateway and the other container');
      // ctr --rm ran DEL for the second container when it exited.
      assert.deepEqual(node.reservations(node.prefix), [ip1]);
      assert.ok((await node.endpoints()).includes(ip1));
    } finally {
      await ctr(['task', 'kill', '-s', 'SIGKILL', c1], { allowFail: true });
      await Promise.race([exited(long), delay(20_000)]);
    }
    assert.deepEqual(node.reservations(node.prefix), [], 'removing the container released its address');
    assert.deepEqual(await node.endpoints(), [], 'and its endpoint entry');
    assert.deepEqual(await node.hostVeths(), [], 'and its veth');
  });

  test('with bvcnid running, containerd\'s calls are served by it (CNI_NETNS=/proc/PID/ns/net) and the container works', async () => {
    await node.startDaemon();
    try {
      const r3 = rootfs(join(work, 'rootfs3'));
      const out = await ctr(['run', '--rm', '--cni', '--rootfs', r3, `${node.prefix}-c3`, '/bin/sh', '-c', 'ip -4 addr show eth0; ping -c1 -W2 10.244.1.1 && echo REACHED'], { timeoutMs: 60_000 });
      assert.match(out.stdout, /inet 10\.244\.1\.\d+\/24/);
      assert.match(out.stdout, /REACHED/);
      const log = readFileSync(join(node.dataDir, 'bvcni.log'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
      const mine = log.filter((l) => l.network === node.prefix && (l.msg === 'added' || l.msg === 'deleted'));
      assert.deepEqual(mine.slice(-2).map((l) => `${String(l.msg)} via ${String(l.via)}`), ['added via bvcnid', 'deleted via bvcnid']);
      assert.deepEqual(node.reservations(node.prefix), []);
      assert.deepEqual(await node.endpoints(), []);
      await waitFor('veth deleted after the answer', async () => (await node.hostVeths()).length === 0, { timeoutMs: 10_000 });
    } finally {
      await node.stopDaemon();
    }
  });
});

describe('podman (CNI backend)', { timeout: 240_000, skip: !existsSync('/usr/bin/podman') && 'podman not installed' }, () => {
  let node: TestNode;
  let work: string;
  let undoCache: (() => void) | undefined;
  let podman: (args: string[], opts?: { allowFail?: boolean }) => ReturnType<typeof run>;

  before(async () => {
    undoCache = restoreCniCache();
    node = await TestNode.create();
    work = mkdtempSync(join(tmpdir(), `${node.prefix}-podman-`));
    mkdirSync(join(work, 'net.d'));
    writeFileSync(join(work, 'net.d', `${node.prefix}.conflist`), conflist(node, node.prefix));
    // podman finds the plugin where the build put it: dist/bin (with bvcni.d beside it).
    writeFileSync(
      join(work, 'containers.conf'),
      [
        '[containers]',
        'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]',
        '[engine]',
        'cgroup_manager = "cgroupfs"',
        'events_logger = "file"',
        `events_logfile_path = "${work}/events.log"`,
        '[network]',
        'network_backend = "cni"',
        `cni_plugin_dirs = ["${join(PLUGIN, '..')}", "/usr/lib/cni"]`,
        `network_config_dir = "${work}/net.d"`,
        '',
      ].join('\n'),
    );
    const base = ['podman', '--root', join(work, 'root'), '--runroot', join(work, 'runroot'), '--storage-driver', 'vfs', '--tmpdir', join(work, 'tmp'), '--network-config-dir', join(work, 'net.d')];
    podman = (args, opts = {}) =>
      run([...base, ...args], { netns: node.ns, env: { ...process.env, CONTAINERS_CONF: join(work, 'containers.conf') }, timeoutMs: 120_000, ...opts });
  });

  after(async () => {
    if (podman) await podman(['rm', '-f', '-a'], { allowFail: true });
    undoCache?.();
    // vfs layers and run state are plain files under work.
    if (work) rmSync(work, { recursive: true, force: true });
    await node?.destroy();
  });

  test('two containers get addresses from bvcni, reach each other and the gateway; removal releases', async () => {
    const r1 = rootfs(join(work, 'rootfs1'));
    const r2 = rootfs(join(work, 'rootfs2'));
    const c1 = `${node.prefix}-p1`;
    await podman(['run', '-d', '--name', c1, '--network', node.prefix, '--rootfs', r1, '/bin/sleep', '120']);
    try {
      await waitFor('first container address', () => node.reservations(node.prefix).length === 1, { timeoutMs: 30_000 });
      const ip1 = node.reservations(node.prefix)[0]!;
      const out = await podman(['run', '--rm', '--network', node.prefix, '--rootfs', r2, '/bin/sh', '-c', `ip -4 addr show eth0; ping -c1 -W2 10.244.1.1 && ping -c1 -W2 ${ip1} && echo REACHED`]);
      assert.match(out.stdout, /inet 10\.244\.1\.\d+\/24/, 'second container has an address from the podCIDR');
      assert.doesNotMatch(out.stdout, new RegExp(`inet ${ip1.replace(/\./g, '\\.')}/`), 'a different one');
      assert.match(out.stdout, /REACHED/, 'reached the gateway and the other container');
      assert.deepEqual(node.reservations(node.prefix), [ip1], 'podman --rm ran DEL for the second container');
      assert.ok((await node.endpoints()).includes(ip1));
    } finally {
      await podman(['rm', '-f', '-t', '0', c1], { allowFail: true });
    }
    assert.deepEqual(node.reservations(node.prefix), [], 'removing the container released its address');
    assert.deepEqual(await node.endpoints(), [], 'and its endpoint entry');
    assert.deepEqual(await node.hostVeths(), [], 'and its veth');
  });

  test('podman run -p HOST:CONTAINER (TCP and UDP): an outside client reaches the server in the container, which sees its address; after removal nothing answers', async () => {
    // The outside client: the uplink's peer, moved into a namespace of its own as the node's gateway address.
    const client = `${node.prefix}-cl`;
    const clientNs = await createNetns(client);
    try {
      await run(['ip', 'link', 'set', 'ulpeer', 'netns', client], { netns: node.ns });
      await run(['ip', 'addr', 'add', '192.0.2.1/24', 'dev', 'ulpeer'], { netns: clientNs });
      await run(['ip', 'link', 'set', 'ulpeer', 'up'], { netns: clientNs });
      const r = rootfs(join(work, 'rootfs-hp'));
      const name = `${node.prefix}-hp`;
      // The server is the simulator's responder (it names the peer it saw), run by this Node, read-only from the host.
      await podman([
        'run', '-d', '--name', name, '--network', node.prefix,
        '-p', '18080:7000', '-p', '18053:7000/udp',
        '-v', `${process.execPath}:/node:ro`, '-v', '/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu:ro', '-v', '/lib64:/lib64:ro',
        '--rootfs', r, '/node', '-e', RESPONDER_SOURCE, '7000',
      ]);
      try {
        await waitFor('container address', () => node.reservations(node.prefix).length === 1, { timeoutMs: 30_000 });
        const ip = node.reservations(node.prefix)[0]!;
        let outcomes: Awaited<ReturnType<typeof probeMany>> = [];
        await waitFor(
          'the server answers through its hostPorts',
          async () => {
            outcomes = await probeMany(clientNs, [
              { ip: '192.0.2.10', port: 18080, proto: 'tcp' },
              { ip: '192.0.2.10', port: 18053, proto: 'udp' },
            ]);
            return outcomes.every((o) => o.ok);
          },
          { timeoutMs: 20_000 },
        ).catch(() => assert.fail(`probes: ${JSON.stringify(outcomes)}`));
        const [tcp, udp] = outcomes;
        assert.ok(tcp!.ok && udp!.ok);
        assert.equal(tcp!.peer, '192.0.2.1', 'TCP: the server sees the client address');
        assert.equal(tcp!.local, ip, 'TCP: answered by the container');
        assert.equal(udp!.peer, '192.0.2.1', 'UDP: the server sees the client address');
        const listed = await run([PLUGIN.replace(/bvcni$/, 'bvcnictl'), 'hostports', '--pin-dir', node.pinDir, '--json'], { allowFail: true });
        assert.match(listed.stdout, /18080/, `bvcnictl hostports: ${listed.stdout}${listed.stderr}`);
      } finally {
        await podman(['rm', '-f', '-t', '0', name], { allowFail: true });
      }
      const after = await probeMany(clientNs, [
        { ip: '192.0.2.10', port: 18080, proto: 'tcp' },
        { ip: '192.0.2.10', port: 18053, proto: 'udp' },
      ], 1500);
      assert.ok(after.every((o) => !o.ok), `after removal: ${JSON.stringify(after)}`);
      // Control: the client still reaches the node.
      assert.equal((await run(['ping', '-c1', '-W2', '192.0.2.10'], { netns: clientNs, allowFail: true })).code, 0);
      assert.deepEqual(node.reservations(node.prefix), []);
    } finally {
      deleteNetnsSync(client);
    }
  });
});
