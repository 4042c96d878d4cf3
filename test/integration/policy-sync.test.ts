// bvcnid's NetworkPolicy sync (--network-policy) against the fake API server
// over loopback, through the real list/watch client: it lists and watches Pods,
// Namespaces and NetworkPolicies, compiles this node's rule sets once all three
// have listed, follows creates, updates and deletes with only their difference,
// skips an invalid policy without dropping the others, and relists after 410.
// The compiled tables must equal a direct compilation of the same objects.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { FakeKubeApiServer } from '../../src/sim/kube-apiserver.js';
import { makeRealisticNetworkPolicy, makeRealisticPod, NAMESPACES, NETWORK_POLICIES, PODS } from '../../src/sim/kube-resources.js';
import { listWatchApi, loadKubeConfig, POLICY_PATHS, slimNamespace, slimNetworkPolicy, slimPod, type ObjectLike } from '../../src/kube/client.js';
import { PolicySync, preparse } from '../../src/daemon/policy.js';
import { compileNode, CompiledLookup, parseNamespace, parseNetworkPolicy, parsePod, PROTO_NUMBER } from '../../src/policy/index.js';
import { ALL_PODS, ModelCluster, NODES, podIp, rawNamespace, rawNode, rawPod } from '../support/netpol.js';
import { waitFor } from '../support/kube-util.js';
import { collectGarbage } from '../../src/common/gc.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const NODE = NODES[0].name;
const TCP = PROTO_NUMBER.TCP;

describe('bvcnid NetworkPolicy sync', () => {
  let srv: FakeKubeApiServer;
  let sync: PolicySync;
  let dir: string;
  const compiled: number[] = [];
  /** Each compile's diff, weakly: PolicySync must not keep one once written. */
  const diffs: WeakRef<object>[] = [];
  before(async () => {
    srv = new FakeKubeApiServer();
    await srv.start();
    for (const ns of ['x', 'y', 'z']) srv.resources.add(NAMESPACES, rawNamespace(ns));
    for (const p of ALL_PODS) srv.resources.add(PODS, rawPod(p));
    srv.resources.add(NETWORK_POLICIES, makeRealisticNetworkPolicy('x', 'deny-ingress', { podSelector: {}, policyTypes: ['Ingress'] }));
    dir = mkdtempSync(join(tmpdir(), 'netpol-sync-'));
    writeFileSync(join(dir, 'kubeconfig'), srv.kubeconfig());
    const kc = loadKubeConfig(join(dir, 'kubeconfig'));
    sync = new PolicySync({
      nodeName: NODE,
      log: pino({ level: 'silent' }),
      apis: {
        // As bvcnid wires them: parsed as each page or event is read (policy-maps-sync.test.ts takes plain objects).
        pods: listWatchApi<ObjectLike>(kc, POLICY_PATHS.pods, preparse(slimPod, parsePod)),
        namespaces: listWatchApi<ObjectLike>(kc, POLICY_PATHS.namespaces, preparse(slimNamespace, parseNamespace)),
        networkPolicies: listWatchApi<ObjectLike>(kc, POLICY_PATHS.networkPolicies, preparse(slimNetworkPolicy, parseNetworkPolicy)),
      },
      nodes: () => NODES.map((n) => rawNode(n)),
      debounceMs: 10,
      onCompiled: (_c, diff) => {
        compiled.push(Date.now());
        diffs.push(new WeakRef(diff));
      },
    });
    sync.start();
  });
  after(async () => {
    await sync?.stop();
    await srv?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The same objects compiled directly, through the test's own model cluster. */
  function expected(cluster: ModelCluster) {
    return compileNode(cluster.state(), NODE);
  }
  const allows = (from: string, to: string, port = 80): boolean | null =>
    new CompiledLookup(sync.current!).allows(podIp(to), 'ingress', podIp(from), TCP, port);

  test('compiles once everything has listed, and equals a direct compilation', async () => {
    await waitFor('first compilation', () => sync.current !== null, 10_000);
    const cluster = new ModelCluster();
    cluster.apply({ create: { metadata: { name: 'deny-ingress', namespace: 'x' }, spec: { podSelector: {}, policyTypes: ['Ingress'] } } });
    const want = expected(cluster);
    assert.deepEqual([...sync.current!.endpoints.keys()].sort(), [...want.endpoints.keys()].sort());
    for (const [ip, ep] of want.endpoints) {
      const got = sync.current!.endpoints.get(ip)!;
      assert.equal(got.ingress.isolated, ep.ingress.isolated, ip);
      assert.equal(got.ingress.entries.length, ep.ingress.entries.length, ip);
    }
    // x/a, x/c and y/b are this node's (placement alternates n1, n2); x/b is not.
    assert.equal(allows('y/b', 'x/a'), false);
    assert.equal(allows('x/a', 'x/c'), false);
    assert.equal(allows('x/a', 'y/b'), true);
    assert.equal(allows('x/a', 'x/b'), null);
  });

  test('no compile\'s diff is kept once written (the first holds every ipcache entry); its counts are', async () => {
    await waitFor('first compilation', () => sync.current !== null, 10_000);
    const change = sync.lastChange!;
    assert.ok(change.ipcacheUpserts > 0, 'the first compile wrote the ipcache');
    assert.equal(change.full, false, 'no maps: diffed against the last compile');
    assert.ok(diffs.length > 0);
    // A WeakRef's target lives at least to the end of the job that made or read it.
    await new Promise((r) => setImmediate(r));
    collectGarbage();
    assert.deepEqual(diffs.map((d) => d.deref() === undefined), diffs.map(() => true), 'a diff outlived its compile');
  });

  test('a new policy, a label change and a delete each recompile with only their difference', async () => {
    let n = sync.stats.compiles;
    srv.resources.add(
      NETWORK_POLICIES,
      makeRealisticNetworkPolicy('x', 'allow-from-y', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'y' } } }] }] }),
    );
    await waitFor('recompiled after the create', () => sync.stats.compiles > n, 10_000);
    assert.equal(allows('y/b', 'x/a'), true);
    assert.equal(allows('z/b', 'x/a'), false);
    assert.deepEqual(sync.lastChange!.endpoints, [podIp('x/a')]);
    n = sync.stats.compiles;
    // Upstream's "updated namespace" case: a label that a selector of x/a's policy names.
    srv.resources.add(
      NETWORK_POLICIES,
      makeRealisticNetworkPolicy('x', 'allow-blue', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'blue' } } }] }] }),
    );
    await waitFor('recompiled after the second create', () => sync.stats.compiles > n, 10_000);
    assert.equal(allows('z/b', 'x/a'), false);
    n = sync.stats.compiles;
    srv.resources.modify(NAMESPACES, undefined, 'z', (ns) => (ns.metadata!.labels = { team: 'blue' }));
    await waitFor('recompiled after the label change', () => sync.stats.compiles > n && allows('z/b', 'x/a') === true, 10_000);
    assert.equal(allows('y/b', 'x/a'), true);
    n = sync.stats.compiles;
    srv.resources.remove(NETWORK_POLICIES, 'x', 'deny-ingress');
    srv.resources.remove(NETWORK_POLICIES, 'x', 'allow-from-y');
    srv.resources.remove(NETWORK_POLICIES, 'x', 'allow-blue');
    srv.resources.modify(NAMESPACES, undefined, 'z', (ns) => (ns.metadata!.labels = {}));
    await waitFor('recompiled after the deletes', () => sync.stats.compiles > n && allows('z/b', 'x/c') === true, 10_000);
    assert.equal(allows('z/b', 'x/a'), true);
  });

  test('an invalid policy is skipped and named; the others stay in force', async () => {
    const n = sync.stats.compiles;
    srv.resources.add(NETWORK_POLICIES, makeRealisticNetworkPolicy('x', 'deny-c', { podSelector: { matchLabels: { pod: 'c' } }, policyTypes: ['Ingress'] }));
    srv.resources.add(NETWORK_POLICIES, makeRealisticNetworkPolicy('x', 'broken', { podSelector: {}, ingress: [{ ports: [{ port: 5000, endPort: 4000 }] }] }));
    await waitFor('recompiled', () => sync.stats.compiles > n && allows('y/a', 'x/c') === false, 10_000);
    assert.match(sync.invalid.get('NetworkPolicy x/broken') ?? '', /endPort/);
    assert.equal(allows('y/a', 'x/a'), true, 'the broken policy isolates nothing');
  });

  test('after the watch history is compacted the informers relist and catch up', async () => {
    const n = sync.stats.compiles;
    const relists = sync.informerStats.reduce((a, s) => a + s.relistsOnGone, 0);
    srv.addNode(rawNode(NODES[1]) as never); // every informer's resourceVersion is now behind…
    srv.compact(); // …and forgotten
    srv.resources.closeWatches();
    srv.resources.remove(NETWORK_POLICIES, 'x', 'deny-c');
    const relisted = (): number => sync.informerStats.reduce((a, s) => a + s.relistsOnGone, 0) - relists;
    await waitFor('all three relisted, without deny-c', () => relisted() === 3 && sync.stats.compiles > n && allows('y/a', 'x/c') === true, 15_000);
  });

  test('a slim Pod keeps everything the model reads of a kubelet-sized one', () => {
    const full = makeRealisticPod({ namespace: 'x', name: 'web-1', labels: { app: 'web' }, ip: '10.244.1.5', nodeName: 'n1', ports: [{ name: 'dns', containerPort: 53, protocol: 'UDP' }] });
    const slim = slimPod(full as ObjectLike);
    assert.deepEqual(parsePod(slim), parsePod(full));
    assert.ok(JSON.stringify(slim).length * 8 < JSON.stringify(full).length, `${JSON.stringify(slim).length} vs ${JSON.stringify(full).length}`);
  });
});
