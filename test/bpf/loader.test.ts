// The loader against the real kernel: objects, maps, pins, tc attach in a
// throwaway namespace, and the errors users see for bad input.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import {
  attachTc,
  BpfError,
  BpfMap,
  BpfObject,
  BpfProgram,
  detachTc,
  MapType,
  testRun,
  u32,
  VerifierError,
  withNetns,
  ifIndex,
} from '../../loader/index.js';
import { run } from '../../src/common/exec.js';
import { listTc } from '../../src/dataplane/tc-filters.js';
import { createNetns, deleteNetnsSync, uniquePrefix } from '../../src/sim/netns.js';

import { COUNTER_OBJ, REJECT_OBJ, counterValue, lpmKey, roundtripKey } from '../fixtures/bpf/counter.js';

const prefix = uniquePrefix('bvl');
const pinRoot = `/sys/fs/bpf/${prefix}`;

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

after(() => {
  rmSync(pinRoot, { recursive: true, force: true });
});

describe('objects and maps', () => {
  test('loads an object, lists its programs and maps, and runs a program in the kernel', () => {
    using obj = BpfObject.open(COUNTER_OBJ);
    assert.deepEqual(obj.programNames.sort(), ['count_egress', 'count_ingress']);
    assert.deepEqual(obj.mapNames.sort(), ['lt_counters', 'lt_hash', 'lt_lpm', 'lt_percpu']);
    obj.load();
    using counters = obj.map('lt_counters', u32, counterValue);
    using prog = obj.program('count_ingress');
    assert.ok(prog.id > 0);
    const res = testRun(prog, { data: Buffer.alloc(60), repeat: 3 });
    assert.equal(res.retval, 0); // TC_ACT_OK
    assert.deepEqual(counters.lookup(0), { packets: 3n, bytes: 180n });
    assert.deepEqual(counters.lookup(1), { packets: 0n, bytes: 0n });
  });

  test('per-CPU maps give one value per possible CPU', () => {
    using obj = BpfObject.open(COUNTER_OBJ);
    obj.load();
    using percpu = obj.map('lt_percpu', u32, counterValue);
    assert.ok(percpu.perCpu);
    assert.throws(() => percpu.lookup(0), /per-CPU/);
    percpu.update(1, { packets: 7n, bytes: 9n });
    const values = percpu.lookupPerCpu(1)!;
    assert.ok(values.length >= 1);
    for (const v of values) assert.deepEqual(v, { packets: 7n, bytes: 9n });
  });

  test('10,000 entries round trip through update, lookup, iterate, batch and delete', () => {
    using obj = BpfObject.open(COUNTER_OBJ);
    obj.load();
    using hash = obj.map('lt_hash', roundtripKey, counterValue);
    assert.equal(hash.info.type, MapType.hash);
    const N = 10_000;
    for (let i = 0; i < N / 2; i++) hash.update({ a: i, b: i * 3 }, { packets: BigInt(i), bytes: BigInt(i * 2) }, 'noexist');
    const batch: [{ a: number; b: number }, { packets: bigint; bytes: bigint }][] = [];
    for (let i = N / 2; i < N; i++) batch.push([{ a: i, b: i * 3 }, { packets: BigInt(i), bytes: BigInt(i * 2) }]);
    hash.updateBatch(batch);
    for (let i = 0; i < N; i += 97) {
      assert.deepEqual(hash.lookup({ a: i, b: i * 3 }), { packets: BigInt(i), bytes: BigInt(i * 2) });
    }
    let seen = 0;
    for (const [k, v] of hash.entries()) {
      assert.equal(k.b, k.a * 3);
      assert.equal(v.packets, BigInt(k.a));
      seen++;
    }
    assert.equal(seen, N);
    assert.throws(
      () => hash.update({ a: 1, b: 3 }, { packets: 0n, bytes: 0n }, 'noexist'),
      (e: unknown) => e instanceof BpfError && e.code === 'EEXIST',
    );
    assert.throws(
      () => hash.update({ a: N + 1, b: 0 }, { packets: 0n, bytes: 0n }, 'exist'),
      (e: unknown) => e instanceof BpfError && e.code === 'ENOENT',
    );
    const keys = [...hash.keys()];
    assert.equal(hash.deleteBatch(keys), N);
    assert.equal(hash.delete({ a: 0, b: 0 }), false);
    assert.equal([...hash.keys()].length, 0);
  });

  test('batchCounter counts a hash map a batch per step, resumable, never counting an entry twice under deletes', () => {
    using obj = BpfObject.open(COUNTER_OBJ);
    obj.load();
    using hash = obj.map('lt_hash', roundtripKey, counterValue);
    const empty = hash.batchCounter(512)!;
    assert.ok(empty, 'hash maps have batch lookup');
    assert.equal(empty.step(), 0);
    assert.equal(empty.done, true);
    const N = 10_000;
    const all: [{ a: number; b: number }, { packets: bigint; bytes: bigint }][] = [];
    for (let i = 0; i < N; i++) all.push([{ a: i, b: i }, { packets: 0n, bytes: 0n }]);
    hash.updateBatch(all);
    const walk = hash.batchCounter(512)!;
    let total = 0;
    let steps = 0;
    while (!walk.done) {
      const n = walk.step();
      assert.ok(n <= 1024, `a step is bounded by its batch (a bucket may spill over: ${n})`);
      total += n;
      steps++;
    }
    assert.equal(total, N);
    assert.ok(steps >= N / 1024, `${steps} steps`);
    // Deletes between steps (what an LRU under churn does): a get_next_key walk whose
    // resume key vanished starts over from the first key; the bucket cursor carries on.
    const churn = hash.batchCounter(512)!;
    let counted = churn.step();
    hash.deleteBatch(all.filter(([k]) => k.a % 2 === 0).map(([k]) => k));
    while (!churn.done) counted += churn.step();
    assert.ok(counted <= N && counted >= N / 2, `counted ${counted} of ${N} (half deleted mid-walk)`);
    // The kernel's generic batch lookup (an LPM trie's) resumes from a key: it counts too.
    using lpm = obj.map('lt_lpm', lpmKey, u32);
    lpm.updateBatch([0, 1, 2].map((i) => [{ prefixlen: 24, addr: `10.244.${i}.0` }, i] as [{ prefixlen: number; addr: string }, number]));
    const trie = lpm.batchCounter(2);
    if (trie) {
      let n = 0;
      while (!trie.done) n += trie.step();
      assert.equal(n, 3);
    }
  });

  test('LPM trie: longest prefix wins and batch falls back where the kernel has no batch op', () => {
    using obj = BpfObject.open(COUNTER_OBJ);
    obj.load();
    using lpm = obj.map('lt_lpm', lpmKey, u32);
    lpm.updateBatch([
      [{ prefixlen: 16, addr: '10.244.0.0' }, 1],
      [{ prefixlen: 24, addr: '10.244.2.0' }, 2],
    ]);
    assert.equal(lpm.lookup({ prefixlen: 32, addr: '10.244.2.9' }), 2);
    assert.equal(lpm.lookup({ prefixlen: 32, addr: '10.244.3.9' }), 1);
    assert.equal(lpm.lookup({ prefixlen: 32, addr: '10.245.0.1' }), undefined);
  });

  test('codecs that do not match the map are refused', () => {
    using obj = BpfObject.open(COUNTER_OBJ);
    obj.load();
    assert.throws(() => obj.map('lt_counters', u32, u32), /value 16 bytes, codecs expect .* 4/);
  });

  test('1,000 open/load/close cycles leak no file descriptor', () => {
    const warm = BpfObject.open(COUNTER_OBJ);
    warm.load();
    warm.map('lt_counters', u32, counterValue).close();
    warm.close();
    const before = openFds();
    for (let i = 0; i < 1000; i++) {
      const obj = BpfObject.open(COUNTER_OBJ);
      if (i % 10 === 0) {
        obj.load();
        const m = obj.map('lt_counters', u32, counterValue);
        const p = obj.program('count_egress');
        m.close();
        p.close();
        m.close(); // idempotent
      }
      obj.close();
      obj.close();
    }
    assert.equal(openFds(), before);
  });
});

describe('pinning', () => {
  test('maps pinned by name are reused by a second load and readable from another process', () => {
    const dir = join(pinRoot, 'reuse');
    const first = BpfObject.open(COUNTER_OBJ, { pinDir: dir });
    first.load();
    const m1 = first.map('lt_hash', roundtripKey, counterValue);
    m1.update({ a: 42, b: 1 }, { packets: 5n, bytes: 6n });
    const id1 = m1.info.id;
    m1.close();
    first.close();
    assert.ok(existsSync(join(dir, 'lt_hash')));

    // A second load adopts the pinned map instead of creating a fresh one.
    using second = BpfObject.open(COUNTER_OBJ, { pinDir: dir });
    second.load();
    using m2 = second.map('lt_hash', roundtripKey, counterValue);
    assert.equal(m2.info.id, id1);
    assert.deepEqual(m2.lookup({ a: 42, b: 1 }), { packets: 5n, bytes: 6n });

    const script = `
      import { BpfMap, struct } from '${process.cwd()}/loader/index.js';
      const k = struct('k', 8, [{ name: 'a', kind: 'u32', offset: 0 }, { name: 'b', kind: 'u32', offset: 4 }]);
      const v = struct('v', 16, [{ name: 'packets', kind: 'u64', offset: 0 }, { name: 'bytes', kind: 'u64', offset: 8 }]);
      const m = BpfMap.openPinned('${join(dir, 'lt_hash')}', k, v);
      const got = m.lookup({ a: 42, b: 1 });
      m.update({ a: 43, b: 1 }, { packets: got.packets + 1n, bytes: 0n });
      console.log(String(got.packets));`;
    const file = join(tmpdir(), `${prefix}-reader.ts`);
    writeFileSync(file, script);
    try {
      const out = execFileSync(process.execPath, ['--import', 'tsx', file], { encoding: 'utf8' }).trim();
      assert.equal(out, '5');
    } finally {
      rmSync(file, { force: true });
    }
    assert.deepEqual(m2.lookup({ a: 43, b: 1 }), { packets: 6n, bytes: 0n });
  });

  test('programs pin and reopen by path', () => {
    const dir = join(pinRoot, 'prog');
    using obj = BpfObject.open(COUNTER_OBJ, { pinDir: dir });
    obj.load();
    using prog = obj.program('count_ingress');
    prog.pin(join(dir, 'count_ingress'));
    {
      using again = BpfProgram.openPinned(join(dir, 'count_ingress'));
      assert.equal(again.id, prog.id);
    }
    rmSync(join(dir, 'count_ingress'));
  });
});

describe('tc in a network namespace', () => {
  const ns = `${prefix}-tc`;
  let nsPath = '';

  before(async () => {
    nsPath = await createNetns(ns);
    await run(['ip', 'link', 'add', 'va', 'type', 'veth', 'peer', 'name', 'vb'], { netns: nsPath });
    await run(['ip', 'addr', 'add', '192.0.2.1/24', 'dev', 'va'], { netns: nsPath });
    await run(['ip', 'link', 'set', 'va', 'up'], { netns: nsPath });
    await run(['ip', 'link', 'add', 'vc', 'type', 'veth', 'peer', 'name', 'vd'], { netns: nsPath });
    // Put vb in a child namespace so a ping crosses the veth for real.
    await createNetns(`${ns}-peer`);
    await run(['ip', 'link', 'set', 'vb', 'netns', `${ns}-peer`], { netns: nsPath });
    await run(['ip', 'addr', 'add', '192.0.2.2/24', 'dev', 'vb'], { netns: `/run/netns/${ns}-peer` });
    await run(['ip', 'link', 'set', 'vb', 'up'], { netns: `/run/netns/${ns}-peer` });
  });

  after(() => {
    deleteNetnsSync(`${ns}-peer`);
    deleteNetnsSync(ns);
  });

  test('an attached program runs: its counter grows while we ping through the veth', async () => {
    using obj = BpfObject.open(COUNTER_OBJ);
    obj.load();
    using counters = obj.map('lt_counters', u32, counterValue);
    using ingress = obj.program('count_ingress');
    using egress = obj.program('count_egress');

    const a = attachTc({ ifname: 'va', netns: nsPath, direction: 'ingress', program: ingress });
    const b = attachTc({ ifname: 'va', netns: nsPath, direction: 'egress', program: egress });
    assert.equal(a.progId, ingress.id);
    assert.ok(a.createdHook);
    assert.equal(b.createdHook, false);
    assert.deepEqual(
      listTc({ ifname: 'va', netns: nsPath }, 'ingress').map((f) => f.progId),
      [ingress.id],
    );

    await run(['ping', '-c', '3', '-i', '0.2', '-W', '2', '192.0.2.2'], { netns: nsPath });
    const rx = counters.lookup(0)!;
    const tx = counters.lookup(1)!;
    assert.ok(rx.packets >= 3n, `ingress counted ${rx.packets}`);
    assert.ok(tx.packets >= 3n, `egress counted ${tx.packets}`);

    // Replace in place: same handle and priority, new program; no gap in the hook.
    const replaced = attachTc({ ifname: 'va', netns: nsPath, direction: 'ingress', program: egress });
    assert.equal(replaced.progId, egress.id);
    assert.deepEqual(
      listTc({ ifname: 'va', netns: nsPath }, 'ingress').map((f) => f.progId),
      [egress.id],
    );

    b.detach();
    a.detach(); // created the hook; removes it once both directions are empty
    assert.deepEqual(listTc({ ifname: 'va', netns: nsPath }, 'ingress'), []);
    assert.deepEqual(listTc({ ifname: 'va', netns: nsPath }, 'egress'), []);
    const qdiscs = (await run(['tc', 'qdisc', 'show', 'dev', 'va'], { netns: nsPath })).stdout;
    assert.doesNotMatch(qdiscs, /clsact/);
    detachTc({ ifname: 'va', netns: nsPath, direction: 'ingress' }); // already gone: no error
  });

  test('withNetns switches the calling thread and always switches back', () => {
    const here = ifIndex({ ifname: 'lo' });
    const inside = withNetns(nsPath, () => ifIndex({ ifname: 'vc' }));
    assert.ok(inside > 0);
    assert.throws(() => ifIndex({ ifname: 'vc' }), /ENODEV/);
    assert.throws(() => withNetns(nsPath, () => Promise.resolve(1)), /synchronous/);
    assert.equal(ifIndex({ ifname: 'lo' }), here);
  });
});

describe('bad input: a clear error and nothing left behind', () => {
  test('a missing file', () => {
    assert.throws(
      () => BpfObject.open('/nonexistent/bvcni.o'),
      (e: unknown) => e instanceof BpfError && e.code === 'ENOENT' && /nonexistent\/bvcni\.o/.test(e.message),
    );
  });

  test('a file that is not ELF', () => {
    assert.throws(
      () => BpfObject.open('package.json'),
      (e: unknown) => e instanceof BpfError && e.code === 'ENOEXEC' && /not an ELF file/.test(e.message),
    );
  });

  test('a program the verifier rejects: named, with the verifier log, nothing pinned', () => {
    const dir = join(pinRoot, 'reject');
    const obj = BpfObject.open(REJECT_OBJ, { pinDir: dir });
    try {
      assert.throws(
        () => obj.load(),
        (e: unknown) =>
          e instanceof VerifierError &&
          e.program === 'unchecked_lookup' &&
          /map_value_or_null/.test(e.log) &&
          /invalid mem access/.test(e.message),
      );
    } finally {
      obj.close();
    }
    assert.deepEqual(existsSync(dir) ? readdirSync(dir) : [], []);
  });

  test('a nonexistent interface', () => {
    using obj = BpfObject.open(COUNTER_OBJ);
    obj.load();
    using prog = obj.program('count_ingress');
    assert.throws(
      () => attachTc({ ifname: `${prefix}x`, direction: 'ingress', program: prog }),
      (e: unknown) => e instanceof BpfError && e.code === 'ENODEV' && e.message.includes(`${prefix}x`),
    );
  });

  test('a namespace path that does not exist', () => {
    using obj = BpfObject.open(COUNTER_OBJ);
    obj.load();
    using prog = obj.program('count_ingress');
    assert.throws(
      () => attachTc({ ifname: 'lo', netns: `/run/netns/${prefix}-missing`, direction: 'ingress', program: prog }),
      (e: unknown) => e instanceof BpfError && e.code === 'ENOENT' && e.message.includes(`${prefix}-missing`),
    );
    // Nothing was attached in the root namespace's loopback.
    assert.equal(listTc({ ifname: 'lo' }, 'ingress').filter((f) => f.progId === prog.id).length, 0);
  });
});

describe('batch delete', () => {
  test('deletes what exists, skips what does not, in one call where the kernel can', () => {
    using obj = BpfObject.open(COUNTER_OBJ);
    obj.load();
    using hash = obj.map('lt_hash', roundtripKey, counterValue);
    for (let i = 0; i < 100; i++) hash.update({ a: i, b: 0 }, { packets: 1n, bytes: 1n });
    // Present, then missing (the kernel's batch stops there), then present again.
    const keys = [0, 1, 2, 1000, 3, 4].map((a) => ({ a, b: 0 }));
    assert.equal(hash.deleteBatch(keys), 5);
    assert.equal([...hash.keys()].length, 95);
    assert.equal(hash.lookup({ a: 3, b: 0 }), undefined);
    assert.deepEqual(hash.lookup({ a: 5, b: 0 }), { packets: 1n, bytes: 1n });
    assert.equal(hash.deleteBatch([]), 0);
  });
});
