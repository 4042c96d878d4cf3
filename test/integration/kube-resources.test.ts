// The fake API server's Pods, Namespaces and NetworkPolicies against the real
// @kubernetes/client-node: paged lists (all namespaces and one), get, watches
// from a list's resourceVersion with bookmarks, 410 after compaction, and one
// resourceVersion counter across kinds. Loopback only.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CoreV1Api, KubeConfig, NetworkingV1Api, Watch } from '@kubernetes/client-node';
import { FakeKubeApiServer } from '../../src/sim/kube-apiserver.js';
import { makeNode } from '../../src/sim/kube-node.js';
import {
  makeNamespace,
  makeRealisticNetworkPolicy,
  makeRealisticPod,
  NAMESPACES,
  NETWORK_POLICIES,
  PODS,
} from '../../src/sim/kube-resources.js';
import { waitFor } from '../support/kube-util.js';

describe('fake kube-apiserver: Pods, Namespaces, NetworkPolicies', () => {
  let srv: FakeKubeApiServer;
  let kc: KubeConfig;
  before(async () => {
    srv = new FakeKubeApiServer();
    await srv.start();
    kc = new KubeConfig();
    kc.loadFromString(srv.kubeconfig());
    for (const ns of ['alpha', 'beta']) srv.resources.add(NAMESPACES, makeNamespace(ns, { team: ns }));
    for (let i = 0; i < 7; i++)
      srv.resources.add(PODS, makeRealisticPod({ namespace: i % 2 ? 'alpha' : 'beta', name: `web-${i}`, labels: { app: 'web' }, ip: `10.244.1.${10 + i}`, nodeName: 'n1' }));
    srv.resources.add(NETWORK_POLICIES, makeRealisticNetworkPolicy('alpha', 'deny', { podSelector: {}, policyTypes: ['Ingress'] }));
  });
  after(async () => {
    await srv.close();
  });

  test('lists page through every object, across namespaces or in one', async () => {
    const core = kc.makeApiClient(CoreV1Api);
    const names: string[] = [];
    let cont: string | undefined;
    let pages = 0;
    do {
      const page = await core.listPodForAllNamespaces({ limit: 3, _continue: cont });
      pages++;
      for (const p of page.items) names.push(`${p.metadata!.namespace}/${p.metadata!.name}`);
      cont = page.metadata?._continue || undefined;
    } while (cont);
    assert.equal(pages, 3);
    assert.equal(new Set(names).size, 7);
    const alpha = await core.listNamespacedPod({ namespace: 'alpha' });
    assert.deepEqual(alpha.items.map((p) => p.metadata!.name).sort(), ['web-1', 'web-3', 'web-5']);
    const got = await core.readNamespacedPod({ namespace: 'beta', name: 'web-0' });
    assert.equal(got.status?.podIP, '10.244.1.10');
    const nss = await core.listNamespace();
    assert.deepEqual(nss.items.map((n) => n.metadata!.labels!['kubernetes.io/metadata.name']).sort(), ['alpha', 'beta']);
    const pols = await kc.makeApiClient(NetworkingV1Api).listNetworkPolicyForAllNamespaces();
    assert.deepEqual(pols.items.map((p) => `${p.metadata!.namespace}/${p.metadata!.name}`), ['alpha/deny']);
    // Realistic sizes: a Pod as a kubelet leaves it is kilobytes, not a name and an IP.
    const size = JSON.stringify(srv.resources.list(PODS)[0]).length;
    assert.ok(size > 4000 && size < 12000, `pod JSON is ${size} bytes`);
  });

  test('a watch from a list resumes with only its kind and namespace, bookmarks included', async () => {
    const core = kc.makeApiClient(CoreV1Api);
    const list = await core.listNamespacedPod({ namespace: 'alpha' });
    const rv = list.metadata!.resourceVersion!;
    const seen: string[] = [];
    const req = await new Watch(kc).watch(
      '/api/v1/namespaces/alpha/pods',
      { resourceVersion: rv, allowWatchBookmarks: true },
      (type, obj: { metadata?: { name?: string; resourceVersion?: string } }) => seen.push(`${type} ${obj.metadata?.name ?? obj.metadata?.resourceVersion}`),
      () => {},
    );
    try {
      srv.resources.modify(PODS, 'alpha', 'web-1', (p) => (p.metadata!.labels = { app: 'web', v: '2' }));
      srv.resources.modify(PODS, 'beta', 'web-0', (p) => (p.metadata!.labels = { app: 'other' })); // another namespace
      srv.addNode(makeNode('n9')); // another kind, same counter
      srv.resources.add(NETWORK_POLICIES, makeRealisticNetworkPolicy('alpha', 'allow', { podSelector: {}, ingress: [{}] }));
      srv.resources.remove(PODS, 'alpha', 'web-3');
      srv.bookmark();
      await waitFor('watch events', () => seen.length >= 3, 5000);
      assert.deepEqual(seen, ['MODIFIED web-1', 'DELETED web-3', `BOOKMARK ${srv.resourceVersion}`]);
      assert.ok(Number(srv.getNode('n9')!.metadata!.resourceVersion) > Number(rv));
    } finally {
      req.abort();
    }
  });

  test('after compaction a watch from an old resourceVersion gets 410', async () => {
    const old = String(srv.resourceVersion);
    srv.resources.modify(NAMESPACES, undefined, 'beta', (n) => (n.metadata!.labels = { team: 'gamma' }));
    srv.compact();
    const events: { type: string; code?: number }[] = [];
    const done = new Promise<void>((resolve) => {
      void new Watch(kc).watch('/api/v1/namespaces', { resourceVersion: old }, (type, obj: { code?: number }) => events.push({ type, code: obj.code }), () => resolve());
    });
    await done;
    assert.deepEqual(events, [{ type: 'ERROR', code: 410 }]);
    // The label change kept the name label the API server enforces.
    assert.equal(srv.resources.list(NAMESPACES).find((n) => n.metadata!.name === 'beta')!.metadata!.labels!['kubernetes.io/metadata.name'], 'beta');
  });
});
