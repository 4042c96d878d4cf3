// The list splitter of src/kube/json-items.ts: every element of `items`
// handed out on its own and equal to what JSON.parse of the whole document
// gives, wherever the chunks are cut; anything JSON.parse rejects is rejected.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ListItemSplitter } from '../../src/kube/json-items.js';

function split(chunks: Buffer[]): { items: unknown[]; doc: unknown; streamed: boolean } {
  const items: unknown[] = [];
  const s = new ListItemSplitter((item, index) => {
    assert.equal(index, items.length);
    items.push(item);
  });
  for (const c of chunks) s.write(c);
  const { doc, streamed } = s.end();
  return { items, doc, streamed };
}

/** The same document cut at the given offsets. */
function cut(text: string, at: number[]): Buffer[] {
  const b = Buffer.from(text);
  const points = [0, ...at, b.length];
  return points.slice(1).map((p, i) => b.subarray(points[i]!, p));
}

/** Deterministic pseudo-random cut points (LCG), so a failure can be replayed. */
function randomCuts(len: number, seed: number, count: number): number[] {
  let x = seed;
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out.push(x % len);
  }
  return [...new Set(out)].sort((a, b) => a - b);
}

// Strings full of what the scanner must not take for structure.
const TRICKY = JSON.stringify({
  kind: 'NodeList',
  apiVersion: 'v1',
  metadata: { resourceVersion: '123', continue: 'eyJyIjoxfQ', note: 'a "quoted" } ] , items: [' },
  items: [
    { metadata: { name: 'n{1}', annotations: { x: '{"items":[1,2]}', y: '\\', z: '\\"', w: 'back\\\\slash]' } } },
    { metadata: { name: 'ünï-cødé ✓ 🚀', labels: { 'a/b': '[[[', c: '}}}' } }, spec: { podCIDRs: ['10.0.0.0/24'] } },
    { status: { images: [{ names: ['r@sha256:ab', 'r:1'], sizeBytes: 123 }], n: -1.5e3, t: true, f: false, z: null } },
    'a "string" item, with \\ and ]',
    42,
    [],
    {},
  ],
});

describe('ListItemSplitter', () => {
  test('hands out each element of items, equal to JSON.parse, and the rest of the document', () => {
    const whole = JSON.parse(TRICKY) as { items: unknown[]; metadata: unknown };
    const { items, doc, streamed } = split([Buffer.from(TRICKY)]);
    assert.equal(streamed, true);
    assert.deepEqual(items, whole.items);
    const rest = doc as { items: unknown[]; metadata: unknown; kind: string };
    assert.equal(rest.items.length, whole.items.length);
    assert.deepEqual(rest.metadata, whole.metadata);
    assert.equal(rest.kind, 'NodeList');
  });

  test('a chunk boundary at every byte gives the same result', () => {
    const whole = JSON.parse(TRICKY) as { items: unknown[] };
    const len = Buffer.byteLength(TRICKY);
    for (let at = 1; at < len; at++) {
      const { items } = split(cut(TRICKY, [at]));
      assert.deepEqual(items, whole.items, `cut at ${at}`);
    }
    // One byte at a time: every escape, quote and multi-byte character split.
    const bytes = Buffer.from(TRICKY);
    assert.deepEqual(split([...bytes].map((b) => Buffer.from([b]))).items, whole.items);
  });

  test('many random cuts of a pretty-printed document with whitespace everywhere', () => {
    const text = JSON.stringify(JSON.parse(TRICKY), null, '\t').replace(/\n/g, '\r\n');
    const whole = JSON.parse(text) as { items: unknown[] };
    for (let seed = 1; seed <= 50; seed++) {
      const { items } = split(cut(text, randomCuts(Buffer.byteLength(text), seed, 20)));
      assert.deepEqual(items, whole.items, `seed ${seed}`);
    }
  });

  test('an empty list streams no element', () => {
    const { items, doc, streamed } = split([Buffer.from('{"kind":"NodeList","items":[],"metadata":{}}')]);
    assert.equal(streamed, true);
    assert.deepEqual(items, []);
    assert.deepEqual((doc as { items: unknown[] }).items, []);
  });

  test('only the top-level items key streams; nested ones and string values named items do not', () => {
    const text = '{"kind":"items","metadata":{"items":[1,2]},"x":["items",{"items":[3]}],"items":[{"a":"items"}]}';
    const { items, doc } = split(cut(text, [9, 30, 60]));
    assert.deepEqual(items, [{ a: 'items' }]);
    const rest = doc as { metadata: unknown; x: unknown; kind: string };
    assert.deepEqual(rest.metadata, { items: [1, 2] });
    assert.deepEqual(rest.x, ['items', { items: [3] }]);
    assert.equal(rest.kind, 'items');
  });

  test('documents without a recognisable top-level items array are parsed whole, not streamed', () => {
    for (const text of ['{"\\u0069tems":[{"a":1}]}', '[{"items":[1]}]', '{"items":{"a":1}}', '{"items":null}', '"items"', '{"kind":"Status","code":200}']) {
      const { items, doc, streamed } = split(cut(text, [3]));
      assert.equal(streamed, false, text);
      assert.deepEqual(items, [], text);
      assert.deepEqual(doc, JSON.parse(text), text);
    }
  });

  test('malformed documents throw, wherever they are cut', () => {
    const bad = [
      '', // nothing
      '{"items":[{"a":1}]', // unclosed object
      '{"items":[{"a":1}', // unclosed array
      '{"items":[{"a":"x}]}', // unclosed string
      '{"items":[{"a" 1}]}', // bad element
      '{"items":[{"a":1},]}', // trailing comma
      '{"items":[,{"a":1}]}', // leading comma
      '{"items":[{"a":1} {"b":2}]}', // missing comma
      '{"items":[1 2]}', // two values in one element
      '{"items":[{"a":1]]}', // mismatched brackets in an element
      '{"items":[{"a":1}]}}', // unbalanced close
      '{"items":[{"a":1}]} x', // trailing garbage
      '{"items":[{"a":1}]}{"items":[{"b":2}]}', // two documents
      '{"items":[{"a":1}],"items":[{"b":2}]}', // duplicate items
      '{"items" [{"a":1}]}', // no colon
      '{"kind":"NodeList" "items":[]}', // missing comma at the top
      '{"items":[{"a":"\u0001"}]}', // control character in a string
      '{"items":[{"a":tru}]}', // bad literal
      '<html>Bad gateway</html>',
    ];
    for (const text of bad) {
      const len = Buffer.byteLength(text);
      for (const at of len > 1 ? [[], [1], [Math.floor(len / 2)], [len - 1]] : [[]]) {
        assert.throws(() => split(cut(text, at)), Error, `${JSON.stringify(text)} cut at ${at}`);
      }
    }
  });

  test('every truncation of a valid list throws', () => {
    const b = Buffer.from(TRICKY);
    for (let len = 0; len < b.length; len++) {
      assert.throws(() => split([b.subarray(0, len)]), Error, `truncated to ${len} bytes`);
    }
  });

  test('after an error, further writes and end() throw the same error', () => {
    const s = new ListItemSplitter(() => undefined);
    assert.throws(() => s.write(Buffer.from('{"items":[{"a" 1},')), /items\[0\] is not JSON/);
    assert.throws(() => s.write(Buffer.from('{"b":2}]}')), /items\[0\] is not JSON/);
    assert.throws(() => s.end(), /items\[0\] is not JSON/);
  });

  test('random documents, randomly cut, match JSON.parse', () => {
    let x = 12345;
    const rnd = (k: number): number => {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      return (x >>> 8) % k;
    };
    const alphabet = ['a', '"', '\\', '{', '}', '[', ']', ',', ':', ' ', 'é', '🚀', '\n', 'items'];
    const str = (): string => Array.from({ length: rnd(8) }, () => alphabet[rnd(alphabet.length)]!).join('');
    const value = (depth: number): unknown => {
      switch (depth > 3 ? rnd(3) : rnd(6)) {
        case 0: return str();
        case 1: return rnd(1000) - 500;
        case 2: return [true, false, null][rnd(3)];
        case 3: return Array.from({ length: rnd(4) }, () => value(depth + 1));
        default: return Object.fromEntries(Array.from({ length: rnd(4) }, () => [str(), value(depth + 1)]));
      }
    };
    for (let doc = 0; doc < 200; doc++) {
      const whole = { kind: str(), metadata: { continue: str() }, items: Array.from({ length: rnd(6) }, () => value(0)) };
      const text = JSON.stringify(whole, null, rnd(2) ? 1 : undefined);
      const { items, doc: rest } = split(cut(text, randomCuts(Buffer.byteLength(text), doc + 1, rnd(10))));
      assert.deepEqual(items, whole.items, text);
      assert.deepEqual((rest as { metadata: unknown }).metadata, whole.metadata);
    }
  });
});
