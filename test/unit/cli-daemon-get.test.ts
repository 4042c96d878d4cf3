// bvcnictl's GET on bvcnid's health listener (daemonGet): made in this process,
// with no child, when no namespace switch is needed; its answers and failures
// as values. (The --netns child is proven on simulated nodes:
// test/integration/policy-monitor.test.ts.)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { daemonGet, needsNetnsSwitch } from '../../src/cli/inspect.js';

describe('daemonGet', () => {
  let server: Server;
  let addr: string;
  let hang: (() => void) | undefined;
  const children: string[] = [];
  const watch = ({ process: child }: { process: { spawnfile: string | null } }): void => void children.push(String(child.spawnfile));

  before(async () => {
    server = createServer((req, res) => {
      if (req.url === '/hang') {
        hang = () => res.end();
        return;
      }
      res.writeHead(req.url === '/endpoints' ? 200 : 404).end(req.url === '/endpoints' ? '{"endpoints":{}}' : 'no');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    addr = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    subscribe('child_process', watch as (m: unknown) => void);
  });
  after(() => {
    unsubscribe('child_process', watch as (m: unknown) => void);
    hang?.();
    server.close();
  });

  test('no namespace, or this thread\'s own under another name: no switch; a path that is no namespace: the child (which reports it)', () => {
    assert.equal(needsNetnsSwitch(undefined), false);
    assert.equal(needsNetnsSwitch('/proc/self/ns/net'), false);
    assert.equal(needsNetnsSwitch('/proc/thread-self/ns/net'), false);
    assert.equal(needsNetnsSwitch('/proc/self/ns/uts'), true, 'another namespace file');
    assert.equal(needsNetnsSwitch('/nonexistent/netns'), true);
  });

  test('in-process: the status and body, with no child started', async () => {
    children.length = 0;
    assert.deepEqual(await daemonGet(addr, '/endpoints'), { status: 200, body: '{"endpoints":{}}' });
    assert.deepEqual(await daemonGet(addr, '/other', '/proc/self/ns/net'), { status: 404, body: 'no' });
    assert.deepEqual(children, []);
  });

  test('nothing listening: an error value, not a throw', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    assert.deepEqual(await daemonGet(`127.0.0.1:${port}`, '/endpoints'), { error: 'ECONNREFUSED' });
  });

  test('an abort ends a request bvcnid never answers', async () => {
    const ac = new AbortController();
    const r = daemonGet(addr, '/hang', undefined, ac.signal);
    setImmediate(() => ac.abort());
    const got = await r;
    assert.ok('error' in got, JSON.stringify(got));
  });
});
