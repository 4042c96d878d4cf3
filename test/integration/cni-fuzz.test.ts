// ≥ 5,000 random and mutated configs and environments. Most run in-process
// (the real handler and services, inside a node namespace of our own, so the
// ones that get far enough touch the real kernel); a few hundred go through
// the installed executable. Every answer is a valid result or a valid error
// JSON, no stack trace; afterwards nothing is left behind.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { TestNode } from '../fixtures/cni/harness.js';
import { generate, verdict, type FuzzTarget } from '../fixtures/cni/fuzz.js';
import { rng } from '../support/rng.js';

const IN_PROCESS = 5000;
const THROUGH_BINARY = 300;
const WORKER = fileURLToPath(new URL('../fixtures/cni/fuzz-worker.ts', import.meta.url));

describe('bvcni fuzz', { timeout: 300_000 }, () => {
  let node: TestNode;
  let target: FuzzTarget;
  before(async () => {
    node = await TestNode.create();
    const pods: string[] = [];
    for (let i = 0; i < 6; i++) pods.push(await node.pod(`z${i}`));
    target = { base: node.conf('1.1.0'), pods, emptyPinDir: `${node.pinDir}-empty` };
  });
  after(async () => {
    await node?.destroy();
  });

  async function assertNoLeaks(): Promise<void> {
    assert.deepEqual(node.reservations(), [], 'no reservation left');
    assert.deepEqual(await node.hostVeths(), [], 'no veth left');
    assert.deepEqual(await node.endpoints(), [], 'no endpoint entry left');
  }

  test(`${IN_PROCESS} cases in-process in the node namespace`, async () => {
    const seed = Number(process.env.BVCNI_FUZZ_SEED ?? Date.now() % 1e9);
    const r = spawnSync('/usr/bin/nsenter', [`--net=${node.ns}`, '--', process.execPath, '--import', 'tsx', WORKER, JSON.stringify({ seed, count: IN_PROCESS, target })], {
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    });
    assert.equal(r.status, 0, `worker failed (seed ${seed}): ${r.stderr.slice(-2000)}`);
    const s = JSON.parse(r.stdout.trim().split('\n').pop()!) as { byCode: Record<string, number>; added: number; failureCount: number; failures: unknown[] };
    console.log(`# seed ${seed}: ${JSON.stringify(s.byCode)}, ${s.added} successful ADDs`);
    assert.deepEqual(s.failures, [], `seed ${seed}: ${s.failureCount} bad answers`);
    assert.ok(s.added >= 20, `the fuzzer reached the kernel (${s.added} successful ADDs)`);
    await assertNoLeaks();
  });

  test(`${THROUGH_BINARY} cases through the installed executable`, async () => {
    const seed = Number(process.env.BVCNI_FUZZ_SEED ?? Date.now() % 1e9) + 1;
    const rand = rng(seed);
    const cases = Array.from({ length: THROUGH_BINARY }, () => generate(target, rand));
    const bad: string[] = [];
    const added: typeof cases = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      for (;;) {
        const c = cases[next++];
        if (!c) return;
        const out = await node.exec({ command: c.env.CNI_COMMAND ?? '', stdin: c.stdin, env: { ...c.env } });
        const why = verdict(c, out.stdout, out.code);
        if (why) bad.push(`${why} <- ${JSON.stringify(c).slice(0, 300)}`);
        if (out.code === 0 && c.env.CNI_COMMAND === 'ADD') added.push(c);
      }
    };
    // One at a time. Random cases share pod namespaces and interface names, and
    // include GC: run concurrently they race in ways no runtime produces (one
    // sandbox namespace per pod; GC serialized against ADD), so a DEL of one
    // case could delete the interface another just created. This test is about
    // every answer being valid; concurrency has its own tests.
    await worker();
    assert.deepEqual(bad, [], `seed ${seed}`);
    for (const a of added) {
      const d = await node.exec({ command: 'DEL', stdin: a.stdin, env: { ...a.env, CNI_COMMAND: 'DEL' } });
      assert.equal(d.code, 0, d.stdout);
    }
    await assertNoLeaks();
  });
});
