// bvcnid's liveness and its background NAT count, against a scripted API, a
// fake dataplane and a manual clock: what "stuck" means (and that a quiet
// healthy cluster is not), and that a scrape reads a count instead of
// walking the map.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Daemon } from '../../src/daemon/daemon.js';
import { testDaemonConfig } from '../support/kube-util.js';
import type { AttachedDataplane, DataplaneDriver } from '../../src/daemon/dataplane.js';
import { DaemonMetrics } from '../../src/daemon/metrics.js';
import { BackgroundCount, keyWalk, type EntryWalk } from '../../src/daemon/nat-count.js';
import type { TunnelTable } from '../../src/daemon/reconcile.js';
import type { NodeLike } from '../../src/kube/desired.js';
import type { TunnelKey, TunnelValue } from '../../src/dataplane/abi.js';
import { ManualClock, ScriptedApi, flush, flushUntil } from '../support/scripted-api.js';

const IDLE = 60_000;
const STUCK = 180_000;

class Tunnel implements TunnelTable {
  readonly m = new Map<string, [TunnelKey, TunnelValue]>();
  failing = false;
  entries(): Iterable<[TunnelKey, TunnelValue]> {
    return [...this.m.values()];
  }
  update(k: TunnelKey, v: TunnelValue): void {
    if (this.failing) throw new Error('EPERM: map update');
    this.m.set(`${k.addr}/${k.prefixlen}`, [k, v]);
  }
  delete(k: TunnelKey): boolean {
    return this.m.delete(`${k.addr}/${k.prefixlen}`);
  }
  close(): void {}
}

/** A walk over n entries, `slice` a step, counting the steps taken. */
class FakeWalk implements EntryWalk {
  steps = 0;
  private left: number;
  constructor(n: number, private readonly slice: number) {
    this.left = n;
  }
  get done(): boolean {
    return this.left === 0;
  }
  step(): number {
    this.steps++;
    const k = Math.min(this.slice, this.left);
    this.left -= k;
    return k;
  }
}

const dir = mkdtempSync(join(tmpdir(), 'bvk-health-'));
mkdirSync(join(dir, 'src'), { recursive: true });
writeFileSync(join(dir, 'src/bvcni'), '#!/bin/sh\n');
after(() => rmSync(dir, { recursive: true, force: true }));

const nodeObj = (name: string, cidr: string, ip: string, rv: string): NodeLike => ({
  metadata: { name, resourceVersion: rv },
  spec: { podCIDR: cidr },
  status: { addresses: [{ type: 'InternalIP', address: ip }] },
});

function harness(
  name: string,
  objDir?: string,
): { daemon: Daemon; api: ScriptedApi; clock: ManualClock; tunnel: Tunnel; nat: { n: number }; metrics: DaemonMetrics; ensured: (string | undefined)[] } {
  const ensured: (string | undefined)[] = [];
  const clock = new ManualClock();
  const api = new ScriptedApi();
  const tunnel = new Tunnel();
  const nat = { n: 0 };
  const attached: AttachedDataplane = { mtu: 1450, tunnel, natWalk: (slice) => new FakeWalk(nat.n, slice), close: () => {} };
  let ready = false;
  const dataplane: DataplaneDriver = {
    findUplink: async () => 'eth0',
    ensure: async (c) => (ensured.push(c.objDir), (ready = true), attached),
    remove: async () => {},
    ready: () => ready,
    drops: () => [],
  };
  const cfg = testDaemonConfig(dir, name, { watchIdleTimeoutMs: IDLE, stuckAfterMs: STUCK, natCountIntervalMs: 10_000, ...(objDir ? { objDir } : {}) });
  const metrics = new DaemonMetrics();
  const daemon = new Daemon(cfg, {
    log: pino({ level: 'silent' }),
    api,
    getNode: async () => nodeObj(name, '10.244.1.0/24', '192.0.2.11', '1'),
    patcher: { setNetworkAvailable: async () => {} },
    dataplane,
    metrics,
    clock,
  });
  return { daemon, api, clock, tunnel, nat, metrics, ensured };
}

async function running(h: ReturnType<typeof harness>): Promise<void> {
  h.api.lists.push({ items: [nodeObj('other', '10.244.2.0/24', '192.0.2.12', '5')], resourceVersion: '10' });
  h.daemon.start();
  await flush();
  await flush();
  assert.equal(h.daemon.ready().ready, true, h.daemon.ready().reason);
  assert.equal(h.tunnel.m.size, 2);
}

describe('bvcnid liveness (manual clock)', () => {
  test('a quiet cluster stays live: no Node changes and no bookmarks, only watches restarted after the idle bound', async () => {
    const h = harness('quiet');
    await running(h);
    for (let t = 0; t < 5 * STUCK; t += 10_000) {
      await h.clock.advance(10_000);
      assert.deepEqual(h.daemon.live(), { live: true, reason: 'ok' }, `at ${t / 1000} s`);
    }
    assert.ok(h.api.watches.length >= (5 * STUCK) / IDLE, `watches restarted (${h.api.watches.length})`);
    await h.daemon.stop();
    assert.equal(h.daemon.live().live, false);
  });

  test('API sync stuck: with every request failing, live turns false after the bound (not before); a watch that opens restores it', async () => {
    const h = harness('hung');
    await running(h);
    const since = h.clock.now();
    // From now on every watch fails (as requests that time out do) and the open one goes silent.
    for (let i = 0; i < 1000; i++) h.api.watchFailures.push(Object.assign(new Error('no response within 30000 ms'), { code: 'ETIMEDOUT' }));
    let failedAt: number | undefined;
    while (failedAt === undefined && h.clock.now() - since < 2 * STUCK) {
      await h.clock.advance(1_000);
      if (!h.daemon.live().live) failedAt = h.clock.now();
    }
    assert.ok(failedAt !== undefined, 'live turned false');
    // The last progress was the watch opened at `since`.
    assert.equal(failedAt - since, STUCK + 1_000);
    assert.match(h.daemon.live().reason, /API sync stuck: no list, watch progress or answer for 181 s/);
    assert.equal(h.daemon.ready().ready, true, 'still ready: the dataplane and the map are fine');
    h.api.watchFailures.length = 0;
    // The next retry opens a watch. Its backoff is jittered (up to 12 s), so the soonest timer may be
    // another one (the NAT count's, every 10 s): step timer by timer until the watch is open.
    const open = h.api.watches.length;
    for (let i = 0; i < 10 && h.api.watches.length === open; i++) {
      await h.clock.advance(h.clock.pending()[0]!);
      await flushUntil(() => h.api.watches.length > open, 20);
    }
    assert.ok(h.api.watches.length > open, 'a watch opened');
    await flushUntil(() => h.daemon.live().live);
    assert.deepEqual(h.daemon.live(), { live: true, reason: 'ok' });
    await h.daemon.stop();
  });

  test('reconcile loop stuck: a change that cannot be applied turns live false after the bound while the API sync is fine', async () => {
    const h = harness('recon');
    await running(h);
    h.tunnel.failing = true;
    const since = h.clock.now();
    h.api.last.emit('ADDED', nodeObj('third', '10.244.3.0/24', '192.0.2.13', '11'));
    await flush();
    while (h.daemon.live().live && h.clock.now() - since < 2 * STUCK) {
      await h.clock.advance(1_000);
      h.api.last.emit('BOOKMARK', { metadata: { resourceVersion: String(12 + (h.clock.now() - since)) } });
    }
    assert.equal(h.clock.now() - since, STUCK + 1_000, 'exactly past the bound');
    assert.match(h.daemon.live().reason, /reconcile loop stuck/);
    h.tunnel.failing = false;
    await h.clock.advance(30_000); // the retry backoff's bound
    await flush();
    assert.deepEqual(h.daemon.live(), { live: true, reason: 'ok' });
    assert.equal(h.tunnel.m.size, 4);
    await h.daemon.stop();
  });
});

describe('NAT count in the background', () => {
  test('a pass walks the map a slice per event-loop turn; a scrape reads the last count and its age', async () => {
    const clock = new ManualClock();
    const turns: (() => void)[] = [];
    let walk: FakeWalk | undefined;
    let n = 10_000;
    const bc = new BackgroundCount({ open: () => (walk = new FakeWalk(n, 4096)), intervalMs: 10_000, clock, defer: (fn) => void turns.push(fn) });
    bc.start();
    assert.equal(walk!.steps, 1, 'one slice in this turn');
    assert.equal(bc.snapshot.entries, undefined, 'no count before the first pass ends');
    while (turns.length) turns.shift()!();
    assert.equal(walk!.steps, 3);
    assert.equal(bc.snapshot.entries, 10_000);
    n = 262_144;
    await clock.advance(10_000);
    let slices = 1;
    while (turns.length) (turns.shift()!(), slices++);
    assert.equal(slices, 262_144 / 4096);
    assert.equal(bc.snapshot.entries, 262_144);
    assert.equal(bc.snapshot.startedAt, 10_000);
    bc.stop();
    await clock.advance(60_000);
    assert.equal(bc.passes, 2, 'stopped: no more passes');
  });

  test('the scrape path reads the count: bvcni_nat_entries and its age, never a walk', async () => {
    const h = harness('scrape');
    h.nat.n = 5000;
    await running(h);
    await flush();
    const walksBefore = h.daemon.natCount.passes;
    const text = await h.metrics.registry.metrics();
    assert.match(text, /^bvcni_nat_entries 5000$/m);
    assert.match(text, /^bvcni_nat_entries_age_seconds 0$/m);
    h.nat.n = 7;
    await h.metrics.registry.metrics();
    assert.equal(h.daemon.natCount.passes, walksBefore, 'a scrape starts no walk');
    await h.clock.advance(10_000);
    await flush();
    const later = await h.metrics.registry.metrics();
    assert.match(later, /^bvcni_nat_entries 7$/m, 'the next pass, after the interval');
    await h.daemon.stop();
  });

  test('keyWalk counts any key iterator in slices (map types without batch lookup)', () => {
    const w = keyWalk([1, 2, 3, 4, 5][Symbol.iterator](), 2);
    const got: number[] = [];
    while (!w.done) got.push(w.step());
    assert.deepEqual(got, [2, 2, 1]);
  });
});

describe('another program set in place (conntrack appearing: src/daemon/conntrack-watch.ts)', () => {
  test('a running daemon sets the dataplane up again with the new objects; the tunnel map is kept; the same set again is a no-op', async () => {
    const h = harness('ctswitch', '/objs/noct');
    await running(h);
    assert.deepEqual(h.ensured, ['/objs/noct']);
    h.daemon.useObjects('/objs');
    await flush();
    await flush();
    assert.deepEqual(h.ensured, ['/objs/noct', '/objs']);
    assert.equal(h.daemon.ready().ready, true, h.daemon.ready().reason);
    assert.equal(h.tunnel.m.size, 2, 'tunnel entries kept');
    h.daemon.useObjects('/objs');
    await flush();
    assert.deepEqual(h.ensured, ['/objs/noct', '/objs']);
    await h.daemon.stop();
  });

  test('asked before the first set-up, the first set-up loads the new set, once', async () => {
    const h = harness('ctearly', '/objs/noct');
    h.daemon.useObjects('/objs');
    await running(h);
    await flush();
    assert.deepEqual(h.ensured, ['/objs']);
    await h.daemon.stop();
  });
});
