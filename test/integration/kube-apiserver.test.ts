// The fake API server against the real @kubernetes/client-node (its informer,
// Watch and CoreV1Api), and the daemon's own informer against both. Loopback
// only: no namespaces needed.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  Watch,
  makeInformer,
  setHeaderOptions,
  type V1Node,
} from '@kubernetes/client-node';
import { createServer } from 'node:http';
import { FakeKubeApiServer } from '../../src/sim/kube-apiserver.js';
import { makeNode } from '../../src/sim/kube-node.js';
import { makeRealisticNode } from '../support/kube-nodes.js';
import { waitFor } from '../support/kube-util.js';
import { NodeInformer } from '../../src/kube/informer.js';
import { conditionPatcher, describeApiError, nodeApi, nodeGetter, slimNode } from '../../src/kube/client.js';
import { makeServerTls, type ServerTls } from '../../src/sim/tls.js';
import { Backoff } from '../../src/common/backoff.js';

function client(srv: FakeKubeApiServer): { kc: KubeConfig; core: CoreV1Api } {
  const kc = new KubeConfig();
  kc.loadFromString(srv.kubeconfig());
  return { kc, core: kc.makeApiClient(CoreV1Api) };
}

describe('fake kube-apiserver with the real client library', () => {
  let srv: FakeKubeApiServer;
  const stops: (() => unknown)[] = [];
  before(async () => {
    srv = new FakeKubeApiServer();
    await srv.start();
  });
  after(async () => {
    for (const s of stops) await s();
    await srv.close();
  });

  test('client-node informer lists existing nodes, then sees add, modify and delete over the watch', async () => {
    srv.addNode(makeNode('n1', { podCIDR: '10.244.1.0/24', internalIP: '192.0.2.11' }));
    const { kc, core } = client(srv);
    const inf = makeInformer(kc, '/api/v1/nodes', () => core.listNode());
    const seen: string[] = [];
    inf.on('add', (n) => seen.push(`add:${n.metadata?.name}`));
    inf.on('update', (n) => seen.push(`update:${n.metadata?.name}:${n.spec?.podCIDR}`));
    inf.on('delete', (n) => seen.push(`delete:${n.metadata?.name}`));
    await inf.start();
    stops.push(() => inf.stop());
    await waitFor('initial list', () => seen.includes('add:n1'));
    await waitFor('watch open', () => srv.watchCount > 0);
    srv.addNode(makeNode('n2', { podCIDR: '10.244.2.0/24', internalIP: '192.0.2.12' }));
    srv.modifyNode('n2', (n) => (n.spec = { podCIDR: '10.244.9.0/24' }));
    srv.deleteNode('n1');
    await waitFor('events', () => seen.includes('delete:n1'));
    assert.deepEqual(seen, ['add:n1', 'add:n2', 'update:n2:10.244.9.0/24', 'delete:n1']);
    assert.equal((inf as unknown as { latestResourceVersion(): string }).latestResourceVersion(), String(srv.resourceVersion));
    assert.deepEqual(inf.list().map((n: V1Node) => n.metadata?.name), ['n2']);
    await inf.stop();
    srv.deleteNode('n2');
  });

  test('watch streams are chunked JSON lines and BOOKMARK events carry the current resourceVersion', async () => {
    const { kc } = client(srv);
    const events: { type: string; rv?: string }[] = [];
    const w = new Watch(kc);
    const startRv = String(srv.resourceVersion);
    let done: unknown = 'open';
    const ctl = await w.watch(
      '/api/v1/nodes',
      { resourceVersion: startRv, allowWatchBookmarks: true },
      (type: string, obj: { metadata?: { resourceVersion?: string } }) => events.push({ type, rv: obj.metadata?.resourceVersion }),
      (err: unknown) => (done = err),
    );
    stops.push(() => ctl.abort());
    await waitFor('watch registered', () => srv.watchCount === 1);
    srv.addNode(makeNode('b1', { podCIDR: '10.244.3.0/24', internalIP: '192.0.2.13' }));
    assert.equal(srv.bookmark(), 1);
    await waitFor('bookmark', () => events.some((e) => e.type === 'BOOKMARK'));
    assert.deepEqual(events, [
      { type: 'ADDED', rv: String(srv.resourceVersion) },
      { type: 'BOOKMARK', rv: String(srv.resourceVersion) },
    ]);
    srv.endWatches();
    await waitFor('stream end reported', () => done === null);
    const rec = srv.requests.filter((r) => r.verb === 'watch').at(-1)!;
    assert.match(rec.url, /allowWatchBookmarks=true/);
    srv.deleteNode('b1');
  });

  test('a compacted resourceVersion: 410 as a watch ERROR event makes client-node relist and drop vanished nodes', async () => {
    srv.addNode(makeNode('g1', { podCIDR: '10.244.4.0/24', internalIP: '192.0.2.14' }));
    const { kc, core } = client(srv);
    const inf = makeInformer(kc, '/api/v1/nodes', () => core.listNode());
    const deleted: string[] = [];
    inf.on('delete', (n) => deleted.push(n.metadata!.name!));
    const listsBefore = srv.countRequests('list');
    await inf.start();
    stops.push(() => inf.stop());
    await waitFor('watch open', () => srv.watchCount > 0);
    // The object vanishes while the event history is lost: only a relist can tell.
    await srv.stop();
    srv.deleteNode('g1');
    srv.compact();
    await srv.start();
    // client-node reports the dropped connection as an error and stops: restart it as a supervisor would.
    await waitFor('error seen', () => srv.watchCount === 0);
    await inf.start();
    await waitFor('relisted after 410', () => deleted.includes('g1'), 10_000);
    assert.ok(srv.countRequests('list') >= listsBefore + 2, 'listed again');
    assert.ok(srv.requests.some((r) => r.verb === 'watch' && r.status === 200), 'watch answered');
    await inf.stop();
  });

  test('410 as an HTTP status and as an ERROR event both make the daemon informer relist', async () => {
    for (const goneAs of ['status', 'event'] as const) {
      const s = new FakeKubeApiServer({ goneAs });
      await s.start();
      try {
        s.addNode(makeNode('a', { podCIDR: '10.244.1.0/24', internalIP: '192.0.2.11' }));
        s.addNode(makeNode('b', { podCIDR: '10.244.2.0/24', internalIP: '192.0.2.12' }));
        const { kc } = client(s);
        const deleted: string[] = [];
        let synced = 0;
        const inf = new NodeInformer(nodeApi(kc), { delete: (n) => deleted.push(n.metadata!.name!), synced: () => synced++ });
        inf.start();
        try {
          await waitFor('first sync', () => synced === 1 && s.watchCount === 1);
          await s.stop();
          s.deleteNode('b');
          s.compact();
          await s.start();
          await waitFor(`relist (${goneAs})`, () => synced === 2, 15_000);
          assert.deepEqual(deleted, ['b']);
          assert.deepEqual(inf.list().map((n) => n.metadata?.name), ['a']);
          assert.equal(inf.stats.relistsOnGone, 1);
          const watches = s.requests.filter((r) => r.verb === 'watch');
          assert.ok(watches.some((r) => r.status === (goneAs === 'status' ? 410 : 200)));
        } finally {
          await inf.stop();
        }
      } finally {
        await s.close();
      }
    }
  });

  test('a dropped watch connection: the informer reconnects from its resourceVersion without relisting', async () => {
    const { kc } = client(srv);
    const added: string[] = [];
    const inf = new NodeInformer(nodeApi(kc), { add: (n) => added.push(n.metadata!.name!) }, { backoff: new Backoff({ initialMs: 10 }) });
    inf.start();
    try {
      await waitFor('watch open', () => srv.watchCount === 1);
      const lists = srv.countRequests('list');
      assert.equal(srv.dropWatches(), 1);
      srv.addNode(makeNode('d1', { podCIDR: '10.244.5.0/24', internalIP: '192.0.2.15' }));
      await waitFor('event after reconnect', () => added.includes('d1'));
      assert.equal(srv.countRequests('list'), lists, 'no relist: the resourceVersion was still valid');
      assert.equal(inf.resourceVersion, String(srv.resourceVersion));
    } finally {
      await inf.stop();
      srv.deleteNode('d1');
    }
  });

  test('API outage: the informer keeps its cache, retries with backoff and resyncs when the server is back', async () => {
    const { kc } = client(srv);
    const errors: number[] = [];
    // What the daemon logs and labels bvcni_api_errors_total with.
    const codes = new Set<string>();
    let synced = 0;
    const inf = new NodeInformer(
      nodeApi(kc),
      { error: (e, delay) => (errors.push(delay), codes.add(describeApiError(e).code)), synced: () => synced++ },
      { backoff: new Backoff({ initialMs: 50, maxMs: 400, jitter: 0 }) },
    );
    srv.addNode(makeNode('o1', { podCIDR: '10.244.6.0/24', internalIP: '192.0.2.16' }));
    inf.start();
    try {
      await waitFor('synced', () => synced === 1 && srv.watchCount === 1);
      await srv.stop();
      await waitFor('several retries', () => errors.length >= 4, 10_000);
      // The cut stream may first count as a clean end (one backoff step without an error report).
      for (let i = 1; i < errors.length; i++) assert.equal(errors[i], Math.min(400, errors[i - 1]! * 2), `backoff doubles to its bound: ${errors}`);
      assert.equal(errors.at(-1), 400);
      assert.deepEqual(inf.list().map((n) => n.metadata?.name), ['o1'], 'cache kept during the outage');
      assert.ok(codes.has('ECONNREFUSED') && !codes.has('unknown'), `errors named by their cause: ${[...codes]}`);
      srv.addNode(makeNode('o2', { podCIDR: '10.244.7.0/24', internalIP: '192.0.2.17' }));
      await srv.start();
      await waitFor('resync', () => inf.get('o2') !== undefined, 10_000);
      assert.equal(inf.backoff.attempts, 0, 'backoff reset by events');
    } finally {
      await inf.stop();
      await srv.start();
      srv.deleteNode('o1');
      srv.deleteNode('o2');
    }
  });

  test('PATCH of node status through client-node: strategic merge keeps other conditions, emits MODIFIED', async () => {
    srv.addNode(makeNode('p1', { podCIDR: '10.244.8.0/24', internalIP: '192.0.2.18' }));
    const { core } = client(srv);
    const rv = srv.resourceVersion;
    await core.patchNodeStatus(
      { name: 'p1', body: { status: { conditions: [{ type: 'NetworkUnavailable', status: 'False', reason: 'BvcniIsUp' }] } } },
      setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
    );
    const n = srv.getNode('p1')!;
    assert.deepEqual(n.status?.conditions?.map((c) => `${c.type}=${c.status}`), ['Ready=False', 'NetworkUnavailable=False']);
    assert.equal(n.metadata?.resourceVersion, String(rv + 1));
    // JSON patch (client-node's default) and merge patch work too; a missing node is a 404 ApiException.
    await core.patchNodeStatus({ name: 'p1', body: [{ op: 'replace', path: '/status/conditions/1/status', value: 'True' }] });
    assert.equal(srv.getNode('p1')!.status?.conditions?.[1]?.status, 'True');
    await assert.rejects(
      core.patchNodeStatus({ name: 'nope', body: [] }),
      (e: { code?: number }) => e.code === 404,
    );
    srv.deleteNode('p1');
  });

  test('list with limit and continue pages through every node', async () => {
    for (let i = 0; i < 5; i++) srv.addNode(makeNode(`l${i}`, { podCIDR: `10.244.${20 + i}.0/24`, internalIP: `192.0.2.${30 + i}` }));
    const { core } = client(srv);
    const names: string[] = [];
    let cont: string | undefined;
    let pages = 0;
    do {
      const page = await core.listNode({ limit: 2, _continue: cont });
      names.push(...page.items.map((n) => n.metadata!.name!));
      cont = page.metadata?._continue;
      pages++;
    } while (cont);
    assert.equal(pages, 3);
    assert.deepEqual(names, ['l0', 'l1', 'l2', 'l3', 'l4']);
    for (let i = 0; i < 5; i++) srv.deleteNode(`l${i}`);
  });

  test('paging follows changes between pages: a continue token names a position, not a node', async () => {
    for (const n of ['m1', 'm3', 'm5', 'm7']) srv.addNode(makeNode(n, { podCIDR: '10.244.40.0/24', internalIP: '192.0.2.40' }));
    const { core } = client(srv);
    const first = await core.listNode({ limit: 2 });
    assert.deepEqual(first.items.map((n) => n.metadata!.name), ['m1', 'm3']);
    assert.equal(first.metadata?.remainingItemCount, 2);
    // The page's last node goes, one sorts before the position, one after it.
    srv.deleteNode('m3');
    srv.addNode(makeNode('m2', { podCIDR: '10.244.41.0/24', internalIP: '192.0.2.41' }));
    srv.addNode(makeNode('m4', { podCIDR: '10.244.42.0/24', internalIP: '192.0.2.42' }));
    const second = await core.listNode({ limit: 2, _continue: first.metadata!._continue });
    assert.deepEqual(second.items.map((n) => n.metadata!.name), ['m4', 'm5']);
    assert.equal(second.metadata?.remainingItemCount, 1);
    assert.equal(second.metadata?.resourceVersion, first.metadata?.resourceVersion, 'a continued list keeps its resourceVersion');
    const last = await core.listNode({ limit: 2, _continue: second.metadata!._continue });
    assert.deepEqual(last.items.map((n) => n.metadata!.name), ['m7']);
    assert.equal(last.metadata?._continue, undefined);
    // After compaction the same token has expired.
    srv.compact();
    await assert.rejects(core.listNode({ limit: 2, _continue: second.metadata!._continue }), (e: { code?: number }) => e.code === 410);
    for (const n of ['m1', 'm2', 'm4', 'm5', 'm7']) srv.deleteNode(n);
  });

  test('the daemon lists kubelet-sized Nodes page by page, each slimmed, in name order', async () => {
    const s = new FakeKubeApiServer();
    await s.start();
    try {
      // More than two of the daemon's pages (500).
      const count = 1100;
      for (let i = 0; i < count; i++) s.addNode(makeRealisticNode(`big-${String(i).padStart(4, '0')}`, { podCIDR: `10.${1 + (i >> 8)}.${i & 255}.0/24`, internalIP: `198.18.${i >> 8}.${i & 255}` }));
      const { kc } = client(s);
      const { items, resourceVersion } = await nodeApi(kc).list();
      assert.equal(resourceVersion, String(s.resourceVersion));
      assert.deepEqual(items, s.listNodes().map((n) => slimNode(JSON.parse(JSON.stringify(n)))));
      assert.equal(items[1099]!.spec?.podCIDR, '10.5.75.0/24');
      assert.equal(s.requests.filter((r) => r.verb === 'list').length, 3);
    } finally {
      await s.close();
    }
  });

  test('a 2xx list answer that is not a JSON list rejects, on any page; a 410 stays an ApiException with code 410', async () => {
    let script: [number, string][] = [];
    let next = 0;
    const raw = createServer((req, res) => {
      req.resume();
      const [status, body] = script[next++] ?? [500, '{"kind":"Status","code":500,"message":"unexpected request"}'];
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(body);
    });
    await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
    try {
      const port = (raw.address() as { port: number }).port;
      const kc = new KubeConfig();
      kc.loadFromString(JSON.stringify({
        clusters: [{ name: 'raw', cluster: { server: `http://127.0.0.1:${port}`, 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'raw', user: { token: 't' } }],
        contexts: [{ name: 'raw', context: { cluster: 'raw', user: 'raw' } }],
        'current-context': 'raw',
      }));
      const api = nodeApi(kc);
      const list = (answers: [number, string][]): ReturnType<typeof api.list> => {
        script = answers;
        next = 0;
        return api.list();
      };
      const first = '{"kind":"NodeList","metadata":{"resourceVersion":"7","continue":"c1"},"items":[{"metadata":{"name":"a"}}]}';
      const last = '{"kind":"NodeList","metadata":{"resourceVersion":"7"},"items":[{"metadata":{"name":"b"}}]}';
      const notList = /not a list|not JSON/;
      const big = Array.from({ length: 3000 }, (_, i) => JSON.stringify(makeRealisticNode(`x${i}`, { images: 0 }))).join(',');
      assert.ok(big.length > 2 << 20);
      for (const body of [
        '{"kind":"Status","status":"Success"}',
        '{"kind":"NodeList","items":{}}',
        '{"kind":"NodeList","items":[{"metadata":{"name":"a"}},{"metadata":',
        '{"kind":"NodeList","items":[{"metadata":{"name":"a"}} {"metadata":{"name":"b"}}]}',
        '<html>ok</html>',
        '',
        // Beyond the size the daemon parses at once, read item by item.
        `{"kind":"NodeList","items":[${big},{"metadata":{"name":"a"}} {"metadata":{"name":"b"}}]}`,
        `{"kind":"NodeList","items":[${big},{"metadata":{"name":"a"}}`,
        `{"kind":"Status","message":"${'x'.repeat(2 << 20)}"}`,
      ]) {
        await assert.rejects(list([[200, body]]), (e: Error & { code?: unknown }) => e.code === undefined && notList.test(e.message), body);
        // The same as a later page.
        await assert.rejects(list([[200, first], [200, body]]), (e: Error & { code?: unknown }) => e.code === undefined && notList.test(e.message), `page 2: ${body}`);
      }
      const gone = '{"kind":"Status","code":410,"reason":"Expired","message":"too old"}';
      await assert.rejects(list([[410, gone]]), (e: { code?: unknown; message?: string }) => e.code === 410 && e.message?.includes('too old') === true);
      await assert.rejects(list([[200, first], [410, gone]]), (e: { code?: unknown }) => e.code === 410);
      const bigList = await list([[200, `{"kind":"NodeList","metadata":{"resourceVersion":"8"},"items":[${big}]}`]]);
      assert.equal(bigList.items.length, 3000);
      assert.deepEqual(bigList.items[2999], slimNode(JSON.parse(JSON.stringify(makeRealisticNode('x2999', { images: 0 })))));
      assert.equal(bigList.resourceVersion, '8');
      assert.deepEqual(await list([[200, first], [200, last]]), {
        items: [slimNode({ metadata: { name: 'a' } }), slimNode({ metadata: { name: 'b' } })],
        resourceVersion: '7',
      });
    } finally {
      await new Promise<void>((r) => raw.close(() => r()));
    }
  });
});

/** Whether an error (or any error in its cause chain, as fetch wraps them) is a failed certificate check. */
function isCertError(e: unknown): boolean {
  for (let c: unknown = e, depth = 0; c && depth < 5; c = (c as { cause?: unknown }).cause, depth++) {
    const code = (c as { code?: unknown }).code;
    if (typeof code === 'string' && /CERT|VERIFY|SELF_SIGNED|ISSUER/.test(code)) return true;
  }
  return false;
}

describe('the fake API server over TLS, verified with the CA the kubeconfig names', () => {
  let srv: FakeKubeApiServer;
  let tls: ServerTls;
  before(async () => {
    tls = makeServerTls(['127.0.0.1']);
    srv = new FakeKubeApiServer({ tls });
    await srv.start();
  });
  after(async () => {
    await srv.close();
  });

  const load = (yaml: string): KubeConfig => {
    const kc = new KubeConfig();
    kc.loadFromString(yaml);
    return kc;
  };

  test('the daemon lists, watches, reads and patches over HTTPS, without insecure-skip-tls-verify', async () => {
    const kc = load(srv.kubeconfig());
    const cluster = kc.getCurrentCluster()!;
    assert.match(cluster.server, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(cluster.skipTLSVerify, false);
    assert.ok(cluster.caData, 'the kubeconfig carries the CA');
    srv.addNode(makeNode('t1', { podCIDR: '10.244.1.0/24', internalIP: '192.0.2.11' }));
    const added: string[] = [];
    let synced = 0;
    const inf = new NodeInformer(nodeApi(kc), { add: (n) => added.push(n.metadata!.name!), synced: () => synced++ });
    inf.start();
    try {
      await waitFor('list and watch over TLS', () => synced === 1 && srv.watchCount === 1);
      srv.addNode(makeNode('t2', { podCIDR: '10.244.2.0/24', internalIP: '192.0.2.12' }));
      await waitFor('watch event over TLS', () => added.includes('t2'));
      assert.deepEqual(added, ['t1', 't2']);
      assert.equal(srv.countRequests('list'), 1, 't2 came over the watch, not a relist');
      assert.equal(inf.resourceVersion, String(srv.resourceVersion));
      await conditionPatcher(kc).setNetworkAvailable('t1', 'over TLS');
      const t1 = await nodeGetter(kc)('t1');
      assert.equal(t1?.metadata?.name, 't1');
      assert.equal(srv.getNode('t1')?.status?.conditions?.find((c) => c.type === 'NetworkUnavailable')?.message, 'over TLS');
    } finally {
      await inf.stop();
      srv.deleteNode('t1');
      srv.deleteNode('t2');
    }
  });

  test('a kubeconfig naming another CA is refused: neither list nor watch reaches the server', async () => {
    const other = makeServerTls(['127.0.0.1']);
    const wrong = nodeApi(load(srv.kubeconfig(undefined, other.ca)));
    const before = srv.requests.length;
    await assert.rejects(wrong.list(), (e) => isCertError(e), 'list');
    const watchErr = await new Promise<unknown>((resolve, reject) => {
      wrong.watch('100', () => reject(new Error('an event over an unverified connection')), resolve).catch(reject);
    });
    assert.ok(isCertError(watchErr), `watch: ${String(watchErr)}`);
    assert.equal(srv.requests.length, before, 'no request got past the handshake');
    // The control: the same server and client code with the right CA get an answer.
    assert.equal((await nodeApi(load(srv.kubeconfig())).list()).resourceVersion, String(srv.resourceVersion));
    assert.equal(srv.requests.length, before + 1);
  });
});
