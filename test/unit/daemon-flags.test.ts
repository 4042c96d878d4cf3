// Bad flags stop bvcnid at once with exit code 2 and say which flag, before it
// touches the node: a DaemonSet in CrashLoopBackOff with a clear log beats a
// daemon that runs and never becomes ready.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

function bvcnid(...args: string[]): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, ['dist/bin/bvcnid', '--node-name', 'n', '--health-addr', '127.0.0.1:0', ...args], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { code: r.status, out: r.stdout + r.stderr };
}

test('a service range that overlaps the cluster CIDR is refused', () => {
  const r = bvcnid('--cluster-cidr', '10.0.0.0/8');
  assert.equal(r.code, 2);
  assert.match(r.out, /--service-cidr 10\.96\.0\.0\/12 overlaps --cluster-cidr 10\.0\.0\.0\/8/);
});

test('malformed CIDR flags are refused naming the flag', () => {
  const bad = bvcnid('--service-cidr', '10.96.0.0/33');
  assert.equal(bad.code, 2);
  assert.match(bad.out, /--service-cidr/);
  const host = bvcnid('--cluster-cidr', '10.244.0.1/16');
  assert.equal(host.code, 2);
  assert.match(host.out, /--cluster-cidr.*host bits/);
});
