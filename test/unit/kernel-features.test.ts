// The kernel feature table and the refusal built from it; the probes against
// this machine's kernel, and against probe objects swapped for ones that must
// make them say no (a probe that cannot say no proves nothing).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import {
  FEATURES,
  KERNEL_FLOOR,
  choosePodDevice,
  formatFeatures,
  newestSince,
  NO_CT_SUBDIR,
  probeConntrack,
  probeKernelFeatures,
  programSet,
  refusalMessage,
  summarize,
  type FeatureState,
  type KernelFeatures,
} from '../../src/dataplane/features.js';
import { defaultObjDir } from '../../src/dataplane/layout.js';
import { kernelGate, podDeviceGate } from '../../src/daemon/kernel.js';
import { watchForConntrack } from '../../src/daemon/conntrack-watch.js';
import { REPO_ROOT } from '../support/kube-daemons.js';

const probesDir = join(defaultObjDir(), 'probes');
const answers = (over: Record<string, FeatureState>) =>
  new Map(FEATURES.map((f) => [f.id, { state: over[f.id] ?? ('yes' as FeatureState) }]));

describe('the feature table', () => {
  test('each feature names its first kernel; ids are unique; every probe source has a feature', () => {
    assert.equal(new Set(FEATURES.map((f) => f.id)).size, FEATURES.length);
    for (const f of FEATURES) assert.match(f.since, /^\d+\.\d+$/, f.id);
    const objects = new Set(FEATURES.flatMap((f) => (f.probe.kind === 'file' ? [] : [f.probe.object])));
    const sources = readdirSync(join(REPO_ROOT, 'bpf/probes')).filter((n) => n.endsWith('.c')).map((n) => n.replace(/\.c$/, '.o'));
    assert.deepEqual([...objects].sort(), sources.sort());
    for (const o of objects) assert.ok(existsSync(join(probesDir, o)), `${o} built`);
  });

  test('the floor is the newest required feature, compared as numbers (5.10 > 5.4)', () => {
    assert.equal(newestSince([{ since: '5.4' }, { since: '5.10' }, { since: '4.18' }]), '5.10');
    assert.equal(newestSince([{ since: '5.9' }, { since: '5.11' }]), '5.11');
    assert.equal(KERNEL_FLOOR, newestSince(FEATURES.filter((f) => !f.fallback)));
    assert.equal(KERNEL_FLOOR, '5.11');
  });

  test('a missing required feature is refused by name and first kernel', () => {
    const k = summarize('5.10.0-test', FEATURES, answers({ 'redirect-peer': 'no', 'ktime-coarse': 'no' }));
    assert.deepEqual(k.missing.map((f) => f.id), ['redirect-peer', 'ktime-coarse']);
    const msg = refusalMessage(k);
    assert.ok(msg);
    assert.match(msg, /^kernel 5\.10\.0-test lacks what bvcni needs: bpf_redirect_peer \(Linux 5\.10\), bpf_ktime_get_coarse_ns \(Linux 5\.11\)\./);
    assert.match(msg, /bvcni needs Linux 5\.11 or newer/);
    assert.match(msg, /nothing was installed/);
  });

  test('a missing feature with a fallback degrades, it does not refuse; unknown never refuses', () => {
    const k = summarize('6.1.0-test', FEATURES, answers({ 'ct-kfuncs': 'no', btf: 'unknown' }));
    assert.equal(refusalMessage(k), undefined);
    assert.deepEqual(k.degraded.map((f) => f.id), ['ct-kfuncs']);
    assert.match(k.degraded[0]!.fallback!, /kube-proxy/);
    const rows = formatFeatures(k);
    assert.deepEqual(rows.find((r) => r[0].startsWith('conntrack'))?.[2], 'no: fallback in use');
    assert.deepEqual(rows.find((r) => r[0].startsWith('kernel BTF'))?.[2], 'unknown');
    assert.equal(refusalMessage(summarize('x', FEATURES, answers({ btf: 'no' })))?.includes('kernel BTF'), true);
  });
});

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

  test('both program sets are built, and only the conntrack set references the kfuncs', () => {
    for (const d of [programSet(summarize('x', FEATURES, answers({}))).dir, programSet(summarize('x', FEATURES, answers({ 'ct-kfuncs': 'no' }))).dir]) {
      for (const o of ['bpf_pod.o', 'bpf_overlay.o', 'bpf_host.o']) assert.ok(existsSync(join(d, o)), join(d, o));
    }
    const names = (f: string): boolean => readFileSync(f).includes('bpf_skb_ct_lookup');
    assert.equal(names(join(defaultObjDir(), 'bpf_pod.o')), true, 'the conntrack set names the kfunc');
    assert.equal(names(join(defaultObjDir(), NO_CT_SUBDIR, 'bpf_pod.o')), false, 'the no-conntrack set does not');
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

describe("bvcnid's gate", () => {
  function capture(): { log: Logger; lines: () => { level: number; msg: string }[] } {
    const out: string[] = [];
    const stream = new Writable({
      write(chunk, _enc, cb) {
        out.push(String(chunk));
        cb();
      },
    });
    return { log: pino({ level: 'info' }, stream), lines: () => out.join('').trim().split('\n').map((l) => JSON.parse(l)) };
  }
  const fake = (over: Record<string, FeatureState>) => async (): Promise<KernelFeatures> => summarize('5.10.0-fake', FEATURES, answers(over));

  test('refuses with the documented message when a required feature is missing', async () => {
    const c = capture();
    assert.equal(await kernelGate(c.log, fake({ 'ktime-coarse': 'no' }), '/objs'), undefined);
    const fatal = c.lines().find((l) => l.level === 60);
    assert.ok(fatal, 'a fatal line');
    assert.match(fatal.msg, /^kernel 5\.10\.0-fake lacks what bvcni needs: bpf_ktime_get_coarse_ns \(Linux 5\.11\)/);
  });

  test('goes on, with a warning naming the fallback, when only a weak feature is missing', async () => {
    const c = capture();
    assert.deepEqual(await kernelGate(c.log, fake({ 'ct-kfuncs': 'no' }), '/objs'), { name: 'no-conntrack', dir: '/objs/noct' });
    const lines = c.lines();
    assert.equal(lines.filter((l) => l.level === 60).length, 0);
    assert.ok(lines.some((l) => l.level === 40 && /conntrack kfuncs.*fallback/.test(l.msg)));
    assert.ok(lines.some((l) => l.msg === 'kernel features'));
    assert.ok(lines.some((l) => l.msg === 'loading the no-conntrack programs'));
  });

  test('selects the program set by the conntrack probe: yes → conntrack; no, or unknown → no-conntrack', async () => {
    for (const [state, name] of [['yes', 'conntrack'], ['no', 'no-conntrack'], ['unknown', 'no-conntrack']] as const) {
      const c = capture();
      const set = await kernelGate(c.log, fake({ 'ct-kfuncs': state }), '/objs');
      assert.equal(set?.name, name, state);
      assert.equal(set?.dir, name === 'conntrack' ? '/objs' : '/objs/noct', state);
      assert.ok(c.lines().some((l) => l.msg === `loading the ${name} programs`), state);
    }
  });
});

describe('the pod device (--pod-device)', () => {
  const k = (netkit: FeatureState): KernelFeatures => summarize('6.12.0-fake', FEATURES, answers({ netkit }));
  const device = (r: ReturnType<typeof choosePodDevice>): string => ('device' in r ? r.device : `error: ${r.error}`);

  test('auto picks netkit only where the probe said yes; veth and netkit are taken as asked', () => {
    assert.equal(device(choosePodDevice(k('yes'), 'auto')), 'netkit');
    assert.equal(device(choosePodDevice(k('no'), 'auto')), 'veth');
    assert.equal(device(choosePodDevice(k('unknown'), 'auto')), 'veth');
    assert.equal(device(choosePodDevice(k('yes'), 'veth')), 'veth');
    assert.equal(device(choosePodDevice(k('yes'), 'netkit')), 'netkit');
  });

  test('netkit asked for on a kernel without it is an error naming netkit and its first kernel', () => {
    assert.match(device(choosePodDevice(k('no'), 'netkit')), /^error: --pod-device netkit: kernel 6\.12\.0-fake lacks netkit \(Linux 6\.7/);
    assert.match(device(choosePodDevice(k('unknown'), 'netkit')), /could not be probed for netkit/);
  });

  test('netkit absent is a fallback (veth pairs), never a refusal of the kernel', () => {
    const f = k('no');
    assert.equal(f.missing.length, 0);
    assert.deepEqual(f.degraded.map((x) => x.id), ['netkit']);
    assert.match(f.degraded[0]!.fallback ?? '', /veth/);
  });

  test("bvcnid's gate: logs which pairs pods get; refuses (fatal, nothing installed) an impossible --pod-device netkit", async () => {
    const lines: { level: number; msg: string; podDevice?: string }[] = [];
    const log = pino({ level: 'info' }, new Writable({ write: (chunk, _e, cb) => (lines.push(JSON.parse(String(chunk))), cb()) }));
    assert.equal(await podDeviceGate(log, 'auto', async () => k('yes')), 'netkit');
    assert.ok(lines.some((l) => l.msg === 'pods get netkit pairs' && l.podDevice === 'netkit'));
    assert.equal(await podDeviceGate(log, 'auto', async () => k('no')), 'veth');
    assert.ok(lines.some((l) => l.msg === 'pods get veth pairs'));
    assert.equal(await podDeviceGate(log, 'netkit', async () => k('no')), undefined);
    assert.ok(lines.some((l) => l.level === 60 && /lacks netkit.*nothing was installed/.test(l.msg)));
  });
});

describe('conntrack appearing after start-up', () => {
  const quiet = pino({ level: 'silent' });
  /** Runs the watcher until it stops acting (or 200 ticks); counts what it did. */
  async function watch(present: () => boolean, probe: () => Promise<FeatureState>): Promise<{ probes: number; switched: number }> {
    let probes = 0;
    let switched = 0;
    const w = watchForConntrack({
      log: quiet,
      intervalMs: 1,
      present,
      probe: () => {
        probes++;
        return probe();
      },
      onAvailable: () => switched++,
    });
    for (let i = 0; i < 200 && !switched; i++) await new Promise((r) => setTimeout(r, 2));
    w.stop();
    return { probes, switched };
  }

  test('no probe while the sysctl file is absent; one probe and one switch once it appears and the probe says yes', async () => {
    let checks = 0;
    const absent = await watch(() => (checks++, false), async () => 'yes');
    assert.ok(checks > 1, 'it kept looking');
    assert.deepEqual(absent, { probes: 0, switched: 0 });
    let n = 0;
    const appears = await watch(() => ++n > 3, async () => 'yes');
    assert.deepEqual(appears, { probes: 1, switched: 1 });
  });

  test('loaded but still rejected: no switch, and it stops probing', async () => {
    const r = await watch(() => true, async () => 'no');
    assert.deepEqual(r, { probes: 1, switched: 0 });
  });
});
