// Desired tunnel state from Node objects, the diff, and applying only the
// difference — against an in-memory fake of the pinned map.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { computeDesired, parseNode, sameTunnelInputs, SkipReason, type NodeLike } from '../../src/kube/desired.js';
import { TunnelReconciler, type TunnelTable } from '../../src/daemon/reconcile.js';
import { TunnelFlags, type TunnelKey, type TunnelValue } from '../../src/dataplane/abi.js';
import { parseCidr } from '../../src/common/cidr.js';

function node(name: string, podCIDR: string | string[] | undefined, ip: string | string[] | undefined, created = '2024-01-01T00:00:00Z'): NodeLike {
  const cidrs = podCIDR === undefined ? undefined : Array.isArray(podCIDR) ? podCIDR : [podCIDR];
  const ips = ip === undefined ? [] : Array.isArray(ip) ? ip : [ip];
  return {
    metadata: { name, creationTimestamp: created },
    spec: cidrs ? { podCIDR: cidrs[0], podCIDRs: cidrs } : {},
    status: { addresses: [...ips.map((address) => ({ type: 'InternalIP', address })), { type: 'Hostname', address: name }] },
  };
}

class FakeTable implements TunnelTable {
  readonly m = new Map<string, [TunnelKey, TunnelValue]>();
  writes = 0;
  deletes = 0;
  failAfter = Infinity;
  entries(): Iterable<[TunnelKey, TunnelValue]> {
    return [...this.m.values()];
  }
  update(k: TunnelKey, v: TunnelValue): void {
    if (this.writes >= this.failAfter) throw new Error('E2BIG: map full');
    this.writes++;
    this.m.set(`${k.addr}/${k.prefixlen}`, [k, v]);
  }
  delete(k: TunnelKey): boolean {
    this.deletes++;
    return this.m.delete(`${k.addr}/${k.prefixlen}`);
  }
  dump(): string[] {
    return [...this.m.values()].map(([k, v]) => `${k.addr}/${k.prefixlen}>${v.node_ip}${v.flags & TunnelFlags.nodeIp ? '*' : ''}`).sort();
  }
}

const cluster = parseCidr('10.244.0.0/16', { strict: true });

describe('desired tunnel state', () => {
  test('every other node contributes its podCIDR and its own /32, both to its InternalIP; self contributes nothing', () => {
    const d = computeDesired(
      [node('self', '10.244.0.0/24', '192.0.2.10'), node('a', '10.244.1.0/24', '192.0.2.11'), node('b', '10.244.2.0/24', ['fd00::2', '192.0.2.12'])],
      'self',
      cluster,
    );
    assert.equal(d.self?.internalIp, '192.0.2.10');
    const t = new FakeTable();
    new TunnelReconciler(t).apply(d.entries);
    assert.deepEqual(t.dump(), [
      '10.244.1.0/24>192.0.2.11',
      '10.244.2.0/24>192.0.2.12',
      '192.0.2.11/32>192.0.2.11*',
      '192.0.2.12/32>192.0.2.12*',
    ]);
    assert.deepEqual(d.skipped, []);
  });

  test('dual-stack podCIDRs: the IPv4 one is used whatever its position', () => {
    const p = parseNode(node('a', ['fd00:10::/64', '10.244.3.0/24'], '192.0.2.13'));
    assert.ok(p.ok);
    assert.equal(p.ok && p.node.podCidr.prefix, 24);
  });

  test('each bad Node is skipped with its reason and never affects the others', () => {
    const d = computeDesired(
      [
        node('self', '10.244.0.0/24', '192.0.2.10'),
        node('good', '10.244.1.0/24', '192.0.2.11', '2024-01-01T00:00:00Z'),
        node('nocidr', undefined, '192.0.2.20'),
        node('badcidr', '10.244.300.0/24', '192.0.2.21'),
        node('hostbits', '10.244.5.7/24', '192.0.2.22'),
        node('v6only', 'fd00:1::/64', '192.0.2.23'),
        node('v6ip', '10.244.6.0/24', 'fd00::6'),
        node('noip', '10.244.7.0/24', undefined),
        node('overlap', '10.244.1.128/25', '192.0.2.24', '2024-02-01T00:00:00Z'),
        node('supernet', '10.244.0.0/23', '192.0.2.25', '2024-02-01T00:00:00Z'),
        node('overself', '10.244.0.0/24', '192.0.2.26'),
        node('outside', '10.99.0.0/24', '192.0.2.27'),
        node('dupip', '10.244.8.0/24', '192.0.2.11', '2024-03-01T00:00:00Z'),
      ],
      'self',
      cluster,
    );
    const reasons = Object.fromEntries(d.skipped.map((s) => [s.name, s.reason]));
    assert.deepEqual(reasons, {
      nocidr: SkipReason.noPodCidr,
      badcidr: SkipReason.invalidPodCidr,
      hostbits: SkipReason.invalidPodCidr,
      v6only: SkipReason.ipv6Only,
      v6ip: SkipReason.ipv6Only,
      noip: SkipReason.noInternalIp,
      overlap: SkipReason.overlappingPodCidr,
      supernet: SkipReason.overlappingPodCidr,
      overself: SkipReason.overlappingPodCidr,
      outside: SkipReason.outsideClusterCidr,
      dupip: SkipReason.duplicateInternalIp,
    });
    assert.deepEqual(d.nodes.map((n) => n.name), ['good']);
    assert.equal(d.entries.size, 2);
  });

  test('overlapping podCIDRs: the older Node keeps its entry, whichever arrives first in the list', () => {
    const older = node('older', '10.244.1.0/24', '192.0.2.11', '2024-01-01T00:00:00Z');
    const newer = node('newer', '10.244.1.0/24', '192.0.2.12', '2024-06-01T00:00:00Z');
    for (const order of [[older, newer], [newer, older]]) {
      const d = computeDesired(order, 'self', cluster);
      assert.deepEqual(d.nodes.map((n) => n.name), ['older']);
      assert.deepEqual(d.skipped.map((s) => s.name), ['newer']);
    }
  });

  test('a broken own Node is reported as the self problem, not as a tunnel entry', () => {
    const d = computeDesired([node('self', undefined, '192.0.2.10'), node('a', '10.244.1.0/24', '192.0.2.11')], 'self', cluster);
    assert.equal(d.self, undefined);
    assert.equal(d.selfProblem?.reason, SkipReason.noPodCidr);
    assert.equal(d.entries.size, 2);
  });
});

describe('which Node updates matter to the tunnel map', () => {
  const base = node('n1', '10.244.1.0/24', '192.0.2.11');
  test('a new resourceVersion or Hostname changes nothing', () => {
    const beat: NodeLike = { ...base, metadata: { ...base.metadata, resourceVersion: '99' } };
    assert.ok(sameTunnelInputs(beat, base));
    const renamedHost = node('n1', '10.244.1.0/24', '192.0.2.11');
    renamedHost.status!.addresses = [{ type: 'InternalIP', address: '192.0.2.11' }, { type: 'Hostname', address: 'other' }];
    assert.ok(sameTunnelInputs(renamedHost, base));
  });
  test('podCIDR, InternalIP, creation time and the reason a Node is skipped all matter', () => {
    assert.ok(!sameTunnelInputs(node('n1', '10.244.2.0/24', '192.0.2.11'), base));
    assert.ok(!sameTunnelInputs(node('n1', '10.244.1.0/24', '192.0.2.12'), base));
    assert.ok(!sameTunnelInputs(node('n1', '10.244.1.0/24', '192.0.2.11', '2025-01-01T00:00:00Z'), base));
    assert.ok(!sameTunnelInputs(node('n1', undefined, '192.0.2.11'), node('n1', 'bogus', '192.0.2.11')));
  });
});

describe('reconcile applies only the difference', () => {
  const base = [node('self', '10.244.0.0/24', '192.0.2.10'), node('a', '10.244.1.0/24', '192.0.2.11'), node('b', '10.244.2.0/24', '192.0.2.12')];

  test('adopting a map that already matches writes nothing', () => {
    const t = new FakeTable();
    new TunnelReconciler(t).apply(computeDesired(base, 'self', cluster).entries);
    const writes = t.writes;
    // A restarted daemon: a new reconciler over the same (pinned) map.
    const r2 = new TunnelReconciler(t);
    assert.equal(r2.adopt(), 4);
    const res = r2.apply(computeDesired(base, 'self', cluster).entries);
    assert.deepEqual(res, { added: 0, updated: 0, removed: 0, unchanged: 4 });
    assert.equal(t.writes, writes);
    assert.equal(t.deletes, 0);
  });

  test('node IP change updates the podCIDR entry in place and moves the /32', () => {
    const t = new FakeTable();
    const r = new TunnelReconciler(t);
    r.apply(computeDesired(base, 'self', cluster).entries);
    const moved = [base[0]!, node('a', '10.244.1.0/24', '192.0.2.111'), base[2]!];
    const res = r.apply(computeDesired(moved, 'self', cluster).entries);
    assert.deepEqual(res, { added: 1, updated: 1, removed: 1, unchanged: 2 });
    assert.ok(t.dump().includes('10.244.1.0/24>192.0.2.111'));
    assert.ok(t.dump().includes('192.0.2.111/32>192.0.2.111*'));
    assert.ok(!t.dump().some((e) => e.startsWith('192.0.2.11/32')));
  });

  test('podCIDR change and node deletion remove stale entries; unknown stale entries in the pinned map go too', () => {
    const t = new FakeTable();
    t.update({ prefixlen: 24, addr: '10.244.99.0' }, { node_ip: '192.0.2.99', flags: 0 }); // left by a node deleted while the daemon was down
    const r = new TunnelReconciler(t);
    r.adopt();
    r.apply(computeDesired(base, 'self', cluster).entries);
    assert.ok(!t.dump().some((e) => e.startsWith('10.244.99.0')));
    r.apply(computeDesired([base[0]!, node('a', '10.244.11.0/24', '192.0.2.11')], 'self', cluster).entries);
    assert.deepEqual(t.dump(), ['10.244.11.0/24>192.0.2.11', '192.0.2.11/32>192.0.2.11*']);
  });

  test('a failed write leaves the reconciler re-reading the map next time', () => {
    const t = new FakeTable();
    t.failAfter = 1;
    const r = new TunnelReconciler(t);
    assert.throws(() => r.apply(computeDesired(base, 'self', cluster).entries), /E2BIG/);
    t.failAfter = Infinity;
    const res = r.apply(computeDesired(base, 'self', cluster).entries);
    assert.equal(res.added, 3, 'the one entry that landed is seen as present');
    assert.equal(t.m.size, 4);
  });
});
