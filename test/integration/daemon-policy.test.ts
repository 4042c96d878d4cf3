// The real bvcnid with --network-policy on a simulated node, against the fake
// API server in the underlay: it lists and watches Pods, Namespaces and
// NetworkPolicies, compiles its node's rule sets once all have listed and again
// on a change, and says so. Without the flag (the default) it asks the API for
// none of them, so the manifest's RBAC is enough. The rules written to the maps and
// enforced: test/integration/policy-new-pod.test.ts (src/policy/README.md).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Cluster } from '../../src/sim/index.js';
import type { FakeKubeApiServer } from '../../src/sim/kube-apiserver.js';
import { makeNamespace, makeRealisticNetworkPolicy, makeRealisticPod, NAMESPACES, NETWORK_POLICIES, PODS } from '../../src/sim/kube-resources.js';
import { KubeCluster } from '../support/kube-daemons.js';
import { waitFor } from '../support/kube-util.js';

describe('bvcnid --network-policy on 2 simulated nodes', { timeout: 120_000 }, () => {
  let c: Cluster;
  let api: FakeKubeApiServer;
  // Node 0's daemon with the flag, node 1's without; each test starts its own.
  const k = new KubeCluster({ prefix: 'npd', nodes: 2, started: 0, daemonArgs: (i) => (i === 0 ? ['--network-policy'] : []) });
  const daemons = k.daemons;
  const policyRequests = (): string[] => api.requests.map((r) => r.url).filter((u) => /\/(pods|namespaces|networkpolicies)\b/.test(u));

  before(async () => {
    ({ c, api } = await k.start());
    for (const ns of ['shop', 'ops']) api.resources.add(NAMESPACES, makeNamespace(ns, { team: ns }));
    // Pods as the API knows them (the compile needs no real pod): three per node.
    c.nodes.forEach((n, i) => {
      const base = n.podCidr.split('/')[0]!.split('.').slice(0, 3).join('.');
      for (let j = 0; j < 3; j++)
        api.resources.add(PODS, makeRealisticPod({ namespace: j ? 'shop' : 'ops', name: `p${i}${j}`, labels: { app: j === 1 ? 'web' : 'db' }, ip: `${base}.${20 + j}`, nodeName: n.name }));
    });
    api.resources.add(NETWORK_POLICIES, makeRealisticNetworkPolicy('shop', 'default-deny', { podSelector: {}, policyTypes: ['Ingress'] }));
  });

  after(async () => {
    await k.teardown();
  });

  test('without the flag bvcnid asks the API for no Pod, Namespace or NetworkPolicy', async () => {
    const d = daemons[1]!;
    d.start();
    await waitFor('node 1 ready', () => d.ready(), 60_000);
    assert.deepEqual(policyRequests(), []);
    assert.equal(d.logged(/network policy compiled/).length, 0);
  });

  test('with it, bvcnid compiles its endpoints once everything has listed, and again on a change', async () => {
    const d = daemons[0]!;
    d.start();
    // Level-triggered: a compilation may come before the Node list (no host identity yet); the
    // Node list triggers another. Two shop pods on this node are isolated (an entry each, for the
    // node's own address); the ops pod is not.
    const last = (): Record<string, unknown> | undefined => d.logged(/network policy compiled/).at(-1);
    await waitFor('node 0 compiled with its own address known', () => last()?.entries === 2, 60_000);
    const first = last()!;
    assert.equal(first.pods, 6);
    assert.equal(first.namespaces, 2);
    assert.equal(first.policies, 1);
    assert.equal(first.endpoints, 3);
    assert.ok(policyRequests().some((u) => u.startsWith('/apis/networking.k8s.io/v1/networkpolicies')));
    api.resources.add(
      NETWORK_POLICIES,
      makeRealisticNetworkPolicy('shop', 'allow-ops', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'ops' } } }], ports: [{ port: 8080 }] }] }),
    );
    await waitFor('recompiled', () => d.logged(/network policy compiled/).some((l) => l.policies === 2), 30_000);
    const second = d.logged(/network policy compiled/).find((l) => l.policies === 2)!;
    assert.equal(second.changedEndpoints, 1, 'only the web pod of this node changes');
    assert.ok((second.entries as number) > (first.entries as number));
    assert.equal(daemons[1]!.logged(/network policy compiled/).length, 0);
  });
});
