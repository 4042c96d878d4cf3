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
// `make test` runs all of it; `make test-netpol` runs it alone, BVCNI_NETPOL_ONLY=<regex>
// a few cases.
//
// Through Services too, as upstream probes (kubernetes test/e2e/network/netpol: one
// Service per pod, probed by its name or ClusterIP): every pod also gets a ClusterIP
// with kube-proxy-like DNAT on every node (test/support/netpol-e2e.ts), and every
// truth table is probed through the ClusterIPs (upstream's path: DNAT in the client
// node's host stack, then routed to the backend) as well as directly (bvcni's own fast
// path), TCP, UDP and SCTP; the summary prints both counts. The harness proves that
// mode's probes too: with no policy every pod answers every other through its ClusterIP,
// naming itself; each node reaches every pod through it (the output chain, and proof
// that the kernel's NAT translates SCTP); a ClusterIP no rule translates, or one
// translated to another pod, never counts as "connected". BVCNI_NETPOL_SERVICES=0
// probes pod IPs only (the suite's runtime before), =only ClusterIPs only (debugging).
// Both ways take about 5 min here (2.5 min for pod IPs alone).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { ALL_PODS, expandExpect, loadFixture, loadSuites, SERVED_PORTS, SERVED_PROTOCOLS, type ConformanceCase } from '../support/netpol.js';
import { compareMatrix, NetpolCluster, PROBE_VIAS, verdict, type ProbeResult, type ProbeVia } from '../support/netpol-e2e.js';

interface Upstream {
  suites: { suite: string; cases: { name: string; ported: boolean }[] }[];
}

const suites = loadSuites();
const upstreamTotal = loadFixture<Upstream>('upstream.json').suites.reduce((n, s) => n + s.cases.length, 0);
const ported = suites.reduce((n, s) => n + s.cases.length, 0);
/** BVCNI_NETPOL_ONLY=<regex>: only the cases whose name matches (debugging; the count says how many ran). */
const only = process.env.BVCNI_NETPOL_ONLY ? new RegExp(process.env.BVCNI_NETPOL_ONLY) : undefined;
/** BVCNI_NETPOL_SERVICES: which ways the truth tables are probed (default both). */
const servicesEnv = process.env.BVCNI_NETPOL_SERVICES ?? '1';
if (!['0', '1', 'only'].includes(servicesEnv)) throw new Error(`BVCNI_NETPOL_SERVICES must be 0, 1 or only: ${JSON.stringify(servicesEnv)}`);
const vias: readonly ProbeVia[] = servicesEnv === '1' ? PROBE_VIAS : servicesEnv === 'only' ? ['service'] : ['pod'];
const services = vias.includes('service');
const allCases = suites.flatMap((s) => s.cases.map((c) => ({ file: s.file, c }))).filter(({ c }) => !only || only.test(c.name));

/** Every truth table of the case is "all connected": meaningful without enforcement. */
const allConnected = (c: ConformanceCase): boolean => c.steps.every((s) => s.probes.every((p) => [...expandExpect(p.expect).values()].every(Boolean)));

describe('NetworkPolicy conformance with real traffic, 2 simulated nodes', { timeout: 30 * 60_000 }, () => {
  const np = new NetpolCluster({ prefix: 'npe', services });
  /** Per way of probing: the cases probed that way, and how many of them matched every truth table that way. */
  const casesBy = { pod: { ran: 0, passed: 0 }, service: { ran: 0, passed: 0 } };
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
  for (const via of vias)
    test(`with no policy every pod reaches every other on 80 and 81, TCP, UDP and SCTP, answered by that very pod, via ${via === 'pod' ? 'pod IPs' : 'ClusterIPs'}`, async () => {
      for (const proto of SERVED_PROTOCOLS)
        for (const port of SERVED_PORTS) {
          const { observed } = await np.matrix(proto, port, undefined, via);
          const mismatch = compareMatrix(observed, expandExpect([]));
          assert.equal(mismatch, undefined, `${proto}/${port} via ${via}: ${mismatch}`);
        }
    });

  for (const via of vias)
    test(`the probes can fail via ${via === 'pod' ? 'pod IPs' : 'ClusterIPs'}: a port nothing serves is blocked on all three protocols, and the comparison reports it`, async () => {
      for (const proto of SERVED_PROTOCOLS) {
        // Through a ClusterIP, 82 is a port no rule translates: it must not reach anything either.
        const { observed } = await np.matrix(proto, 82, expandExpect(['* -> * deny']), via);
        assert.equal(compareMatrix(observed, expandExpect(['* -> * deny'])), undefined, `${proto}/82 via ${via} answered`);
        const report = compareMatrix(observed, expandExpect([]));
        assert.match(report ?? '', /x\/a -> y\/b: expected connected/, `${proto}: a blocked matrix against "all connected" must be reported`);
      }
    });

  if (services)
    test("each node reaches every pod through its ClusterIP on 80 and 81, TCP, UDP and SCTP (the output chain; the kernel's NAT translates SCTP)", async () => {
      for (const node of np.c.nodes) {
        const targets = ALL_PODS.flatMap((to) => SERVED_PROTOCOLS.flatMap((proto) => SERVED_PORTS.map((port) => ({ to, t: { ip: np.targetIp(to, 'service'), port, proto } }))));
        const results = await np.probeFromNode(node, targets.map((x) => x.t), 3000);
        const wrong = targets.map((x, i) => ({ ...x, r: results[i]! })).filter(({ to, r }) => !verdict(r, to));
        assert.deepEqual(wrong.map(({ to, t, r }) => `${node.name} -> ${to} (${t.ip}) ${t.proto}/${t.port}: ${JSON.stringify(r)}`), []);
      }
    });

  if (services)
    test('a ClusterIP no rule translates is never "connected", nor one translated to another pod than the one probed for', async () => {
      const [named, other] = [ALL_PODS[0]!, ALL_PODS[1]!];
      const ways = SERVED_PROTOCOLS.flatMap((proto) => SERVED_PORTS.map((port) => ({ proto, port })));
      // From a pod of each node, all at once: each batch holds the control, the pod's real ClusterIP.
      await Promise.all(
        ALL_PODS.slice(2, 4).map(async (from) => {
          const results = await np.probeFrom(
            from,
            ways.flatMap(({ proto, port }) => [np.unmappedClusterIp, np.decoyClusterIp, np.targetIp(named, 'service')].map((ip) => ({ ip, port, proto }))),
          );
          ways.forEach(({ proto, port }, i) => {
            const [unmapped, decoy, control] = results.slice(3 * i, 3 * i + 3) as [ProbeResult, ProbeResult, ProbeResult];
            const what = `${from}, ${proto}/${port}`;
            assert.ok(verdict(control, named), `control: ${what} reaches ${named} through its ClusterIP: ${JSON.stringify(control)}`);
            assert.equal(unmapped.ok, false, `${what}: the unmapped ClusterIP ${np.unmappedClusterIp} answered: ${JSON.stringify(unmapped)}`);
            // The decoy does reach a pod — the wrong one — so only the responder's name tells.
            assert.ok(decoy.ok && decoy.server === other, `${what}: the decoy ClusterIP: expected an answer from ${other}, got ${JSON.stringify(decoy)}`);
            assert.equal(verdict(decoy, named), false, `an answer from ${other} must not count as ${named} "connected"`);
          });
        }),
      );
    });

  for (const { file, c } of allCases) {
    test(`${file}: ${c.name}`, async (t) => {
      if (!enforcing && !allConnected(c)) {
        skipped.push(c.name);
        t.skip(`needs the enforcing dataplane (${np.mode.enforcing ? '' : np.mode.why})`);
        return;
      }
      ran.push(c.name);
      for (const via of vias) casesBy[via].ran++;
      const r = await np.runCase(c, vias).catch((e: unknown) => {
        // Which ways failed: the error names each differing matrix "via pod IPs" or "via ClusterIPs".
        const text = String((e as Error).message);
        for (const via of vias) if (!text.includes(via === 'pod' ? 'via pod IPs' : 'via ClusterIPs')) casesBy[via].passed++;
        throw e;
      });
      passed.push(c.name);
      for (const via of vias) casesBy[via].passed++;
      t.diagnostic(`${r.steps} steps, ${r.probes} matrices (${vias.map((v) => `${r.byVia[v]} via ${v}`).join(', ')}), ${r.retried} probes answered only when retried`);
    });
  }

  test('how many upstream cases ran with real traffic', (t) => {
    const s = ((performance.now() - t0) / 1000).toFixed(0);
    const ways = (['pod', 'service'] as const)
      .map((v) =>
        casesBy[v].ran > 0
          ? `${v === 'pod' ? 'via pod IPs' : 'via ClusterIPs'}: ${casesBy[v].ran} ran, ${casesBy[v].passed} passed`
          : `${v === 'pod' ? 'via pod IPs' : 'via ClusterIPs'}: not run (BVCNI_NETPOL_SERVICES=${servicesEnv})`,
      )
      .join('; ');
    const line =
      `NetworkPolicy conformance with real traffic: ported ${ported} of ${upstreamTotal} upstream cases, ${ran.length} ran, ${passed.length} passed ` +
      `(${np.mode.enforcing ? 'enforcing dataplane' : `not enforcing: ${np.mode.why}; ${skipped.length} cases need it`}); ${ways}; ` +
      `${np.stats.probes} probes, ${np.stats.retried} answered only when retried, ${s} s`;
    t.diagnostic(line);
    console.log(line);
    assert.equal(ran.length + skipped.length, allCases.length);
    if (enforcing && !only) assert.equal(ran.length, ported, 'with the enforcing dataplane every case runs');
  });
});
