// The kernel feature probes against this machine's kernel, and against probe
// objects swapped for ones that must make them say no (a probe that cannot say
// no proves nothing). The table and the gate: test/unit/kernel-features.test.ts.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NO_CT_SUBDIR, probeConntrack, probeKernelFeatures, programSet, refusalMessage } from '../../src/dataplane/features.js';
import { defaultObjDir } from '../../src/dataplane/layout.js';

const probesDir = join(defaultObjDir(), 'probes');

describe('probes on this kernel', () => {
  const dirs: string[] = [];
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
  /** A probe directory with some objects replaced (or removed: undefined). */
  function probeDir(swap: Record<string, string | undefined>): string {
    const d = mkdtempSync(join(tmpdir(), 'bvkf-'));
    dirs.push(d);
    for (const f of readdirSync(probesDir)) if (!(f in swap)) copyFileSync(join(probesDir, f), join(d, f));
    for (const [name, from] of Object.entries(swap)) if (from) copyFileSync(from, join(d, name));
    return d;
  }

  test('every feature is present here (6.18) but netkit, which the probe finds exactly when the kernel has it; memoized per process', async () => {
    const k = await probeKernelFeatures();
    assert.deepEqual(
      k.features.filter((f) => f.state !== 'yes' && f.id !== 'netkit').map((f) => `${f.id}: ${f.state} ${f.detail ?? ''}`),
      [],
    );
    // The oracle, independent of the probe: netkit's transmit function is in the kernel's symbols iff CONFIG_NETKIT.
    const hasNetkit = /\snetkit_xmit$/m.test(readFileSync('/proc/kallsyms', 'utf8'));
    const nk = k.features.find((f) => f.id === 'netkit')!;
    assert.equal(nk.state, hasNetkit ? 'yes' : 'no', nk.detail);
    if (!hasNetkit) assert.match(nk.detail ?? '', /EOPNOTSUPP/, 'refused as an unknown link kind');
    assert.equal(refusalMessage(k), undefined);
    assert.equal(await probeKernelFeatures(), k);
  });

  test('a probe the verifier rejects says no, and the refusal names it', async () => {
    const reject = join(defaultObjDir(), '../test/bpf/reject.o');
    const k = await probeKernelFeatures({ objDir: probeDir({ 'redirect_peer.o': reject }) });
    const f = k.features.find((x) => x.id === 'redirect-peer')!;
    assert.equal(f.state, 'no');
    assert.match(f.detail ?? '', /^verifier: /);
    assert.match(refusalMessage(k) ?? '', /lacks what bvcni needs: bpf_redirect_peer \(Linux 5\.10; verifier: /);
    // The control: the genuine object, in the same kind of directory, says yes.
    const ctl = await probeKernelFeatures({ objDir: probeDir({}) });
    assert.equal(ctl.features.find((x) => x.id === 'redirect-peer')!.state, 'yes');
  });

  test('a feature with a fallback whose probe the verifier rejects refuses: the programs would not load either', async () => {
    const reject = join(defaultObjDir(), '../test/bpf/reject.o');
    const k = await probeKernelFeatures({ objDir: probeDir({ 'adjust_room.o': reject }) });
    const f = k.features.find((x) => x.id === 'adjust-room-encap')!;
    assert.equal(f.required, true);
    assert.equal(f.fallback, undefined);
    assert.deepEqual(k.missing.map((x) => x.id), ['adjust-room-encap']);
    assert.match(refusalMessage(k) ?? '', /ENCAP_L2_ETH\) \(Linux 5\.13; the verifier rejects the programs' use of it: verifier: /);
  });

  test('a rejected conntrack probe (6.1 and 6.12 with nf_conntrack a module) selects the no-conntrack set, it does not refuse', async () => {
    const reject = join(defaultObjDir(), '../test/bpf/reject.o');
    const k = await probeKernelFeatures({ objDir: probeDir({ 'ct_kfunc.o': reject }) });
    const f = k.features.find((x) => x.id === 'ct-kfuncs')!;
    assert.equal(f.state, 'no');
    assert.equal(f.required, false);
    assert.match(f.fallback ?? '', /no-conntrack|noct/);
    assert.match(f.detail ?? '', /^verifier: /);
    assert.deepEqual(k.missing, []);
    assert.deepEqual(k.degraded.map((x) => x.id).filter((id) => id !== 'netkit'), ['ct-kfuncs'], 'netkit aside (absent on this machine)');
    assert.equal(refusalMessage(k), undefined);
    assert.deepEqual(programSet(k, '/objs'), { name: 'no-conntrack', dir: join('/objs', NO_CT_SUBDIR) });
    // Control: the genuine probe, in the same kind of directory, selects the conntrack set here (6.18, built in).
    const ctl = await probeKernelFeatures({ objDir: probeDir({}) });
    assert.deepEqual(programSet(ctl, '/objs'), { name: 'conntrack', dir: '/objs' });
    assert.equal(await probeConntrack(probeDir({})), 'yes');
    assert.equal(await probeConntrack(probeDir({ 'ct_kfunc.o': reject })), 'no');
  });

  test('a run-time probe whose program does not answer yes says no; the fallback is reported', async () => {
    // ktime_coarse.o loads and returns TC_ACT_OK (0), not PROBE_YES.
    const k = await probeKernelFeatures({ objDir: probeDir({ 'adjust_room.o': join(probesDir, 'ktime_coarse.o') }) });
    const f = k.features.find((x) => x.id === 'adjust-room-encap')!;
    assert.equal(f.state, 'no');
    assert.match(f.detail ?? '', /probe answered 0/);
    assert.deepEqual(k.degraded.map((x) => x.id).filter((id) => id !== 'netkit'), ['adjust-room-encap'], 'netkit aside (absent on this machine)');
    assert.equal(refusalMessage(k), undefined);
  });

  test('a probe that cannot run says unknown, never no', async () => {
    const k = await probeKernelFeatures({ objDir: probeDir({ 'base.o': undefined }) });
    const states = Object.fromEntries(k.features.map((f) => [f.id, f.state]));
    assert.equal(states['tc-helpers'], 'unknown');
    assert.equal(states['clsact'], 'unknown');
    assert.equal(k.missing.length, 0);
  });

  test('the attach probe leaves no process (and so no namespace) behind', async () => {
    const ours = (): string[] =>
      readdirSync('/proc')
        .filter((p) => /^\d+$/.test(p))
        .filter((p) => {
          try {
            const [, comm, , ppid] = readFileSync(`/proc/${p}/stat`, 'utf8').split(' ');
            return ppid === String(process.pid) && /^\((unshare|sleep)\)$/.test(comm ?? '');
          } catch {
            return false;
          }
        });
    const k = await probeKernelFeatures({ objDir: probeDir({}) });
    assert.equal(k.features.find((f) => f.id === 'clsact')!.state, 'yes');
    assert.deepEqual(ours(), []);
  });
});
