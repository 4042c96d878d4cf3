// The conformance harness's convergence check (nodeMapsDiff, test/support/netpol-e2e.ts)
// against real pinned maps of the policy contract's layout: a node's maps written from
// the compiler's tables with OTHER identity numbers than the test's own compilation
// (as bvcnid's allocator numbers them) are "converged"; a missing or extra policy
// entry, a wrong isolation flag, an endpoint left pending, a pod in the wrong identity
// and a missing ipcache prefix each are not, and are named.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BpfMap } from '../../loader/index.js';
import { run } from '../../src/common/exec.js';
import { openEndpointsMap } from '../../src/dataplane/maps.js';
import { uniquePrefix } from '../../src/sim/index.js';
import { compileNode, IdentityAllocator, policyEntryKey, type CompiledNode } from '../../src/policy/index.js';
import { loadSuites, ModelCluster, NODES, podIp } from '../support/netpol.js';
import { ENDPOINT_F_EGRESS_ISOLATED, ENDPOINT_F_INGRESS_ISOLATED, ENDPOINT_F_POLICY_PENDING, IPCACHE_MAP, nodeMapsDiff, POLICY_MAP } from '../support/netpol-e2e.js';

const NODE = NODES[0].name;

/** A state with CIDR classes (ipBlock with except), named ports, ingress and egress isolation. */
function model(): ModelCluster {
  const m = new ModelCluster();
  const cases = loadSuites().flatMap((s) => s.cases);
  for (const name of [
    "should support a 'default-deny-ingress' policy",
    'should enforce except clause while egress access to server in CIDR block',
    'should allow egress access on one named port',
  ])
    for (const a of cases.find((c) => c.name === name)!.steps[0]!.apply) m.apply(a);
  return m;
}

describe('the netpol harness compares pinned maps with the compiler up to identity numbering', () => {
  const pinDir = join('/sys/fs/bpf', uniquePrefix('npm'));
  let want: CompiledNode;
  let written: CompiledNode;

  before(async () => {
    mkdirSync(pinDir);
    const mk = (name: string, type: string, key: number, value: number, flags: string[] = []): Promise<unknown> =>
      run(['bpftool', 'map', 'create', join(pinDir, name), 'type', type, 'key', String(key), 'value', String(value), 'entries', '4096', 'name', name, ...flags]);
    await mk(IPCACHE_MAP, 'lpm_trie', 8, 4, ['flags', '1']);
    await mk(POLICY_MAP, 'lpm_trie', 16, 4, ['flags', '1']);
    await mk('bvcni_endpoints', 'hash', 4, 24);
    const state = model().state();
    want = compileNode(state, NODE, { allocator: new IdentityAllocator() });
    // bvcnid's numbers differ from the test's: its allocator has seen other classes first.
    const theirs = new IdentityAllocator();
    for (let i = 0; i < 37; i++) theirs.idFor(`some class gone since ${i}`);
    written = compileNode(state, NODE, { allocator: theirs });
    assert.notDeepEqual([...written.identities.keys()], [...want.identities.keys()], 'the numbering must differ or the test proves nothing');
    const ipcache = BpfMap.openPinnedRaw(join(pinDir, IPCACHE_MAP));
    const policy = BpfMap.openPinnedRaw(join(pinDir, POLICY_MAP));
    using endpoints = openEndpointsMap(pinDir);
    try {
      for (const e of written.ipcache) ipcache.update(ipcacheKey(e.cidr.addr, e.cidr.prefix), u32(e.identity));
      for (const ep of written.endpoints.values()) {
        for (const dir of ['ingress', 'egress'] as const) for (const e of ep[dir].entries) policy.update(policyEntryKey(ep.ip, dir, e), u32(1));
        const flags = 1 | (ep.ingress.isolated ? ENDPOINT_F_INGRESS_ISOLATED : 0) | (ep.egress.isolated ? ENDPOINT_F_EGRESS_ISOLATED : 0);
        endpoints.update({ ip: ep.ip }, { ifindex: 7, flags, pod_mac: '02:00:00:00:00:01', gw_mac: '02:00:00:00:00:02', identity: ep.identity });
      }
    } finally {
      ipcache.close();
      policy.close();
    }
  });
  after(() => rmSync(pinDir, { recursive: true, force: true }));

  /** Changes the maps, checks the diff names the change, and undoes it. */
  function mutated(change: () => () => void, expect: RegExp): void {
    const undo = change();
    try {
      const d = nodeMapsDiff(pinDir, want);
      assert.ok(d.some((l) => expect.test(l)), `expected a difference matching ${expect}, got ${JSON.stringify(d)}`);
    } finally {
      undo();
    }
    assert.deepEqual(nodeMapsDiff(pinDir, want), [], 'undone');
  }

  test('the same tables under other identity numbers are converged', () => {
    assert.ok(want.endpoints.size >= 2 && written.ipcache.length >= 9);
    assert.deepEqual(nodeMapsDiff(pinDir, want), []);
  });

  test('a missing and an extra policy entry are named', () => {
    const ep = [...written.endpoints.values()].find((e) => e.ingress.entries.length > 0)!;
    const key = policyEntryKey(ep.ip, 'ingress', ep.ingress.entries[0]!);
    using policy = BpfMap.openPinnedRaw(join(pinDir, POLICY_MAP));
    mutated(() => (policy.delete(key), () => policy.update(key, u32(1))), new RegExp(`policy: missing ${ep.ip} ingress`));
    const extra = Buffer.from(key);
    extra.writeUInt16BE(4242, 14);
    extra.writeUInt32LE(96, 0);
    mutated(() => (policy.update(extra, u32(1)), () => policy.delete(extra)), /policy: extra .* port 4242/);
  });

  test('a wrong isolation flag, an endpoint left pending and a wrong endpoint identity are named', () => {
    using endpoints = openEndpointsMap(pinDir);
    const ip = podIp('x/a');
    assert.ok(written.endpoints.has(ip), 'x/a is on the node under test');
    const orig = endpoints.lookup({ ip })!;
    const set = (v: typeof orig) => () => (endpoints.update({ ip }, v), () => endpoints.update({ ip }, orig));
    mutated(set({ ...orig, flags: orig.flags ^ ENDPOINT_F_INGRESS_ISOLATED }), new RegExp(`endpoint ${ip} .*policy flags`));
    mutated(set({ ...orig, flags: orig.flags | ENDPOINT_F_POLICY_PENDING }), new RegExp(`endpoint ${ip} .*policy flags`));
    const other = [...written.endpoints.values()].find((e) => e.identity !== orig.identity)!;
    mutated(set({ ...orig, identity: other.identity }), new RegExp(`endpoint ${ip}: identity`));
  });

  test('a pod in the wrong identity and a missing ipcache prefix are named', () => {
    using ipcache = BpfMap.openPinnedRaw(join(pinDir, IPCACHE_MAP));
    const pod = written.ipcache.find((e) => e.cidr.prefix === 32 && written.identities.get(e.identity)?.kind === 'pod')!;
    const other = written.ipcache.find((e) => e.cidr.prefix === 32 && e.identity !== pod.identity && written.identities.get(e.identity)?.kind === 'pod')!;
    const key = ipcacheKey(pod.cidr.addr, 32);
    mutated(() => (ipcache.update(key, u32(other.identity)), () => ipcache.update(key, u32(pod.identity))), /ipcache: (missing|extra)/);
    const cidr = written.ipcache.find((e) => e.cidr.prefix < 32)!;
    const ckey = ipcacheKey(cidr.cidr.addr, cidr.cidr.prefix);
    mutated(() => (ipcache.delete(ckey), () => ipcache.update(ckey, u32(cidr.identity))), new RegExp(`ipcache: missing .*/${cidr.cidr.prefix} ->`));
  });
});

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

function ipcacheKey(addr: number, prefixlen: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(prefixlen, 0);
  b.writeUInt32BE(addr >>> 0, 4);
  return b;
}

