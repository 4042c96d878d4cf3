// The upstream NetworkPolicy conformance cases (test/fixtures/netpol) with real
// traffic, on 2 simulated nodes running bvcnid --network-policy against the
// simulator's API server: every step's whole 9x9 truth table, probed on TCP, UDP
// or SCTP (test/support/netpol-e2e.ts). Before running any case, the harness
// proves its probes: with no policy every pod answers every other on 80 and 81
// with all three protocols (same node and across nodes), a port nothing serves is
// never "connected", and a matrix that differs from its truth table is reported.
//
// Without the enforcing dataplane (no bvcni_policy map pinned, or bvcnid not filling it) only the cases whose
// every truth table is "all connected" run; the count is printed either way.
// The whole suite takes about 2.5 min here (under other jobs' load), so `make test`
// runs all of it; `make test-netpol` runs it alone, BVCNI_NETPOL_ONLY=<regex> a few cases.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { ALL_PODS, expandExpect, loadFixture, loadSuites, SERVED_PORTS, SERVED_PROTOCOLS, type ConformanceCase } from '../support/netpol.js';
import { compareMatrix, NetpolCluster } from '../support/netpol-e2e.js';

interface Upstream {
  suites: { suite: string; cases: { name: string; ported: boolean }[] }[];
}

const suites = loadSuites();
const upstreamTotal = loadFixture<Upstream>('upstream.json').suites.reduce((n, s) => n + s.cases.length, 0);
const ported = suites.reduce((n, s) => n + s.cases.length, 0);
/** BVCNI_NETPOL_ONLY=<regex>: only the cases whose name matches (debugging; the count says how many ran). */
const only = process.env.BVCNI_NETPOL_ONLY ? new RegExp(process.env.BVCNI_NETPOL_ONLY) : undefined;
const allCases = suites.flatMap((s) => s.cases.map((c) => ({ file: s.file, c }))).filter(({ c }) => !only || only.test(c.name));

/** Every truth table of the case is "all connected": meaningful without enforcement. */
const allConnected = (c: ConformanceCase): boolean => c.steps.every((s) => s.probes.every((p) => [...expandExpect(p.expect).values()].every(Boolean)));

describe('NetworkPolicy conformance with real traffic, 2 simulated nodes', { timeout: 30 * 60_000 }, () => {
  const np = new NetpolCluster({ prefix: 'npe' });
  let enforcing = false;
  let t0 = 0;
  const ran: string[] = [];
  const passed: string[] = [];
  const skipped: string[] = [];

  before(async () => {
    t0 = performance.now();
    await np.start();
    enforcing = np.enforcing;
  });
  after(async () => {
    await np.teardown();
  });

  test('the pods are spread: same-node and cross-node peers both occur', () => {
    const nodeOf = (p: string): string => np.pods.get(p)!.node.name;
    const pairs = ALL_PODS.flatMap((a) => ALL_PODS.filter((b) => b !== a).map((b) => nodeOf(a) === nodeOf(b)));
    assert.ok(pairs.some((same) => same) && pairs.some((same) => !same));
    assert.equal(new Set(ALL_PODS.map((p) => np.pods.get(p)!.sim.ip)).size, ALL_PODS.length);
  });

  // The control for every case: a probe that cannot reach its target would pass any "blocked".
  test('with no policy every pod reaches every other on 80 and 81, TCP, UDP and SCTP, answered by that very pod', async () => {
    for (const proto of SERVED_PROTOCOLS)
      for (const port of SERVED_PORTS) {
        const { observed } = await np.matrix(proto, port);
        const mismatch = compareMatrix(observed, expandExpect([]));
        assert.equal(mismatch, undefined, `${proto}/${port}: ${mismatch}`);
      }
  });

  test('the probes can fail: a port nothing serves is blocked on all three protocols, and the comparison reports it', async () => {
    for (const proto of SERVED_PROTOCOLS) {
      const { observed } = await np.matrix(proto, 82, expandExpect(['* -> * deny']));
      assert.equal(compareMatrix(observed, expandExpect(['* -> * deny'])), undefined, `${proto}/82 answered`);
      const report = compareMatrix(observed, expandExpect([]));
      assert.match(report ?? '', /x\/a -> y\/b: expected connected/, `${proto}: a blocked matrix against "all connected" must be reported`);
    }
  });

  for (const { file, c } of allCases) {
    test(`${file}: ${c.name}`, async (t) => {
      if (!enforcing && !allConnected(c)) {
        skipped.push(c.name);
        t.skip(`needs the enforcing dataplane (${np.mode.enforcing ? '' : np.mode.why})`);
        return;
      }
      ran.push(c.name);
      const r = await np.runCase(c);
      passed.push(c.name);
      t.diagnostic(`${r.steps} steps, ${r.probes} matrices, ${r.retried} probes answered only when retried`);
    });
  }

  test('how many upstream cases ran with real traffic', (t) => {
    const s = ((performance.now() - t0) / 1000).toFixed(0);
    const line =
      `NetworkPolicy conformance with real traffic: ported ${ported} of ${upstreamTotal} upstream cases, ${ran.length} ran, ${passed.length} passed ` +
      `(${np.mode.enforcing ? 'enforcing dataplane' : `not enforcing: ${np.mode.why}; ${skipped.length} cases need it`}), ` +
      `${np.stats.probes} probes, ${np.stats.retried} answered only when retried, ${s} s`;
    t.diagnostic(line);
    console.log(line);
    assert.equal(ran.length + skipped.length, allCases.length);
    if (enforcing && !only) assert.equal(ran.length, ported, 'with the enforcing dataplane every case runs');
  });
});
