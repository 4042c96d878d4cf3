// The policy map keys src/dataplane/policy.ts writes (through abi.h's struct)
// are the bytes src/policy/layout.ts proposes and the property test checks by
// the LPM rule: the compiler's tables and the dataplane's map agree byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { policyKey } from '../../src/dataplane/abi.js';
import { policyEntryKey as dpEntryKey, policyLookupKey as dpLookupKey } from '../../src/dataplane/policy.js';
import { policyEntryKey, policyLookupKey } from '../../src/policy/layout.js';
import { portRangeToPrefixes, PROTO_ANY } from '../../src/policy/compile.js';

const encode = (k: ReturnType<typeof dpEntryKey>): Buffer => {
  const b = Buffer.alloc(policyKey.size);
  policyKey.encode(k, b);
  return b;
};

test('entry keys: every protocol, every port, exact ports and range blocks, both directions', () => {
  const entries = [
    { peer: 0, proto: PROTO_ANY, port: 0, portPrefix: 0 },
    { peer: 1, proto: PROTO_ANY, port: 0, portPrefix: 0 },
    { peer: 300, proto: 6, port: 0, portPrefix: 0 },
    { peer: 0x01020304, proto: 17, port: 53, portPrefix: 16 },
    ...portRangeToPrefixes(1, 65535).map((b) => ({ peer: 257, proto: 132, port: b.port, portPrefix: b.prefix })),
    ...portRangeToPrefixes(8080, 8095).map((b) => ({ peer: 258, proto: 6, port: b.port, portPrefix: b.prefix })),
  ];
  for (const dir of ['ingress', 'egress'] as const)
    for (const e of entries) assert.deepEqual(encode(dpEntryKey('10.244.1.7', dir, e)), policyEntryKey('10.244.1.7', dir, e), JSON.stringify({ dir, e }));
});

test('lookup keys are the same 96-bit keys', () => {
  for (const [id, proto, port] of [
    [0, 6, 80],
    [2, 17, 65535],
    [0xfffffffe, 1, 0],
  ] as const)
    assert.deepEqual(encode(dpLookupKey('10.244.1.7', 'egress', id, proto, port)), policyLookupKey('10.244.1.7', 'egress', id, proto, port));
});

test('a port prefix out of range is refused', () => {
  assert.throws(() => dpEntryKey('10.244.1.7', 'ingress', { peer: 0, proto: 6, port: 1, portPrefix: 17 }), /0\.\.16/);
});
