// The upstream NetworkPolicy e2e cases (test/fixtures/netpol, see upstream.json)
// run against the model and against the compiler's tables: every step's whole
// 9x9 truth table, loopback excepted as upstream does. The compiled tables are
// looked up as a BPF program would (ipcache LPM, then the endpoint's entries), on
// the node of the source for egress and of the destination for ingress.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  compileNode,
  compiledAllowed,
  CompiledLookup,
  evaluate,
  IdentityAllocator,
  parseNetworkPolicy,
  PolicyError,
  StateIndex,
} from '../../src/policy/index.js';
import { ALL_PODS, expandExpect, formatTable, loadFixture, loadSuites, ModelCluster, NODES, podIp, protoNumber } from '../support/netpol.js';

interface Upstream {
  suites: { suite: string; cases: { name: string; ported: boolean; why?: string }[] }[];
  notCounted: { file: string; why: string }[];
}

const suites = loadSuites();
const upstream = loadFixture<Upstream>('upstream.json');

test('every upstream case is accounted for, and the count is printed', (t) => {
  let total = 0;
  let ported = 0;
  const left: string[] = [];
  for (const s of upstream.suites) {
    const mine = suites.find((x) => x.suite === s.suite);
    assert.ok(mine, `suite ${s.suite} has no fixture file`);
    for (const c of s.cases) {
      total++;
      const has = mine.cases.some((m) => m.name === c.name);
      if (c.ported) {
        assert.ok(has, `upstream case "${c.name}" (${s.suite}) is marked ported but is not in ${mine.file}`);
        ported++;
      } else left.push(`${s.suite}: ${c.name}: ${c.why ?? '?'}`);
    }
    for (const m of mine.cases) assert.ok(s.cases.some((c) => c.name === m.name), `${mine.file}: "${m.name}" is not an upstream case`);
  }
  t.diagnostic(`NetworkPolicy conformance: ported ${ported} of ${total} upstream cases (network_policy.go)`);
  for (const l of left) t.diagnostic(`left out: ${l}`);
  for (const n of upstream.notCounted) t.diagnostic(`not counted: ${n.file}: ${n.why}`);
  console.log(`NetworkPolicy conformance: ported ${ported} of ${total} upstream cases; left out: ${left.length ? left.join('; ') : 'none'}`);
  assert.equal(total, 48);
});

for (const suite of suites) {
  for (const c of suite.cases) {
    test(`${suite.file}: ${c.name}`, () => {
      const cluster = new ModelCluster();
      const allocator = new IdentityAllocator();
      c.steps.forEach((step, si) => {
        for (const a of step.apply) cluster.apply(a);
        const state = cluster.state();
        const idx = new StateIndex(state);
        const lookups = new Map(NODES.map((n) => [n.name, new CompiledLookup(compileNode(idx, n.name, { allocator }))]));
        for (const probe of step.probes) {
          const expected = expandExpect(probe.expect);
          const model = new Map<string, boolean>();
          const compiled = new Map<string, boolean>();
          for (const from of ALL_PODS)
            for (const to of ALL_PODS) {
              const k = `${from}>${to}`;
              const conn = { src: podIp(from), dst: podIp(to), protocol: protoNumber(probe.protocol), port: probe.port };
              // Upstream ignores loopback (its semantics differ between CNIs): so do we.
              const loop = from === to;
              model.set(k, loop ? expected.get(k)! : evaluate(idx, conn).allowed);
              compiled.set(k, loop ? expected.get(k)! : compiledAllowed(lookups, conn));
            }
          const where = `step ${si + 1}, ${probe.protocol}/${probe.port}`;
          assert.deepEqual(model, expected, `model, ${where}:\nexpected\n${formatTable(expected)}\nmodel (*: differs)\n${formatTable(model, expected)}`);
          assert.deepEqual(compiled, expected, `compiled, ${where}:\nexpected\n${formatTable(expected)}\ncompiled (*: differs)\n${formatTable(compiled, expected)}`);
        }
      });
    });
  }
}

interface Validation {
  refused: { why: string; spec: unknown; error: string }[];
  accepted: { why: string; spec: unknown }[];
}

test('the parser refuses what the API refuses, with the field and the reason', () => {
  const v = loadFixture<Validation>('api-validation.json');
  const wrap = (spec: unknown): unknown => ({ metadata: { name: 'p', namespace: 'x' }, spec });
  for (const r of v.refused)
    assert.throws(
      () => parseNetworkPolicy(wrap(r.spec)),
      (e: unknown) => e instanceof PolicyError && e.message.includes(r.error) && e.message.includes('NetworkPolicy x/p'),
      r.why,
    );
  for (const a of v.accepted) assert.doesNotThrow(() => parseNetworkPolicy(wrap(a.spec)), a.why);
});
