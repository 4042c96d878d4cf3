// The pure parts of bvcnictl: pairing the two halves of NAT flows (with
// expiry by protocol and TCP state), comparing the tunnel map with the API's
// desired state, and table layout.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { pairNatEntries } from '../../src/cli/commands/nat.js';
import { compareTunnels } from '../../src/cli/commands/nodes.js';
import { formatTable } from '../../src/common/table.js';
import { IPPROTO, NatDir, NatTcpState, TunnelFlags, type NatEntry, type NatKey } from '../../src/dataplane/abi.js';
import { computeDesired } from '../../src/kube/desired.js';

const S = 1_000_000_000n;
const NOW = 10_000n * S;
const POD = '10.244.0.5';
const NODE = '192.0.2.10';
const REMOTE = '198.51.100.1';

function flow(proto: number, podPort: number, natPort: number, remotePort: number, o: { idle?: bigint; state?: number; halves?: 'both' | 'egress' | 'ingress' } = {}): [NatKey, NatEntry][] {
  const seen = NOW - (o.idle ?? 1n * S);
  const out: [NatKey, NatEntry][] = [];
  if (o.halves !== 'ingress')
    out.push([
      { saddr: POD, daddr: REMOTE, sport: podPort, dport: remotePort, proto, dir: NatDir.egress },
      { created_ns: NOW - 100n * S, last_seen_ns: seen, to_addr: NODE, to_port: natPort, tcp_state: 0, flags: 0 },
    ]);
  if (o.halves !== 'egress')
    out.push([
      { saddr: REMOTE, daddr: NODE, sport: remotePort, dport: natPort, proto, dir: NatDir.ingress },
      { created_ns: NOW - 100n * S, last_seen_ns: seen, to_addr: POD, to_port: podPort, tcp_state: o.state ?? 0, flags: 0 },
    ]);
  return out;
}

describe('bvcnictl nat: pairing and expiry', () => {
  test('both halves of a TCP, a UDP and an ICMP flow become one row each', () => {
    const rows = pairNatEntries(
      [
        ...flow(IPPROTO.TCP, 40000, 61001, 80, { state: NatTcpState.ESTABLISHED }),
        ...flow(IPPROTO.UDP, 5353, 61002, 53),
        ...flow(IPPROTO.ICMP, 7, 61003, 0),
      ],
      NOW,
    );
    assert.equal(rows.length, 3);
    const tcp = rows.find((r) => r.proto === 'tcp')!;
    assert.deepEqual(
      [tcp.podIp, tcp.podPort, tcp.remoteIp, tcp.remotePort, tcp.natIp, tcp.natPort, tcp.tcpState, tcp.halves, tcp.stale],
      [POD, 40000, REMOTE, 80, NODE, 61001, 'established', 'both', false],
    );
    assert.equal(tcp.ageSeconds, 100);
    assert.equal(tcp.idleSeconds, 1);
    assert.equal(rows.find((r) => r.proto === 'icmp')!.tcpState, '-');
    assert.ok(rows.every((r) => r.halves === 'both'));
  });

  test('an entry idle beyond its timeout is stale, by protocol and TCP state', () => {
    const cases: [number, number, bigint, boolean][] = [
      [IPPROTO.UDP, 0, 59n * S, false],
      [IPPROTO.UDP, 0, 61n * S, true],
      [IPPROTO.ICMP, 0, 31n * S, true],
      [IPPROTO.TCP, NatTcpState.ESTABLISHED, 3600n * S, false],
      [IPPROTO.TCP, NatTcpState.SYN, 61n * S, true],
      [IPPROTO.TCP, NatTcpState.CLOSED, 11n * S, true],
    ];
    cases.forEach(([proto, state, idle, stale], i) => {
      const [row] = pairNatEntries(flow(proto, 1000 + i, 62000 + i, 80, { idle, state }), NOW);
      assert.equal(row!.stale, stale, `proto ${proto} state ${state} idle ${idle / S}s`);
    });
  });

  test('a half without its partner is still shown, and says so', () => {
    const rows = pairNatEntries([...flow(IPPROTO.TCP, 1, 61010, 443, { halves: 'egress' }), ...flow(IPPROTO.UDP, 2, 61011, 53, { halves: 'ingress' })], NOW);
    assert.deepEqual(rows.map((r) => [r.proto, r.podIp, r.natPort, r.halves]), [
      ['tcp', POD, 61010, 'egress-only'],
      ['udp', POD, 61011, 'ingress-only'],
    ]);
  });
});

describe('bvcnictl nodes: comparison with the API', () => {
  const node = (name: string, cidr: string, ip: string) => ({
    metadata: { name, creationTimestamp: '2026-01-01T00:00:00Z' },
    spec: { podCIDR: cidr },
    status: { addresses: [{ type: 'InternalIP', address: ip }] },
  });
  const desired = computeDesired([node('a', '10.244.0.0/24', '192.0.2.10'), node('b', '10.244.1.0/24', '192.0.2.11')], 'a');

  test('matching entries are ok and name their node', () => {
    const rows = compareTunnels(
      [
        { prefix: '10.244.1.0/24', nodeIp: '192.0.2.11', flags: 0 },
        { prefix: '192.0.2.11/32', nodeIp: '192.0.2.11', flags: TunnelFlags.nodeIp },
      ],
      desired,
    );
    assert.deepEqual(rows.map((r) => [r.prefix, r.kind, r.node, r.state]), [
      ['10.244.1.0/24', 'podCIDR', 'b', 'ok'],
      ['192.0.2.11/32', 'node IP', 'b', 'ok'],
    ]);
  });

  test('stale, wrong-ip and missing are told apart', () => {
    const rows = compareTunnels(
      [
        { prefix: '10.244.1.0/24', nodeIp: '192.0.2.99', flags: 0 },
        { prefix: '10.244.9.0/24', nodeIp: '192.0.2.19', flags: 0 },
      ],
      desired,
    );
    const by = Object.fromEntries(rows.map((r) => [r.prefix, r]));
    assert.equal(by['10.244.1.0/24']!.state, 'wrong-ip');
    assert.equal(by['10.244.1.0/24']!.expectedNodeIp, '192.0.2.11');
    assert.equal(by['10.244.9.0/24']!.state, 'stale');
    assert.equal(by['192.0.2.11/32']!.state, 'missing');
  });

  test('without the API every entry is unchecked', () => {
    const rows = compareTunnels([{ prefix: '10.244.1.0/24', nodeIp: '192.0.2.11', flags: 0 }], undefined);
    assert.deepEqual(rows.map((r) => r.state), ['unchecked']);
  });
});

describe('tables', () => {
  test('columns are aligned to the widest cell, no trailing spaces', () => {
    const t = formatTable(['A', 'LONGER'], [['xxxxx', 'y'], ['z', 'w']]);
    assert.equal(t, 'A      LONGER\nxxxxx  y\nz      w\n');
  });
});
