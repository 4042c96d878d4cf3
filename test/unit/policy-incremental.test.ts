// Incremental compilation == full compilation, on random change sequences: a
// seeded random cluster (test/support/netpol-gen.ts) is fed to the
// IncrementalCompiler object by object, then changed step by step (pod labels,
// addresses, phases, nodes and deletions, address clashes, namespace labels,
// policies added, replaced and deleted, this node's addresses); after every
// flush the incremental state must equal compileNode over the same objects
// (same identity numbering), and the diffs applied one after another to an
// empty "map" must give exactly the full compilation's entries. A failure
// names its seed and step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  compileNode,
  diffNode as diffNodeFrom,
  IncrementalCompiler,
  parseNode,
  policyEntryKey,
  type CompiledNode,
  type Identity,
  type NodeDiff,
  type Pod,
} from '../../src/policy/index.js';
import { formatCidr } from '../../src/common/cidr.js';
import { Gen, labels, NS_LABELS, POD_LABELS, randomState } from '../support/netpol-gen.js';
import { rng } from '../support/rng.js';

function normIdent(i: Identity): unknown {
  return { id: i.id, kind: i.kind, namespace: i.namespace, labels: Object.entries(i.labels).sort(), cidr: i.cidrClass && formatCidr(i.cidrClass), named: [...i.namedPorts].sort() };
}

function assertSame(got: CompiledNode, want: CompiledNode, where: string): void {
  const ids = (c: CompiledNode): unknown[] => [...c.identities.values()].sort((a, b) => a.id - b.id).map(normIdent);
  assert.deepEqual(ids(got), ids(want), `${where}: identities`);
  assert.deepEqual(got.ipcache, want.ipcache, `${where}: ipcache`);
  assert.deepEqual([...got.endpoints.keys()].sort(), [...want.endpoints.keys()].sort(), `${where}: endpoints`);
  for (const [ip, ep] of want.endpoints) assert.deepEqual(got.endpoints.get(ip), ep, `${where}: endpoint ${ip}`);
}

/** The maps as a writer following the diffs would hold them: ipcache by prefix, policy keys by endpoint, isolation flags. */
class MapModel {
  readonly ipcache = new Map<string, number>();
  readonly keys = new Map<string, Set<string>>();
  readonly isolated = new Map<string, string>();
  apply(d: NodeDiff): void {
    for (const c of d.ipcacheDelete) assert.ok(this.ipcache.delete(formatCidr(c)), `delete of absent ipcache ${formatCidr(c)}`);
    for (const e of d.ipcacheUpsert) this.ipcache.set(formatCidr(e.cidr), e.identity);
    for (const [ip, ch] of d.endpoints) {
      if (ch === 'deleted') {
        this.keys.delete(ip);
        this.isolated.delete(ip);
        continue;
      }
      const set = this.keys.get(ip) ?? new Set<string>();
      for (const dir of ['ingress', 'egress'] as const) {
        for (const e of ch[dir].remove) assert.ok(set.delete(policyEntryKey(ip, dir, e).toString('hex')), 'remove of an absent entry');
        for (const e of ch[dir].add) {
          const k = policyEntryKey(ip, dir, e).toString('hex');
          assert.ok(!set.has(k), 'add of a present entry');
          set.add(k);
        }
      }
      this.keys.set(ip, set);
      this.isolated.set(ip, `${ch.ingress.isolated}/${ch.egress.isolated}`);
    }
  }
  assertEquals(c: CompiledNode, where: string): void {
    assert.deepEqual(new Map([...this.ipcache].sort()), new Map(c.ipcache.map((e) => [formatCidr(e.cidr), e.identity] as [string, number]).sort()), `${where}: map ipcache`);
    const want = new Map<string, Set<string>>();
    for (const [ip, ep] of c.endpoints) {
      const s = new Set<string>();
      for (const dir of ['ingress', 'egress'] as const) for (const e of ep[dir].entries) s.add(policyEntryKey(ip, dir, e).toString('hex'));
      want.set(ip, s);
      assert.equal(this.isolated.get(ip) ?? 'false/false', `${ep.ingress.isolated}/${ep.egress.isolated}`, `${where}: flags of ${ip}`);
    }
    for (const ip of new Set([...want.keys(), ...this.keys.keys()]))
      assert.deepEqual([...(this.keys.get(ip) ?? [])].sort(), [...(want.get(ip) ?? [])].sort(), `${where}: map entries of ${ip}`);
  }
}

const SEEDS = Number(process.env.BVP_INCR_SEEDS ?? 150);
const STEPS = 40;

test(`incremental compilation equals full compilation over ${SEEDS} random change sequences of ${STEPS} steps`, () => {
  let checks = 0;
  for (let seed = 5001; seed < 5001 + SEEDS; seed++) {
    const { state } = randomState(seed);
    const other = randomState(seed + 100_000).state; // objects to bring in
    const g = new Gen(rng(seed * 7 + 3));
    const node = state.nodes[0]!.name;
    const inc = new IncrementalCompiler(node);
    let nodes = state.nodes;
    for (const ns of state.namespaces) inc.setNamespace(ns);
    for (const p of state.pods) inc.setPod(p);
    for (const p of state.policies) inc.setPolicy(p);
    inc.setNodes(nodes);
    const maps = new MapModel();
    const check = (where: string): void => {
      const r = inc.flush();
      maps.apply(r.diff);
      const got = inc.snapshot();
      const want = compileNode(inc.state(nodes), node, { allocator: inc.allocator.clone() });
      assertSame(got, want, `seed ${seed} ${where}`);
      maps.assertEquals(want, `seed ${seed} ${where}`);
      for (const [ip, id] of r.endpointIdentity) assert.equal(want.endpoints.get(ip)?.identity, id, `seed ${seed} ${where}: endpoint identity ${ip}`);
      checks++;
    };
    check('initial');
    for (let step = 0; step < STEPS; step++) {
      const pods = inc.state().pods;
      const what = g.int(11);
      const pod = pods.length ? g.pick(pods) : undefined;
      let desc = '';
      if (what === 0 && pod) {
        inc.setPod({ ...pod, labels: labels(g, POD_LABELS) });
        desc = `relabel ${pod.name}`;
      } else if (what === 1 && pod) {
        inc.deletePod(pod.namespace, pod.name);
        desc = `delete ${pod.name}`;
      } else if (what === 2) {
        const p = g.pick(other.pods);
        inc.setPod({ ...p, name: `new${step}`, namespace: g.pick(state.namespaces).name });
        desc = `add pod ${p.ip}`;
      } else if (what === 3 && pod) {
        // Another pod's address (a clash), a new one, or none yet.
        const ip = g.pick([g.pick(pods).ip, `10.244.${g.int(3)}.${200 + g.int(20)}`, null]);
        const moved: Pod = { ...pod, ip, nodeName: g.pick(nodes).name, terminated: g.chance(0.15) };
        inc.setPod(moved);
        desc = `move ${pod.name} to ${ip}`;
      } else if (what === 4) {
        const ns = g.pick(state.namespaces);
        if (g.chance(0.2)) inc.deleteNamespace(ns.name);
        else inc.setNamespace({ name: ns.name, labels: { ...labels(g, NS_LABELS), 'kubernetes.io/metadata.name': ns.name } });
        desc = `namespace ${ns.name}`;
      } else if (what === 5 || what === 6) {
        const p = g.pick(other.policies);
        const ns = g.pick(state.namespaces).name;
        inc.setPolicy({ ...structuredClone(p), namespace: ns, name: g.chance(0.5) ? p.name : `pol-new${step}` }); // parsed objects are never shared
        desc = `policy ${p.name} into ${ns}`;
      } else if (what === 7) {
        const pols = inc.state().policies;
        if (pols.length) {
          const p = g.pick(pols);
          inc.deletePolicy(p.namespace, p.name);
          desc = `delete policy ${p.namespace}/${p.name}`;
        }
      } else if (what === 8) {
        const ip = g.pick(['192.168.60.1', '192.168.60.9', '10.244.0.77', '198.51.100.7']);
        nodes = nodes.map((n) => (n.name === node ? parseNode({ metadata: { name: node }, status: { addresses: [{ type: 'InternalIP', address: ip }] } }) : n));
        inc.setNodes(nodes);
        desc = `node address ${ip}`;
      } else if (pod) {
        // Several changes before one flush (the debounce coalesces them).
        for (let i = 0; i < 3; i++) {
          const q = g.pick(pods);
          inc.setPod({ ...q, labels: labels(g, POD_LABELS) });
        }
        desc = 'batch';
      }
      if (g.chance(0.8)) check(`step ${step} (${desc})`);
    }
    check('end');
  }
  console.log(`incremental == full: ${checks} checks over ${SEEDS} seeds`);
  assert.ok(checks > SEEDS * STEPS * 0.7);
});

test('a pod label change recomputes one address, not the cluster', () => {
  const { state } = randomState(5003);
  const node = state.nodes[0]!.name;
  const inc = new IncrementalCompiler(node);
  for (const ns of state.namespaces) inc.setNamespace(ns);
  for (const p of state.pods) inc.setPod(p);
  for (const p of state.policies) inc.setPolicy(p);
  inc.setNodes(state.nodes);
  assert.equal(inc.flush().work.pods, new Set(state.pods.filter((p) => p.ip && !p.hostNetwork && !p.terminated).map((p) => p.ip)).size);
  const pod = state.pods.find((p) => p.ip && !p.hostNetwork && !p.terminated)!;
  inc.setPod({ ...pod, labels: { ...pod.labels, fresh: 'yes' } });
  const r = inc.flush();
  assert.equal(r.work.pods, 1);
  assert.deepEqual(r.diff.ipcacheUpsert.map((e) => formatCidr(e.cidr)), [`${pod.ip}/32`]);
  // Nothing changed: nothing to do.
  const again = inc.flush();
  assert.equal(again.work.pods, 0);
  assert.equal(again.diff.endpoints.size + again.diff.ipcacheUpsert.length + again.diff.ipcacheDelete.length, 0);
});

test('a restarted compiler takes back the pinned identity numbers: the same objects in another order rewrite nothing', () => {
  for (let seed = 7001; seed < 7041; seed++) {
    const { state } = randomState(seed);
    const node = state.nodes[0]!.name;
    const first = new IncrementalCompiler(node);
    // Some numbers taken by keys that no longer exist (a long-lived process's history).
    for (let i = 0; i < 5; i++) first.allocator.idFor(`gone|${i}`);
    for (const ns of state.namespaces) first.setNamespace(ns);
    for (const p of state.pods) first.setPod(p);
    for (const p of state.policies) first.setPolicy(p);
    first.setNodes(state.nodes);
    first.flush();
    const before = first.snapshot();
    const maps = new MapModel();
    maps.apply(diffNodeFrom(null, before));

    const second = new IncrementalCompiler(node);
    for (const ns of [...state.namespaces].reverse()) second.setNamespace(ns);
    for (const p of [...state.pods].reverse()) second.setPod(p);
    for (const p of [...state.policies].reverse()) second.setPolicy(p);
    second.setNodes(state.nodes);
    second.adoptPinned(before.ipcache);
    second.flush();
    const after = second.snapshot();
    const d = diffNodeFrom(before, after);
    assert.equal(d.ipcacheUpsert.length + d.ipcacheDelete.length, 0, `seed ${seed}: a restart rewrote ipcache entries`);
    assert.equal(d.endpoints.size, 0, `seed ${seed}: a restart rewrote endpoints' entries`);
    // Every identity is visible in the ipcache: its number is what a restart takes back.
    const visible = new Set(before.ipcache.map((e) => e.identity));
    assert.deepEqual([...before.identities.keys()].filter((id) => !visible.has(id)), [], `seed ${seed}: identities no address maps to`);
    maps.apply(d);
    maps.assertEquals(after, `seed ${seed} after restart`);
  }
});
