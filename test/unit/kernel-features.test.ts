// The kernel feature table and the refusal built from it, bvcnid's gate and
// its conntrack watch, against answers given to them; the probes themselves
// load programs, so they run in test/bpf/kernel-probes.test.ts.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
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

describe('the program sets', () => {
  test('both program sets are built, and only the conntrack set references the kfuncs', () => {
    for (const d of [programSet(summarize('x', FEATURES, answers({}))).dir, programSet(summarize('x', FEATURES, answers({ 'ct-kfuncs': 'no' }))).dir]) {
      for (const o of ['bpf_pod.o', 'bpf_overlay.o', 'bpf_host.o']) assert.ok(existsSync(join(d, o)), join(d, o));
    }
    const names = (f: string): boolean => readFileSync(f).includes('bpf_skb_ct_lookup');
    assert.equal(names(join(defaultObjDir(), 'bpf_pod.o')), true, 'the conntrack set names the kfunc');
    assert.equal(names(join(defaultObjDir(), NO_CT_SUBDIR, 'bpf_pod.o')), false, 'the no-conntrack set does not');
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
