// bvcnid's plugin install: versions side by side, one atomic switch, the real
// plugin finding its support directory through the symlink.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { installPlugin, removeInstalled } from '../../src/daemon/install.js';

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

test('the real plugin, installed this way, finds its support directory through the link with an empty environment', () => {
  const bin = join(root, 'real-bin');
  const { binary, version } = installPlugin('dist/bin/bvcni', bin);
  // DEL takes the IPAM lock through koffi: it needs bvcni.d (VERSION alone might not).
  const conf = JSON.stringify({ cniVersion: '1.0.0', name: 'bvcni', type: 'bvcni', podcidr: '10.244.1.0/24', dataDir: join(root, 'data'), pinDir: join(root, 'no-pins') });
  const del = () =>
    spawnSync('env', ['-i', 'CNI_COMMAND=DEL', 'CNI_CONTAINERID=c1', 'CNI_IFNAME=eth0', 'CNI_NETNS=', `CNI_PATH=${bin}`, binary], {
      input: conf,
      encoding: 'utf8',
      timeout: 30_000,
    });
  const ok = del();
  assert.equal(ok.status, 0, ok.stdout + ok.stderr);
  // Control: without the version's support directory the same call fails.
  renameSync(join(bin, version, 'bvcni.d'), join(root, 'hidden.d'));
  const broken = del();
  assert.equal(broken.status, 1);
  assert.match(broken.stdout, /koffi/);
});
