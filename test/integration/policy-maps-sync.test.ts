// bvcnid's NetworkPolicy writer (--network-policy) against the fake API server
// through the real list/watch client, writing to an in-memory PolicyMapsPort
// (test/support/fake-policy-maps.ts; the pinned-map port is proven against the
// kernel in test/integration/policy-maps-kernel.test.ts): the maps equal the
// compiled state after the first sync and after each change; a restarted
// bvcnid (fresh process, same maps) rewrites nothing; a failed write is counted
// and retried until the maps are right; a pod added through bvcnid's CNI
// socket has its rules and identity written, and its pending flag cleared,
// before the ADD is answered, and one bvcnid cannot match yet stays pending
// until its Pod arrives; an endpoint that loses its rules fails closed before
// its entries go.
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { FakeKubeApiServer } from '../../src/sim/kube-apiserver.js';
import { makeRealisticNetworkPolicy, NAMESPACES, NETWORK_POLICIES, PODS } from '../../src/sim/kube-resources.js';
import { listWatchApi, loadKubeConfig, POLICY_PATHS, slimNamespace, slimNetworkPolicy, slimPod, type ObjectLike } from '../../src/kube/client.js';
import { PolicySync } from '../../src/daemon/policy.js';
import { compileNode, parseNamespace, parseNetworkPolicy, parseNode, parsePod } from '../../src/policy/index.js';
import { ALL_PODS, NODES, podIp, rawNamespace, rawNode, rawPod } from '../support/netpol.js';
import { FakePolicyMaps } from '../support/fake-policy-maps.js';
import { waitFor } from '../support/kube-util.js';

const NODE = NODES[0].name;
const LOCAL = ALL_PODS.filter((_, i) => i % 2 === 0);

describe('bvcnid writes NetworkPolicy to the maps', () => {
  let srv: FakeKubeApiServer;
  let dir: string;
  const syncs: PolicySync[] = [];
  let maps: FakePolicyMaps;

  before(async () => {
    srv = new FakeKubeApiServer();
    await srv.start();
    for (const ns of ['x', 'y', 'z']) srv.resources.add(NAMESPACES, rawNamespace(ns));
    for (const p of ALL_PODS) srv.resources.add(PODS, rawPod(p));
    srv.resources.add(NETWORK_POLICIES, makeRealisticNetworkPolicy('x', 'deny-ingress', { podSelector: {}, policyTypes: ['Ingress'] }));
    srv.resources.add(
      NETWORK_POLICIES,
      makeRealisticNetworkPolicy('x', 'allow-y', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'y' } } }], ports: [{ port: 80 }] }] }),
    );
    dir = mkdtempSync(join(tmpdir(), 'netpol-maps-'));
    writeFileSync(join(dir, 'kubeconfig'), srv.kubeconfig());
    maps = new FakePolicyMaps();
    // The plugin registered this node's pods (enforcement on: fail closed).
    for (const p of LOCAL) maps.register(podIp(p));
  });
  afterEach(async () => {
    while (syncs.length) await syncs.pop()!.stop();
  });
  after(async () => {
    await srv?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function startSync(): PolicySync {
    const kc = loadKubeConfig(join(dir, 'kubeconfig'));
    const sync = new PolicySync({
      nodeName: NODE,
      log: pino({ level: 'silent' }),
      apis: {
        pods: listWatchApi<ObjectLike>(kc, POLICY_PATHS.pods, slimPod),
        namespaces: listWatchApi<ObjectLike>(kc, POLICY_PATHS.namespaces, slimNamespace),
        networkPolicies: listWatchApi<ObjectLike>(kc, POLICY_PATHS.networkPolicies, slimNetworkPolicy),
      },
      nodes: () => NODES.map((n) => rawNode(n)),
      maps,
      debounceMs: 5,
    });
    syncs.push(sync);
    sync.start();
    return sync;
  }

  /** What the API server holds, compiled from scratch with the sync's numbering. */
  function expected(sync: PolicySync) {
    const state = {
      namespaces: srv.resources.list(NAMESPACES).map(parseNamespace),
      pods: srv.resources.list(PODS).map(parsePod),
      policies: srv.resources.list(NETWORK_POLICIES).map(parseNetworkPolicy),
      nodes: NODES.map((n) => parseNode(rawNode(n))),
    };
    return compileNode(state, NODE, { allocator: sync.compiler.allocator.clone() });
  }

  test('the first sync writes the compiled state: entries, ipcache, identities, flags; pending cleared', async () => {
    const sync = startSync();
    await waitFor('first write', () => sync.stats.writes > 0, 10_000);
    assert.deepEqual(maps.mismatches(expected(sync)), []);
    const a = maps.eps.get(podIp('x/a'))!;
    assert.equal(a.pending, false);
    assert.equal(a.ingressIsolated, true);
    assert.ok(a.identity >= 256);
    assert.ok((maps.entries.get(podIp('x/a'))?.ingress.size ?? 0) > 0);
    // y/b is local and selected by nothing: known, not isolated.
    assert.deepEqual(maps.eps.get(podIp('y/b')), { identity: sync.compiler.endpoint(podIp('y/b'))!.identity, pending: false, ingressIsolated: false, egressIsolated: false });
  });

  test('label churn, then a restart: the new process takes back the numbers and writes nothing', async () => {
    let sync = startSync();
    await waitFor('first write', () => sync.stats.writes > 0, 10_000);
    // History: identities born and gone, so a fresh numbering in list order would differ.
    for (const [i, p] of ['y/b', 'z/a', 'x/c'].entries()) {
      const [ns, name] = p.split('/') as [string, string];
      srv.resources.modify(PODS, ns, name, (o) => (o.metadata!.labels = { pod: name, gen: `g${i}` }));
    }
    await waitFor('relabels written', () => maps.mismatches(expected(sync)).length === 0 && sync.compiler.getPod('x', 'c')?.labels.gen === 'g2', 10_000);
    await sync.stop();
    syncs.length = 0;
    const before = maps.log.length;
    sync = startSync();
    await waitFor('restarted and synced', () => sync.stats.writes > 0, 10_000);
    assert.equal(sync.stats.fullSyncs, 1);
    assert.deepEqual(maps.log.slice(before), [], 'a restart must not rewrite any entry');
    assert.deepEqual(maps.mismatches(expected(sync)), []);
  });

  test('a failed write is counted and retried from what the maps hold', async () => {
    const sync = startSync();
    await waitFor('first write', () => sync.stats.writes > 0, 10_000);
    maps.failWrites = 2;
    const reads = maps.reads;
    srv.resources.modify(PODS, 'y', 'a', (o) => (o.metadata!.labels = { pod: 'a', flaky: 'yes' }));
    await waitFor('retried until right', () => sync.stats.writeErrors >= 1 && maps.failWrites === 0 && maps.mismatches(expected(sync)).length === 0 && sync.compiler.getPod('y', 'a')?.labels.flaky === 'yes', 15_000);
    assert.ok(maps.reads > reads, 'the retry read the maps again');
  });

  test('maps not pinned yet are waited for, not counted as failed writes', async () => {
    maps.absent = true;
    const sync = startSync();
    await waitFor('a few attempts', () => sync.stats.compiles >= 2, 10_000);
    assert.equal(sync.stats.writes, 0);
    assert.equal(sync.stats.writeErrors, 0);
    maps.absent = false;
    await waitFor('written once they are there', () => sync.stats.writes > 0, 10_000);
    assert.deepEqual(maps.mismatches(expected(sync)), []);
  });

  test('an ADD served by bvcnid gets its rules before the answer; one it cannot match stays pending until its Pod arrives', async () => {
    const sync = startSync();
    await waitFor('first write', () => sync.stats.writes > 0, 10_000);
    // A Pod scheduled here, not started: no status.podIP yet (the kubelet reports it after the ADD).
    const pending = rawPod('x/a', { pod: 'new' });
    pending.metadata!.name = 'fresh';
    delete (pending.status as Record<string, unknown>).podIP;
    srv.resources.add(PODS, pending);
    await waitFor('the Pod is cached', () => sync.compiler.getPod('x', 'fresh') !== undefined, 10_000);
    const ip = '10.244.1.77';
    maps.register(ip); // what the plugin did in the ADD, before bvcnid's hook runs
    assert.equal(sync.endpointAdded('x', 'fresh', ip), true);
    // Synchronously: the answer has not gone out yet, and the pod is isolated by deny-ingress already.
    const s = maps.eps.get(ip)!;
    assert.equal(s.pending, false);
    assert.equal(s.ingressIsolated, true);
    assert.equal(s.identity, sync.compiler.endpoint(ip)!.identity);
    assert.ok((maps.entries.get(ip)?.ingress.size ?? 0) > 0, 'its allow entries (this node) are in');

    // The plugin worked alone, or the Pod is not cached yet: the endpoint stays pending.
    const ip2 = '10.244.1.78';
    maps.register(ip2);
    assert.equal(sync.endpointAdded('x', 'later', ip2), false);
    assert.equal(maps.eps.get(ip2)!.pending, true);
    const later = rawPod('x/a', { pod: 'later' });
    later.metadata!.name = 'later';
    delete (later.status as Record<string, unknown>).podIP;
    srv.resources.add(PODS, later);
    await waitFor('pending cleared once the Pod is known', () => maps.eps.get(ip2)!.pending === false, 10_000);
    assert.equal(maps.eps.get(ip2)!.ingressIsolated, true);
    // And a registered address bvcnid knows nothing about stays fail-closed.
    maps.register('10.244.1.79');
    const writes = sync.stats.writes;
    srv.resources.modify(PODS, 'x', 'later', (o) => (o.metadata!.labels = { pod: 'later', v: '2' }));
    await waitFor('another write', () => sync.compiler.getPod('x', 'later')?.labels.v === '2' && sync.stats.writes > writes, 10_000);
    assert.equal(maps.eps.get('10.244.1.79')!.pending, true);
  });

  test('an endpoint whose Pod goes fails closed before its entries are removed', async () => {
    const sync = startSync();
    await waitFor('first write', () => sync.stats.writes > 0, 10_000);
    const ip = podIp('x/a');
    assert.ok((maps.entries.get(ip)?.ingress.size ?? 0) > 0);
    const from = maps.log.length;
    srv.resources.remove(PODS, 'x', 'a');
    await waitFor('entries removed', () => (maps.entries.get(ip)?.ingress.size ?? 0) === 0, 10_000);
    const ops = maps.log.slice(from).filter((o) => o.op !== 'ipcache' && o.ip === ip);
    assert.equal(ops[0]?.op, 'endpoint', 'the first write for the endpoint is its flags');
    assert.equal(ops[0]?.op === 'endpoint' && ops[0].state.pending, true);
    assert.ok(ops.slice(1).some((o) => o.op === 'entry' && !o.present));
  });
});
