import { test } from 'node:test';
import assert from 'node:assert/strict';
import { portsCovered } from '../../src/dataplane/node.js';

test('the NAT range counts as reserved when the kernel reports it merged with neighbours', () => {
  assert.ok(portsCovered('61000-65000', 61000, 65000));
  assert.ok(portsCovered('61000-65535', 61000, 65000), 'merged with an adjacent range');
  assert.ok(portsCovered('30000,60000-62000,62001-65000', 61000, 65000), 'split across adjacent ranges');
  assert.ok(!portsCovered('', 61000, 65000));
  assert.ok(!portsCovered('61000-64999', 61000, 65000), 'one port short');
  assert.ok(!portsCovered('61000-62000,62002-65000', 61000, 65000), 'a hole');
  assert.ok(portsCovered('61000', 61000, 61000), 'a single port');
});
