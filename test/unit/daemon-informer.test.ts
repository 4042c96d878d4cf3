// The daemon's informer against a scripted API and a manual clock: relist on
// 410, bookmarks advancing the resourceVersion, quiet dispatch, bounded
// backoff reset by events, and the idle-watch watchdog — no sockets, no waits.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { NodeInformer } from '../../src/kube/informer.js';
import { Backoff } from '../../src/common/backoff.js';
import { ManualClock, ScriptedApi, flush, node } from '../support/scripted-api.js';

function setup(): { api: ScriptedApi; clock: ManualClock; inf: NodeInformer; seen: string[]; errors: number[] } {
  const api = new ScriptedApi();
  const clock = new ManualClock();
  const seen: string[] = [];
  const errors: number[] = [];
  const inf = new NodeInformer(
    api,
    {
      add: (n) => seen.push(`add ${n.metadata?.name}`),
      update: (n) => seen.push(`update ${n.metadata?.name}@${n.metadata?.resourceVersion}`),
      delete: (n) => seen.push(`delete ${n.metadata?.name}`),
      synced: (g) => seen.push(`synced ${g}`),
      error: (_e, d) => errors.push(d),
    },
    { clock, backoff: new Backoff({ initialMs: 100, maxMs: 800, jitter: 0 }), idleTimeoutMs: 60_000 },
  );
  return { api, clock, inf, seen, errors };
}

describe('node informer (scripted API, manual clock)', () => {
  test('a watch ERROR 410 relists and emits deletes for nodes that vanished meanwhile', async () => {
    const { api, inf, seen } = setup();
    api.lists.push({ items: [node('a', '5'), node('b', '6')], resourceVersion: '10' });
    inf.start();
    await flush();
    assert.equal(api.last.rv, '10', 'watch starts at the list resourceVersion');
    api.lists.push({ items: [node('a', '5')], resourceVersion: '20' });
    api.last.emit('ERROR', { kind: 'Status', code: 410, reason: 'Expired' });
    api.last.end(null);
    await flush();
    assert.deepEqual(seen, ['add a', 'add b', 'synced 1', 'delete b', 'synced 2']);
    assert.equal(api.last.rv, '20');
    assert.equal(inf.stats.relistsOnGone, 1);
    await inf.stop();
  });

  test('an HTTP 410 on the watch request relists too', async () => {
    const { api, inf, seen } = setup();
    api.lists.push({ items: [], resourceVersion: '1' }, { items: [node('c', '3')], resourceVersion: '4' });
    api.watchFailures.push(Object.assign(new Error('Gone'), { statusCode: 410 }));
    inf.start();
    await flush();
    assert.deepEqual(seen, ['synced 1', 'add c', 'synced 2']);
    await inf.stop();
  });

  test('BOOKMARK advances the resourceVersion the next watch resumes from; unchanged updates are not dispatched', async () => {
    const { api, inf, seen } = setup();
    api.lists.push({ items: [node('a', '5')], resourceVersion: '10' });
    inf.start();
    await flush();
    api.last.emit('MODIFIED', node('a', '5')); // same resourceVersion: nothing changed
    api.last.emit('MODIFIED', node('a', '11'));
    api.last.emit('BOOKMARK', { kind: 'Node', metadata: { resourceVersion: '42' } });
    api.last.end(null); // server-side timeout: clean end
    await flush();
    assert.equal(api.last.rv, '42');
    assert.equal(api.listCalls, 1, 'no relist for a clean end');
    assert.deepEqual(seen, ['add a', 'synced 1', 'update a@11']);
    await inf.stop();
  });

  test('errors back off exponentially to the bound; an event resets the backoff', async () => {
    const { api, inf, clock, errors } = setup();
    api.lists.push(new Error('ECONNREFUSED'), new Error('ECONNREFUSED'), new Error('ECONNREFUSED'), new Error('ECONNREFUSED'), new Error('ECONNREFUSED'));
    inf.start();
    await flush();
    for (let i = 0; i < 4; i++) await clock.advance(clock.pending()[0]!);
    assert.deepEqual(errors, [100, 200, 400, 800, 800]);
    api.lists.push({ items: [node('a', '1')], resourceVersion: '2' });
    await clock.advance(800);
    assert.equal(inf.size, 1);
    api.last.emit('ADDED', node('b', '3'));
    assert.equal(inf.backoff.attempts, 0);
    await inf.stop();
  });

  test('a watch that stays silent past the idle timeout is aborted and resumed at once from its resourceVersion', async () => {
    const { api, inf, clock, errors } = setup();
    api.lists.push({ items: [node('a', '5')], resourceVersion: '10' });
    inf.start();
    await flush();
    const first = api.last;
    await clock.advance(59_000);
    assert.equal(first.aborted, false);
    first.emit('BOOKMARK', { metadata: { resourceVersion: '12' } }); // activity re-arms the watchdog
    await clock.advance(59_000);
    assert.equal(first.aborted, false);
    await clock.advance(1_000);
    assert.equal(first.aborted, true);
    assert.equal(inf.stats.idleAborts, 1);
    // No backoff and no error: the restart is what the watchdog is for.
    assert.notEqual(api.last, first);
    assert.equal(api.last.rv, '12');
    assert.equal(api.listCalls, 1);
    assert.deepEqual(errors, []);
    // An event on the aborted stream, arriving late, is ignored.
    first.emit('MODIFIED', node('a', '13'));
    assert.equal(inf.get('a')?.metadata?.resourceVersion, '5');
    await inf.stop();
  });

  test('progress: a list, a watch opened and every event (BOOKMARK included) advance lastProgressAt; errors do not', async () => {
    const { api, inf, clock } = setup();
    api.lists.push(new Error('ETIMEDOUT'));
    await clock.advance(1_000);
    inf.start();
    await flush();
    assert.equal(inf.lastProgressAt, 0, 'a failed list is no progress');
    api.lists.push({ items: [], resourceVersion: '10' });
    await clock.advance(clock.pending()[0]!); // the backoff; then the list, then the watch opens
    const listed = clock.now();
    assert.equal(inf.lastProgressAt, listed);
    await clock.advance(30_000);
    api.last.emit('BOOKMARK', { metadata: { resourceVersion: '11' } });
    assert.equal(inf.lastProgressAt, listed + 30_000);
    // Silent past the idle timeout: the restarted watch opening is progress too.
    await clock.advance(60_000);
    assert.equal(inf.stats.idleAborts, 1);
    assert.equal(inf.lastProgressAt, listed + 90_000);
    // A watch ERROR event (not a 410) is an answer, but no progress.
    api.last.emit('ERROR', { kind: 'Status', code: 500, message: 'etcd is unhappy' });
    await flush();
    assert.equal(inf.lastProgressAt, listed + 90_000, 'an ERROR event is no progress');
    await clock.advance(clock.pending()[0]!); // its backoff; the watch reopens
    const reopened = clock.now();
    assert.equal(inf.lastProgressAt, reopened);
    // A watch request that fails is not.
    api.watchFailures.push(new Error('ECONNREFUSED'));
    await clock.advance(60_000);
    assert.equal(inf.stats.idleAborts, 2);
    assert.equal(inf.stats.errors, 3, 'the first list, the ERROR event and this watch');
    assert.equal(inf.lastProgressAt, reopened, 'a failed watch request is no progress');
    await clock.advance(clock.pending()[0]!); // its backoff; then a watch that opens
    assert.equal(inf.lastProgressAt, clock.now());
    await inf.stop();
  });
});
