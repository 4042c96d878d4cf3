// The built plugin (dist/bin/bvcni) run as a runtime runs it, with an empty
// environment: a DEL of something never added, which looks for the pod's host
// veth over netlink and so needs root (CAP_NET_ADMIN). Its log file
// (src/cni/log.ts, the rest in test/unit/cni-log.test.ts) and its support
// directory found through the installed link (src/kube/install.ts, the rest
// in test/unit/daemon-install.test.ts).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LOG_DEFAULTS } from '../../src/cni/log.js';
import { installPlugin } from '../../src/kube/install.js';
import { fileMode, jsonLines } from '../support/log-files.js';

const root = mkdtempSync(join(tmpdir(), 'bvk-plugin-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = (): string => join(root, `d${n++}`);

describe('the plugin log', () => {
  test('costs the plugin one open, one fstat, one write and one close per line (strace of the built plugin)', { skip: (!existsSync('dist/bin/bvcni') || !existsSync('/usr/bin/strace')) && 'needs make build and strace' }, () => {
    const dataDir = freshDir();
    mkdirSync(dataDir);
    writeFileSync(join(dataDir, LOG_DEFAULTS.file), '{"msg":"earlier"}\n', { mode: 0o600 });
    const conf = JSON.stringify({ cniVersion: '1.0.0', name: 'bvcni', type: 'bvcni', podcidr: '10.244.1.0/24', dataDir, pinDir: join(root, 'no-pins') });
    const trace = join(dataDir, 'trace');
    // The main thread only (no -f): the log is written synchronously there, and other threads' calls would interleave and split its lines.
    const r = spawnSync('strace', ['-o', trace, 'env', '-i', 'CNI_COMMAND=DEL', 'CNI_CONTAINERID=ctr-trace', 'CNI_IFNAME=eth0', 'CNI_NETNS=', 'dist/bin/bvcni'], {
      input: conf,
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const lines = readFileSync(trace, 'utf8').split('\n');
    const opens = lines.filter((l) => l.includes(`"${join(dataDir, LOG_DEFAULTS.file)}"`));
    assert.equal(opens.length, 1, `one open of the log:\n${opens.join('\n')}`);
    const fd = / = (\d+)$/.exec(opens[0]!)![1]!;
    const start = lines.indexOf(opens[0]!);
    const end = lines.findIndex((l, i) => i > start && new RegExp(`close\\(${fd}\\)`).test(l));
    const onFd = lines.slice(start + 1, end + 1).filter((l) => new RegExp(`\\(${fd}[,)]`).test(l)).map((l) => /(\w+)\(/.exec(l.replace(/^\d+\s+/, ''))![1]!)
      .map((call) => (/^(statx|fstat|newfstatat)$/.test(call) ? 'fstat' : call));
    assert.deepEqual(onFd, ['fstat', 'write', 'close'], 'after the open: fstat (statx), the line, close; no chmod, no rename, no lock');
  });

  test('the built plugin writes it 0600 and fixes an existing world-readable one', { skip: !existsSync('dist/bin/bvcni') && 'run make build' }, () => {
    const dataDir = freshDir();
    mkdirSync(dataDir);
    const p = join(dataDir, LOG_DEFAULTS.file);
    writeFileSync(p, '');
    chmodSync(p, 0o644);
    const conf = JSON.stringify({ cniVersion: '1.0.0', name: 'bvcni', type: 'bvcni', podcidr: '10.244.1.0/24', dataDir, pinDir: join(root, 'no-pins') });
    // DEL of something never added: succeeds, logs one line, touches no device.
    const r = spawnSync('env', ['-i', 'CNI_COMMAND=DEL', 'CNI_CONTAINERID=ctr-log-1', 'CNI_IFNAME=eth0', 'CNI_NETNS=', 'CNI_PATH=/nonexistent', 'dist/bin/bvcni'], {
      input: conf,
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.equal(fileMode(p).toString(8), '600');
    assert.deepEqual(
      jsonLines(p).map((l) => [l.cmd, l.containerId]),
      [['DEL', 'ctr-log-1']],
    );
  });
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
  // Controls: without koffi in the version's support directory the same call fails, naming it;
  // without the directory (and the Node plugin in it) the native front says what it cannot run.
  renameSync(join(bin, version, 'bvcni.d', 'koffi.node'), join(root, 'hidden-koffi.node'));
  const noKoffi = del();
  assert.equal(noKoffi.status, 1);
  assert.match(noKoffi.stdout, /koffi/);
  renameSync(join(root, 'hidden-koffi.node'), join(bin, version, 'bvcni.d', 'koffi.node'));
  assert.equal(del().status, 0, 'whole again');
  renameSync(join(bin, version, 'bvcni.d'), join(root, 'hidden.d'));
  const broken = del();
  assert.equal(broken.status, 1);
  assert.match(broken.stdout, /"code":100,.*cannot run the plugin .*bvcni\.d\/bvcni-node/);
});
