// bvcnid's plugin install: versions side by side, one atomic switch, the real
// plugin finding its support directory through the symlink.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { installPlugin, removeInstalled } from '../../src/kube/install.js';
import { NODE_PLUGIN_PROBE, nodePluginProbeArgs } from '../support/plugin-probe.js';

const root = mkdtempSync(join(tmpdir(), 'bvk-install-'));
after(() => rmSync(root, { recursive: true, force: true }));

function build(name: string, body: string): string {
  const dir = join(root, name);
  mkdirSync(join(dir, 'bvcni.d'), { recursive: true });
  writeFileSync(join(dir, 'bvcni'), `#!/bin/sh\necho ${body}\n`, { mode: 0o755 });
  writeFileSync(join(dir, 'bvcni.d', 'lib'), body);
  return join(dir, 'bvcni');
}

const versions = (bin: string) => readdirSync(bin).filter((f) => f.startsWith('.bvcni-')).sort();

test('each version is installed whole beside the others and switched by one symlink', () => {
  const bin = join(root, 'opt-cni-bin');
  mkdirSync(bin);
  // An older layout's plain files are replaced.
  writeFileSync(join(bin, 'bvcni'), 'old');
  mkdirSync(join(bin, 'bvcni.d'));

  const v1 = installPlugin(build('v1', 'one'), bin);
  assert.ok(v1.changed);
  assert.equal(readlinkSync(join(bin, 'bvcni')), `${v1.version}/bvcni`);
  assert.equal(spawnSync(join(bin, 'bvcni'), { encoding: 'utf8' }).stdout.trim(), 'one');
  assert.ok(existsSync(join(bin, v1.version, 'bvcni.d', 'lib')));
  assert.ok(!existsSync(join(bin, 'bvcni.d')), 'the old layout directory is gone');

  assert.equal(installPlugin(join(root, 'v1', 'bvcni'), bin).changed, false, 'same files: nothing to do');

  const v2src = build('v2', 'two');
  utimesSync(v2src, new Date(), new Date(Date.now() + 5000));
  const v2 = installPlugin(v2src, bin);
  assert.ok(v2.changed && v2.version !== v1.version);
  assert.equal(spawnSync(join(bin, 'bvcni'), { encoding: 'utf8' }).stdout.trim(), 'two');
  assert.deepEqual(versions(bin), [v1.version, v2.version].sort(), 'the previous version stays for calls in flight');

  const v3src = build('v3', 'three');
  utimesSync(v3src, new Date(), new Date(Date.now() + 10000));
  const v3 = installPlugin(v3src, bin);
  assert.deepEqual(versions(bin), [v2.version, v3.version].sort(), 'older versions are removed');

  // Uninstall removes everything, a dangling link included.
  rmSync(join(bin, v3.version), { recursive: true }); // leaves `bvcni` dangling
  const removed = removeInstalled(join(root, 'conf'), bin);
  assert.ok(removed.includes(join(bin, 'bvcni')), 'the dangling link is removed');
  assert.deepEqual(readdirSync(bin), []);
});

test('bvcnid --install-cni (the init container) installs the plugin beside it, exits 0, idempotent; a missing plugin is a clear error', () => {
  const bin = join(root, 'init-bin');
  const bvcnid = (...args: string[]) => spawnSync(process.execPath, ['dist/bin/bvcnid', '--install-cni', ...args], { encoding: 'utf8', timeout: 30_000 });
  const first = bvcnid('--cni-bin-dir', bin);
  assert.equal(first.status, 0, first.stdout + first.stderr);
  assert.match(first.stdout, /"msg":"CNI plugin installed"/);
  assert.match(readlinkSync(join(bin, 'bvcni')), /^\.bvcni-[0-9a-f]{12}\/bvcni$/);
  const version = spawnSync('env', ['-i', 'CNI_COMMAND=VERSION', join(bin, 'bvcni')], { input: '{"cniVersion":"1.0.0"}', encoding: 'utf8', timeout: 30_000 });
  assert.equal(version.status, 0, version.stdout + version.stderr);
  assert.match(version.stdout, /supportedVersions/);
  // The front answers VERSION alone: the Node plugin it installed beside it must start too.
  const viaNode = spawnSync('env', ['-i', ...nodePluginProbeArgs(), join(bin, 'bvcni')], { input: NODE_PLUGIN_PROBE.input, encoding: 'utf8', timeout: 30_000 });
  assert.match(viaNode.stdout, NODE_PLUGIN_PROBE.answer, viaNode.stderr);
  // Nothing else: no conflist, no state (it runs with no capability and a read-only root).
  assert.deepEqual(readdirSync(bin).filter((f) => !f.startsWith('.bvcni-')), ['bvcni']);

  const again = bvcnid('--cni-bin-dir', bin);
  assert.equal(again.status, 0);
  assert.match(again.stdout, /"msg":"CNI plugin already installed"/);
  assert.equal(versions(bin).length, 1);

  const missing = bvcnid('--cni-bin-dir', join(root, 'other-bin'), '--plugin', join(root, 'no-such-plugin'));
  assert.equal(missing.status, 1);
  assert.match(missing.stdout, /"msg":"cannot install the CNI plugin"/);
  assert.match(missing.stdout, /no-such-plugin does not exist/);
});

test('an install is flushed to disk before it is named: every copied file and both directories are fsynced before their rename', { skip: !existsSync('/usr/bin/strace') && 'no strace' }, () => {
  const bin = join(root, 'fsync-bin');
  const r = spawnSync('strace', ['-f', '-e', 'trace=openat,fsync,rename,renameat,renameat2,symlink,symlinkat', '-o', join(root, 'trace'), process.execPath, 'dist/bin/bvcnid', '--install-cni', '--cni-bin-dir', bin], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(r.status, 0, r.stderr);
  const trace = spawnSync('cat', [join(root, 'trace')], { encoding: 'utf8' }).stdout.split('\n');
  // fd number → path, from each openat; then the order of fsyncs and renames.
  const events: string[] = [];
  const fds = new Map<string, string>();
  for (const line of trace) {
    const open = /openat\(AT_FDCWD, "([^"]+)".*\) = (\d+)$/.exec(line);
    if (open) fds.set(open[2]!, open[1]!);
    const sync = /fsync\((\d+)\)/.exec(line);
    if (sync) events.push(`fsync ${fds.get(sync[1]!)}`);
    const ren = /rename(?:at2?)?\((?:AT_FDCWD, )?"([^"]+)", (?:AT_FDCWD, )?"([^"]+)"/.exec(line);
    if (ren) events.push(`rename ${ren[1]} -> ${ren[2]}`);
  }
  const at = (re: RegExp): number => events.findIndex((e) => re.test(e));
  const dirRename = at(/^rename .*\.tmp-\d+ -> .*\/\.bvcni-[0-9a-f]{12}$/);
  assert.ok(dirRename > 0, `the version directory is renamed into place:\n${events.join('\n')}`);
  const tmpDir = /^rename (\S+) -> /.exec(events[dirRename]!)![1]!;
  for (const f of ['/bvcni', '/bvcni.d/libbpf.so.1', '/bvcni.d/koffi.node', '/bvcni.d', '']) {
    const i = events.indexOf(`fsync ${tmpDir}${f}`);
    assert.ok(i >= 0 && i < dirRename, `${tmpDir}${f} fsynced before the version is named:\n${events.join('\n')}`);
  }
  const linkRename = at(/^rename .*\/\.bvcni\.tmp-\d+ -> .*\/bvcni$/);
  assert.ok(linkRename > dirRename, 'then the link is switched');
  assert.ok(events.slice(linkRename + 1).some((e) => e === `fsync ${bin}`), 'and the bin dir (both new names) fsynced after');
});
