// Every API request bvcnid makes has a deadline (src/kube/client.ts): against
// a plain TCP listener on loopback that accepts and reads and never writes,
// list, watch, get and patch each fail with ETIMEDOUT after --api-timeout;
// against one that sends the headers and then stalls, a list page fails after
// --api-body-timeout. The control: the same calls against a listener that
// answers succeed, so the failures are the deadlines, not the client.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { conditionPatcher, nodeApi, nodeGetter, type ApiBounds } from '../../src/kube/client.js';
import { FakeKubeApiServer } from '../../src/sim/kube-apiserver.js';
import { makeNode } from '../../src/sim/kube-node.js';

const BOUNDS: ApiBounds = { timeoutMs: 300, bodyTimeoutMs: 300 };

/** A TCP listener on loopback; `answer` decides what (if anything) is written back to each request. */
async function listener(answer: (s: Socket) => void): Promise<{ server: Server; port: number; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.once('data', () => answer(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('no port');
  return { server, port: addr.port, sockets };
}

function kubeconfig(port: number): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromString(
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: `http://127.0.0.1:${port}`, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'u', user: { token: 't' } }],
      contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'x',
    }),
  );
  return kc;
}

const timedOut = (what: RegExp) => (e: unknown): boolean => {
  const err = e as { code?: unknown; message?: unknown };
  return err.code === 'ETIMEDOUT' && what.test(String(err.message));
};

describe('API request deadlines', () => {
  let silent: Awaited<ReturnType<typeof listener>>;
  let stalling: Awaited<ReturnType<typeof listener>>;
  let real: FakeKubeApiServer;

  before(async () => {
    // Reads the request, never writes a byte.
    silent = await listener(() => {});
    // The status line and headers of a list, then part of the body, then nothing.
    stalling = await listener((s) => s.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n10\r\n{"kind":"NodeLis\r\n'));
    real = new FakeKubeApiServer();
    await real.start();
    real.addNode(makeNode('kd-a', { podCIDR: '10.244.1.0/24', internalIP: '192.0.2.11' }));
  });

  after(async () => {
    for (const l of [silent, stalling]) {
      for (const s of l.sockets) s.destroy();
      await new Promise((r) => l.server.close(r));
    }
    await real.close();
  });

  test('control: list, watch, get and patch answer within the same bounds when the server answers', async () => {
    const kc = kubeconfig(real.port);
    const { items, resourceVersion } = await nodeApi(kc, BOUNDS).list();
    assert.deepEqual(items.map((n) => n.metadata?.name), ['kd-a']);
    const events: string[] = [];
    let done: unknown = 'not yet';
    const h = await nodeApi(kc, BOUNDS).watch(resourceVersion, (type, o) => events.push(`${type} ${(o as { metadata?: { name?: string } }).metadata?.name}`), (e) => (done = e));
    real.addNode(makeNode('kd-b', { podCIDR: '10.244.2.0/24', internalIP: '192.0.2.12' }));
    for (let i = 0; i < 100 && events.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(events, ['ADDED kd-b']);
    // A watch's body has no deadline: it is still open well past bodyTimeoutMs.
    await new Promise((r) => setTimeout(r, 2 * BOUNDS.bodyTimeoutMs));
    assert.equal(done, 'not yet', 'the stream is not cut by the body deadline');
    h.abort();
    assert.equal(done, null);
    assert.equal((await nodeGetter(kc, BOUNDS)('kd-a'))?.metadata?.name, 'kd-a');
    await conditionPatcher(kc, BOUNDS).setNetworkAvailable('kd-a', 'test');
    real.deleteNode('kd-b');
  });

  test('a server that never answers: every request fails with ETIMEDOUT after --api-timeout', async () => {
    const kc = kubeconfig(silent.port);
    await assert.rejects(nodeApi(kc, BOUNDS).list(), timedOut(/GET \/api\/v1\/nodes: no response within 300 ms/));
    await assert.rejects(nodeGetter(kc, BOUNDS)('kd-a'), timedOut(/no response within 300 ms/));
    await assert.rejects(conditionPatcher(kc, BOUNDS).setNetworkAvailable('kd-a', 'x'), timedOut(/PATCH .*no response within 300 ms/));
    let done: unknown;
    let opened = false;
    const watching = nodeApi(kc, BOUNDS).watch('1', () => {}, (e) => (done = e));
    await watching.then(() => (opened = true));
    assert.ok(opened, 'the watch call returns (a spent handle) instead of hanging');
    assert.ok(timedOut(/no response within 300 ms/)(done), `the watch reports the timeout: ${String(done)}`);
    // Nothing is left connected: each timed-out request closed its socket.
    for (let i = 0; i < 100 && silent.sockets.size > 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(silent.sockets.size, 0);
  });

  test('a list page whose body stalls fails after --api-body-timeout', async () => {
    const kc = kubeconfig(stalling.port);
    await assert.rejects(nodeApi(kc, BOUNDS).list(), timedOut(/body not complete within 300 ms/));
  });
});
