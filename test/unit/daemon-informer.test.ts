// The daemon's informer against a scripted API and a manual clock: relist on
// 410, bookmarks advancing the resourceVersion, quiet dispatch, bounded
// backoff reset by events, and the idle-watch watchdog — no sockets, no waits.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { NodeInformer, type NodeApi, type NodeListResult } from '../../src/daemon/informer.js';
import { Backoff, type Clock } from '../../src/daemon/backoff.js';
import type { NodeLike } from '../../src/daemon/desired.js';

class ManualClock implements Clock {
  t = 0;
  private timers = new Map<number, { at: number; fn: () => void }>();
  private seq = 0;
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.timers.delete(h as number);
  }
  /** Delays of the pending timers, soonest first. */
  pending(): number[] {
    return [...this.timers.values()].map((x) => x.at - this.t).sort((a, b) => a - b);
  }
  async advance(ms: number): Promise<void> {
    this.t += ms;
    for (const [id, x] of [...this.timers]) {
      if (x.at <= this.t) {
        this.timers.delete(id);
        x.fn();
      }
    }
    await flush();
  }
}

const flush = async (): Promise<void> => {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
};

const node = (name: string, rv: string): NodeLike => ({ metadata: { name, resourceVersion: rv }, spec: { podCIDR: '10.244.1.0/24' } });

interface OpenWatch {
  rv: string;
  emit(type: string, obj: unknown): void;
  end(err: unknown): void;
  aborted: boolean;
}

class ScriptedApi implements NodeApi {
  lists: (NodeListResult | Error)[] = [];
  listCalls = 0;
  watches: OpenWatch[] = [];
  watchFailures: Error[] = [];
  async list(): Promise<NodeListResult> {
    this.listCalls++;
    const next = this.lists.shift();
    if (!next) throw new Error('no list scripted');
    if (next instanceof Error) throw next;
    return next;
  }
  async watch(rv: string, onEvent: (t: string, o: unknown) => void, onDone: (e: unknown) => void): Promise<{ abort(): void }> {
    const f = this.watchFailures.shift();
    if (f) {
      onDone(f);
      return { abort() {} };
    }
    const w: OpenWatch = { rv, emit: onEvent, end: onDone, aborted: false };
    this.watches.push(w);
    return {
      abort: () => {
        w.aborted = true;
        onDone(Object.assign(new Error('aborted'), { name: 'AbortError' }));
      },
    };
  }
  get last(): OpenWatch {
    return this.watches.at(-1)!;
  }
}

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

  test('a watch that stays silent past the idle timeout is aborted and resumed from its resourceVersion', async () => {
    const { api, inf, clock } = setup();
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
    await clock.advance(clock.pending()[0] ?? 0); // the backoff before reconnecting
    assert.notEqual(api.last, first);
    assert.equal(api.last.rv, '12');
    assert.equal(api.listCalls, 1);
    await inf.stop();
  });
});
