// `make demo` end to end: the demo process itself, as a user runs it. The
// matrix must be all green, the output must carry what issue 6 promises, and
// nothing may be left behind — or, with KEEP=1, everything must still run
// until --cleanup removes it.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanupLeftovers, ping, uniquePrefix } from '../../src/sim/index.js';
import { listNetns } from '../../src/sim/netns.js';
import type { DemoSummary } from '../../src/sim/demo.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DEMO = join(ROOT, 'src/sim/demo.ts');
const scratch = mkdtempSync(join(tmpdir(), 'bvx-demo-test-'));
const prefixes: string[] = [];

function runDemo(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; out: string; seconds: number }> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', DEMO, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGINT'), 170_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out, seconds: (Date.now() - t0) / 1000 });
    });
  });
}

function leftovers(prefix: string): string[] {
  const found: string[] = [];
  found.push(...listNetns(prefix).map((n) => `netns ${n}`));
  found.push(...readdirSync('/sys/fs/bpf').filter((n) => n.startsWith(prefix)).map((n) => `pin ${n}`));
  found.push(...readdirSync(tmpdir()).filter((n) => n.startsWith(prefix)).map((n) => `tmp ${n}`));
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (cmd.includes(`/${prefix}-`) || cmd.includes(`--prefix ${prefix}`)) found.push(`process ${pid}: ${cmd.slice(0, 120)}`);
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

function checkSummary(s: DemoSummary): void {
  const kinds = (k: string): DemoSummary['pairs'] => s.pairs.filter((p) => p.kind === k);
  // 3 nodes × 2 pods: 6 same-node ordered pairs, 24 cross-node, 6 to the internet.
  assert.equal(kinds('same-node').length, 6);
  assert.equal(kinds('cross-node').length, 24);
  assert.equal(kinds('internet').length, 6);
  for (const p of s.pairs) {
    assert.ok(p.ok, `${p.from} → ${p.to}: ${p.error}`);
    assert.equal(typeof p.rttMs, 'number', `${p.from} → ${p.to} has a latency`);
    if (p.kind === 'internet') {
      assert.match(p.seenAs!, /^192\.0\.2\.\d+$/, 'masqueraded to a node IP');
      assert.notEqual(p.seenAs, p.fromIp);
    } else assert.equal(p.seenAs, p.fromIp, 'no NAT inside the cluster');
  }
  assert.equal(s.ok, true);
}

describe('make demo', { timeout: 600_000 }, () => {
  after(async () => {
    for (const p of prefixes) await cleanupLeftovers(p);
    rmSync(scratch, { recursive: true, force: true });
  });

  test('builds a 3-node cluster, prints an all-green matrix, status and the tunnel map, and leaves nothing behind', async () => {
    const prefix = uniquePrefix('bvx');
    prefixes.push(prefix);
    const summaryFile = join(scratch, 'summary.json');
    const r = await runDemo(['--prefix', prefix, '--summary', summaryFile]);
    assert.equal(r.code, 0, r.out);
    checkSummary(JSON.parse(readFileSync(summaryFile, 'utf8')) as DemoSummary);

    assert.match(r.out, /^FROM \\ TO +n0\/p0 +n0\/p1 +n1\/p0 +n1\/p1 +n2\/p0 +n2\/p1 +internet$/m);
    assert.doesNotMatch(r.out, /✗/);
    assert.match(r.out, /24\/24 pod ↔ pod across nodes/);
    assert.match(r.out, /\$ bvcnictl status/);
    assert.match(r.out, /^node IP: +192\.0\.2\.10$/m, 'bvcnictl status of node 0');
    assert.match(r.out, /^ready: +yes$/m);
    assert.match(r.out, /\$ bpftool map dump pinned .*bvcni_tunnel/);
    assert.equal((r.out.match(/"prefixlen": 24/g) ?? []).length, 2, 'two remote podCIDRs in the dump');
    assert.match(r.out, /torn down/);
    assert.ok(r.seconds < 120, `under 2 minutes (took ${r.seconds.toFixed(1)} s)`);
    assert.deepEqual(leftovers(prefix), []);
  });

  test('KEEP=1 leaves the cluster running and usable; --cleanup removes all of it', async () => {
    const prefix = uniquePrefix('bvx');
    prefixes.push(prefix);
    const r = await runDemo(['--prefix', prefix], { KEEP: '1' });
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /KEEP=1: the cluster stays up/);
    assert.match(r.out, new RegExp(`--cleanup --prefix ${prefix}`));
    assert.doesNotMatch(r.out, /torn down/);

    const left = leftovers(prefix);
    assert.equal(left.filter((l) => l.startsWith('process') && l.includes('bvcnid')).length, 3, 'a daemon per node still runs');
    assert.ok(left.some((l) => l.includes('--serve-api')), 'the API server still runs');
    // Still a working cluster after the demo process is gone.
    const ok = await ping(`/run/netns/${prefix}-n0-p0`, '10.244.2.2', { count: 2 });
    assert.ok(ok.ok, ok.stdout + ok.stderr);
    assert.ok(existsSync(`/sys/fs/bpf/${prefix}-n1/bvcni_tunnel`));

    // The operator's view of the kept cluster: bvcnictl doctor, as printed by the demo, all green
    // (API reachable and bvcnid ready included), run from inside node 0 as on a real node.
    const dirs = /--cni-conf-dir (\S+) --cni-bin-dir (\S+)/.exec(r.out);
    const kc = /API server: +(\S+)/.exec(r.out);
    assert.ok(dirs && kc, 'the demo prints the doctor command and the kubeconfig');
    const doc = spawnSync(
      'nsenter',
      [`--net=/run/netns/${prefix}-n0`, '--', process.execPath, join(ROOT, 'dist/bin/bvcnictl'), 'doctor', '--json',
        '--pin-dir', `/sys/fs/bpf/${prefix}-n0`, '--cni-conf-dir', dirs[1]!, '--cni-bin-dir', dirs[2]!, '--kubeconfig', kc[1]!],
      { encoding: 'utf8', timeout: 60_000 },
    );
    const report = JSON.parse(doc.stdout) as { ok: boolean; checks: { name: string; result: string; detail: string }[] };
    assert.deepEqual(report.checks.filter((x) => x.result !== 'ok'), [], 'every doctor check passes');
    for (const name of ['bvcnid ready', 'API server reachable', 'programs attached', 'CNI plugin installed'])
      assert.ok(report.checks.some((x) => x.name === name), `doctor ran "${name}"`);
    assert.equal(doc.status, 0);

    const clean = await runDemo(['--cleanup', '--prefix', prefix]);
    assert.equal(clean.code, 0, clean.out);
    assert.match(clean.out, /removed \d+ namespaces/);
    assert.deepEqual(leftovers(prefix), []);
  });

  // kube-proxy DNATs pod → ClusterIP in the host stack (iptables here stands in for it, inside
  // a node namespace of this test). It fails if the pod program masquerades the ClusterIP
  // instead of handing it to the stack, or if a backend's reply is redirected into the client
  // pod past conntrack (the client would see the backend's address and reset).
  test('a pod reaches a Service backend (same node and across nodes) through kube-proxy-style DNAT', async () => {
    const prefix = uniquePrefix('bvx');
    prefixes.push(prefix);
    const r = await runDemo(['--prefix', prefix], { KEEP: '1' });
    assert.equal(r.code, 0, r.out);
    const ns = (n: string): string => `/run/netns/${prefix}-${n}`;
    const backends = [
      { vip: '10.96.0.10', ip: '10.244.1.2', pod: 'n1-p0', where: 'across nodes' },
      { vip: '10.96.0.11', ip: '10.244.0.3', pod: 'n0-p1', where: 'same node' },
    ];
    const servers = backends.map((b) =>
      spawn('nsenter', [`--net=${ns(b.pod)}`, 'socat', 'TCP-LISTEN:7000,fork,reuseaddr', 'SYSTEM:echo backend'], { stdio: 'ignore' }),
    );
    try {
      await new Promise((res) => setTimeout(res, 500));
      const failures: string[] = [];
      for (const b of backends) {
        spawnSync('nsenter', [`--net=${ns('n0')}`, 'iptables', '-t', 'nat', '-A', 'PREROUTING', '-d', `${b.vip}/32`, '-p', 'tcp', '--dport', '80', '-j', 'DNAT', '--to-destination', `${b.ip}:7000`]);
        const direct = spawnSync('nsenter', [`--net=${ns('n0-p0')}`, 'socat', '-T2', '-', `TCP:${b.ip}:7000,connect-timeout=2`], { input: '', encoding: 'utf8' });
        assert.match(direct.stdout, /backend/, `the backend answers directly (${b.where})`);
        const viaVip = spawnSync('nsenter', [`--net=${ns('n0-p0')}`, 'socat', '-T2', '-', `TCP:${b.vip}:80,connect-timeout=3`], { input: '', encoding: 'utf8' });
        if (!/backend/.test(viaVip.stdout)) failures.push(`${b.where}: ${viaVip.stderr.trim()}`);
      }
      assert.deepEqual(failures, []);
    } finally {
      for (const s of servers) s.kill('SIGKILL');
      await cleanupLeftovers(prefix);
    }
  });

  test('a bad --prefix is refused before anything is created', async () => {
    const r = await runDemo(['--prefix', 'Bad-Prefix!']);
    assert.equal(r.code, 1);
    assert.match(r.out, /--prefix must be/);
  });
});
