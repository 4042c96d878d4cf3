import { test } from 'node:test';
import assert from 'node:assert/strict';
import { median, percentile } from '../../src/common/stats.js';

test('median of odd and even counts, unsorted input left unchanged', () => {
  const xs = [5, 1, 3];
  assert.equal(median(xs), 3);
  assert.deepEqual(xs, [5, 1, 3]);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.ok(Number.isNaN(median([])));
});

test('nearest-rank percentiles', () => {
  const xs = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1
  assert.equal(percentile(xs, 50), 50);
  assert.equal(percentile(xs, 99), 99);
  assert.equal(percentile(xs, 100), 100);
  assert.equal(percentile([7], 99), 7);
});
