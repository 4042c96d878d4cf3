// collectGarbage (src/common/gc.ts): bvcnid calls it between its lists and its first
// policy compile; without --expose-gc on this process's command line it still collects.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import { collectGarbage } from '../../src/common/gc.js';

test('collectGarbage frees an unreachable large object, and keeps a reachable one', async () => {
  assert.equal((globalThis as { gc?: unknown }).gc, undefined, 'run without --expose-gc: the point is that it needs none');
  let big: string[] | undefined = Array.from({ length: 1000 }, (_, i) => `x${i}`.repeat(200));
  const kept = Array.from({ length: 10 }, (_, i) => ({ i }));
  const gone = new WeakRef(big);
  const stays = new WeakRef(kept);
  big = undefined;
  // A WeakRef's target lives until the end of the job that created or read it.
  await tick();
  collectGarbage();
  assert.equal(gone.deref(), undefined);
  assert.equal(stays.deref(), kept);
});
