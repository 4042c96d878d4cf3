// Compiler == model on randomised states: a seeded generator makes namespaces,
// nodes, pods (some host-network, some terminated, with named containerPorts)
// and NetworkPolicies with every kind of selector, peer, ipBlock/except, port,
// named port and endPort range, as raw API objects through the parser; then
// every probe (pods, nodes, outside addresses; TCP, UDP, SCTP, ICMP; ports on and
// around every rule's edges) must get the same answer from the direct
// evaluation and from the compiled tables' lookups. A failure names its seed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  compileNode,
  compiledAllowed,
  CompiledLookup,
  ID_ANY,
  lpmCovers,
  policyEntryKey,
  policyLookupKey,
  type CompiledNode,
  type Direction,
  evaluate,
  IdentityAllocator,
  parseNamespace,
  parseNetworkPolicy,
  parseNode,
  parsePod,
  StateIndex,
  type ClusterState,
  type Connection,
} from '../../src/policy/index.js';
import { randomState } from '../support/netpol-gen.js';

/** The same decision from the encoded map keys, by the LPM trie's rule (no knowledge of the entry structs). */
function byKeys(c: CompiledNode, lookup: CompiledLookup, endpoint: string, dir: Direction, peerIp: string, protocol: number, port: number): boolean | null {
  const ep = c.endpoints.get(endpoint);
  if (!ep) return null;
  if (!ep[dir].isolated) return true;
  const keys = ep[dir].entries.map((e) => policyEntryKey(endpoint, dir, e));
  return [lookup.identityOf(peerIp), ID_ANY].some((id) => {
    const k = policyLookupKey(endpoint, dir, id, protocol, port);
    return keys.some((e) => lpmCovers(e, k));
  });
}

test('the proposed map keys, looked up by LPM rules, decide as the compiled tables do', () => {
  let checked = 0;
  for (let seed = 1001; seed <= 1100; seed++) {
    const { state, probes } = randomState(seed);
    const idx = new StateIndex(state);
    for (const n of state.nodes) {
      const c = compileNode(idx, n.name);
      const l = new CompiledLookup(c);
      for (const p of probes) {
        for (const [ep, dir, peer] of [[p.dst, 'ingress', p.src], [p.src, 'egress', p.dst]] as const) {
          const want = l.allows(ep, dir, peer, p.protocol, p.port);
          const got = byKeys(c, l, ep, dir, peer, p.protocol, p.port);
          if (want !== got) assert.fail(`seed ${seed} node ${n.name}: ${dir} ${peer} -> ${ep} ${p.protocol}/${p.port}: tables ${want}, keys ${got}`);
          if (want !== null) checked++;
        }
      }
    }
  }
  assert.ok(checked > 5000, `${checked} decisions checked`);
});

test('the compiled tables answer every probe as the model does, on 400 random states', () => {
  let allowed = 0;
  let denied = 0;
  for (let seed = 1; seed <= 400; seed++) {
    const { state, probes } = randomState(seed);
    const idx = new StateIndex(state);
    const alloc = new IdentityAllocator();
    const lookups = new Map(state.nodes.map((n) => [n.name, new CompiledLookup(compileNode(idx, n.name, { allocator: alloc }))]));
    for (const conn of probes) {
      const want = evaluate(idx, conn).allowed;
      const got = compiledAllowed(lookups, conn);
      if (got !== want) assert.fail(`seed ${seed}: ${JSON.stringify(conn)}: model says ${want}, compiled says ${got}`);
      if (want) allowed++;
      else denied++;
    }
  }
  // The generator must exercise both answers, or agreement proves little.
  assert.ok(allowed > 10_000 && denied > 10_000, `allowed ${allowed}, denied ${denied}`);
});
