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

test('listener addresses: a bad --metrics-addr and an address with no host are refused naming the flag', () => {
  const metrics = bvcnid('--metrics-addr', 'localhost');
  assert.equal(metrics.code, 2);
  assert.match(metrics.out, /--metrics-addr \\"localhost\\": expected HOST:PORT/);
  // Every address is never implied by an empty host: it must be written 0.0.0.0.
  const noHost = bvcnid('--health-addr', ':9099');
  assert.equal(noHost.code, 2);
  assert.match(noHost.out, /--health-addr \\":9099\\": no host/);
});

test('bounds: a malformed duration, and a --stuck-after a quiet cluster would trip, are refused', () => {
  const bad = bvcnid('--api-timeout', 'soon');
  assert.notEqual(bad.code, 0);
  assert.match(bad.out, /--api-timeout must be a duration/);
  const tight = bvcnid('--watch-idle-timeout', '150s', '--api-timeout', '30s', '--stuck-after', '180s');
  assert.equal(tight.code, 2);
  assert.match(tight.out, /--stuck-after \(180s\) must be longer than --watch-idle-timeout plus --api-timeout \(180s\)/);
  // The same values with room to spare get past the flags (as far as the missing kubeconfig).
  const ok = bvcnid('--watch-idle-timeout', '150s', '--api-timeout', '30s', '--stuck-after', '181s', '--kubeconfig', '/nonexistent/kubeconfig');
  assert.equal(ok.code, 2);
  assert.match(ok.out, /cannot load the kubeconfig/);
});
