// The NetworkPolicy API's own rules, each pinned by a case the upstream suite
// does not make: defaulting, empty versus absent, host traffic, ranges, named
// ports, IPv6 blocks, host-network and finished pods; and the compiler's
// numbering and difference.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  compileNode,
  diffNode,
  evaluate,
  IdentityAllocator,
  ID_HOST,
  ID_WORLD,
  parseNamespace,
  parseNetworkPolicy,
  parseNode,
  parsePod,
  portRangeToPrefixes,
  StateIndex,
  type ClusterState,
  type NetworkPolicy,
} from '../../src/policy/index.js';

const TCP = 6;
const UDP = 17;
const ICMP = 1;

function pod(ns: string, name: string, ip: string, labels: Record<string, string>, extra: { node?: string; hostNetwork?: boolean; phase?: string; ports?: object[] } = {}) {
  return parsePod({
    metadata: { name, namespace: ns, labels },
    spec: { nodeName: extra.node ?? 'n1', hostNetwork: extra.hostNetwork ?? false, containers: [{ name: 'c', ports: extra.ports ?? [] }] },
    status: { phase: extra.phase ?? 'Running', podIP: ip },
  });
}

function policy(ns: string, name: string, spec: object): NetworkPolicy {
  return parseNetworkPolicy({ metadata: { name, namespace: ns }, spec });
}

function state(policies: NetworkPolicy[], extraPods: ReturnType<typeof pod>[] = []): ClusterState {
  return {
    namespaces: ['a', 'b'].map((n) => parseNamespace({ metadata: { name: n, labels: n === 'b' ? { team: 'blue' } : {} } })),
    pods: [
      pod('a', 'web', '10.244.1.10', { app: 'web' }, { ports: [{ name: 'http', containerPort: 8080 }, { name: 'dns', containerPort: 53, protocol: 'UDP' }] }),
      pod('a', 'cli', '10.244.2.11', { app: 'cli' }, { node: 'n2' }),
      pod('b', 'web', '10.244.2.12', { app: 'web' }, { node: 'n2', ports: [{ name: 'http', containerPort: 9090 }] }),
      ...extraPods,
    ],
    policies,
    nodes: [
      parseNode({ metadata: { name: 'n1' }, status: { addresses: [{ type: 'InternalIP', address: '192.168.60.1' }, { type: 'InternalIP', address: 'fd00::1' }] } }),
      parseNode({ metadata: { name: 'n2' }, status: { addresses: [{ type: 'InternalIP', address: '192.168.60.2' }] } }),
    ],
  };
}

const allowed = (s: ClusterState, src: string, dst: string, protocol: number, port: number): boolean =>
  evaluate(new StateIndex(s), { src, dst, protocol, port }).allowed;

test('policyTypes defaults: Ingress always, Egress only when egress has a rule', () => {
  const onlyIngress = policy('a', 'p', { podSelector: {}, egress: [] });
  assert.equal(onlyIngress.ingressType, true);
  assert.equal(onlyIngress.egressType, false);
  const both = policy('a', 'p', { podSelector: {}, egress: [{}] });
  assert.deepEqual([both.ingressType, both.egressType], [true, true]);
  const explicit = policy('a', 'p', { podSelector: {}, policyTypes: ['Egress'] });
  assert.deepEqual([explicit.ingressType, explicit.egressType], [false, true]);
  // So `egress: []` without policyTypes leaves a.web's egress open and closes its ingress.
  const s = state([onlyIngress]);
  assert.equal(allowed(s, '10.244.1.10', '198.51.100.7', TCP, 80), true);
  assert.equal(allowed(s, '10.244.2.11', '10.244.1.10', TCP, 8080), false);
});

test('empty and absent: from/ports empty or absent allow all; ingress empty or absent allows nothing', () => {
  for (const rule of [{}, { from: [] }, { ports: [] }, { from: [], ports: [] }]) {
    const s = state([policy('a', 'p', { podSelector: {}, ingress: [rule] })]);
    assert.equal(allowed(s, '198.51.100.7', '10.244.1.10', ICMP, 0), true, JSON.stringify(rule));
    assert.equal(allowed(s, '10.244.2.12', '10.244.1.10', UDP, 9), true, JSON.stringify(rule));
  }
  for (const spec of [{ podSelector: {} }, { podSelector: {}, ingress: [] }]) {
    const s = state([policy('a', 'p', spec)]);
    assert.equal(allowed(s, '10.244.2.12', '10.244.1.10', TCP, 8080), false, JSON.stringify(spec));
  }
});

test('podSelector {} peer stays in the namespace; namespaceSelector {} spans all; both combined intersect', () => {
  const mk = (peer: object) => state([policy('a', 'p', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [peer] }] })]);
  const fromA = '10.244.2.11'; // a/cli
  const fromB = '10.244.2.12'; // b/web
  assert.deepEqual([allowed(mk({ podSelector: {} }), fromA, '10.244.1.10', TCP, 1), allowed(mk({ podSelector: {} }), fromB, '10.244.1.10', TCP, 1)], [true, false]);
  assert.deepEqual([allowed(mk({ namespaceSelector: {} }), fromA, '10.244.1.10', TCP, 1), allowed(mk({ namespaceSelector: {} }), fromB, '10.244.1.10', TCP, 1)], [true, true]);
  const both = mk({ namespaceSelector: { matchLabels: { team: 'blue' } }, podSelector: { matchLabels: { app: 'web' } } });
  assert.deepEqual([allowed(both, fromA, '10.244.1.10', TCP, 1), allowed(both, fromB, '10.244.1.10', TCP, 1)], [false, true]);
  // A pods peer never matches an address that is not a pod.
  assert.equal(allowed(mk({ namespaceSelector: {} }), '198.51.100.7', '10.244.1.10', TCP, 1), false);
});

test('NotIn and DoesNotExist select objects without the key; In and Exists do not', () => {
  const mk = (expr: object) => state([policy('a', 'p', { podSelector: { matchExpressions: [expr] }, ingress: [] })]);
  // a/web has app=web and no "tier": isolated (denied) exactly when the expression selects it.
  const isolated = (expr: object) => !allowed(mk(expr), '10.244.2.11', '10.244.1.10', TCP, 8080);
  assert.equal(isolated({ key: 'tier', operator: 'NotIn', values: ['x'] }), true);
  assert.equal(isolated({ key: 'tier', operator: 'DoesNotExist' }), true);
  assert.equal(isolated({ key: 'tier', operator: 'In', values: ['x'] }), false);
  assert.equal(isolated({ key: 'tier', operator: 'Exists' }), false);
  assert.equal(isolated({ key: 'app', operator: 'NotIn', values: ['web'] }), false);
});

test('the node reaches its own pods under default-deny; another node is an address like any other', () => {
  const s = state([policy('a', 'deny', { podSelector: {}, ingress: [] })]);
  const v = evaluate(new StateIndex(s), { src: '192.168.60.1', dst: '10.244.1.10', protocol: TCP, port: 8080 });
  assert.equal(v.allowed, true);
  assert.equal(v.ingress?.host, true);
  assert.equal(allowed(s, '192.168.60.2', '10.244.1.10', TCP, 8080), false);
  const byBlock = state([policy('a', 'p', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '192.168.60.0/24' } }] }] })]);
  assert.equal(allowed(byBlock, '192.168.60.2', '10.244.1.10', TCP, 8080), true);
  const c = compileNode(s, 'n1');
  assert.ok(c.endpoints.get('10.244.1.10')!.ingress.entries.some((e) => e.peer === ID_HOST && e.proto === 0));
});

test('a pod isolated for egress still reaches its own node (to and from the node is always allowed), not another node', () => {
  const s = state([policy('a', 'deny-out', { podSelector: {}, policyTypes: ['Egress'] })]);
  const v = evaluate(new StateIndex(s), { src: '10.244.1.10', dst: '192.168.60.1', protocol: 17, port: 53 });
  assert.equal(v.allowed, true);
  assert.equal(v.egress?.host, true);
  assert.equal(allowed(s, '10.244.1.10', '192.168.60.2', 17, 53), false, 'another node: the egress rules decide');
  assert.equal(allowed(s, '10.244.2.11', '192.168.60.2', TCP, 10250), true, 'the pod of n2 to n2');
  const c = compileNode(s, 'n1');
  assert.ok(c.endpoints.get('10.244.1.10')!.egress.entries.some((e) => e.peer === ID_HOST && e.proto === 0));
});

test('endPort ranges are inclusive, and split into aligned port prefixes', () => {
  const s = state([policy('a', 'p', { podSelector: {}, ingress: [{ ports: [{ port: 1000, endPort: 1023 }] }] })]);
  assert.deepEqual([999, 1000, 1023, 1024].map((p) => allowed(s, '10.244.2.11', '10.244.1.10', TCP, p)), [false, true, true, false]);
  assert.deepEqual(portRangeToPrefixes(1000, 1023), [
    { port: 1000, prefix: 13 },
    { port: 1008, prefix: 12 },
  ]);
  assert.deepEqual(portRangeToPrefixes(0, 65535), [{ port: 0, prefix: 0 }]);
  assert.deepEqual(portRangeToPrefixes(80, 80), [{ port: 80, prefix: 16 }]);
  assert.equal(portRangeToPrefixes(1, 65535).length, 16);
});

test('named ports resolve on the destination pod, by name and protocol', () => {
  const ing = state([policy('a', 'p', { podSelector: {}, ingress: [{ ports: [{ port: 'http' }, { port: 'dns', protocol: 'UDP' }] }] })]);
  assert.equal(allowed(ing, '10.244.2.11', '10.244.1.10', TCP, 8080), true);
  assert.equal(allowed(ing, '10.244.2.11', '10.244.1.10', TCP, 9090), false);
  assert.equal(allowed(ing, '10.244.2.11', '10.244.1.10', UDP, 53), true);
  assert.equal(allowed(ing, '10.244.2.11', '10.244.1.10', TCP, 53), false);
  // Egress: the same name means 8080 towards a/web and 9090 towards b/web, and nothing towards an address.
  const eg = state([policy('a', 'p', { podSelector: { matchLabels: { app: 'cli' } }, egress: [{ ports: [{ port: 'http' }] }] })]);
  assert.equal(allowed(eg, '10.244.2.11', '10.244.1.10', TCP, 8080), true);
  assert.equal(allowed(eg, '10.244.2.11', '10.244.1.10', TCP, 9090), false);
  assert.equal(allowed(eg, '10.244.2.11', '10.244.2.12', TCP, 9090), true);
  assert.equal(allowed(eg, '10.244.2.11', '198.51.100.7', TCP, 8080), false);
});

test('IPv6 blocks match nothing; host-network and finished pods are not endpoints', () => {
  const v6 = state([policy('a', 'p', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '::/0' } }] }] })]);
  assert.equal(allowed(v6, '198.51.100.7', '10.244.1.10', TCP, 1), false);
  const done = pod('a', 'old', '10.244.1.99', { app: 'web' }, { phase: 'Succeeded' });
  const hostPod = pod('a', 'agent', '192.168.60.2', { app: 'web' }, { node: 'n2', hostNetwork: true });
  const s = state([policy('a', 'deny', { podSelector: {}, ingress: [] })], [done, hostPod]);
  // Neither is isolated by the policy that selects its labels: they are addresses, not pods.
  assert.equal(allowed(s, '198.51.100.7', '10.244.1.99', TCP, 1), true);
  const idx = new StateIndex(s);
  assert.equal(idx.podByIp.has(0x0af40163), false);
  assert.equal(compileNode(idx, 'n1').endpoints.has('10.244.1.99'), false);
});

test('verdicts name the policies that allowed, per direction', () => {
  const s = state([
    policy('a', 'allow-http', { podSelector: {}, ingress: [{ ports: [{ port: 8080 }] }] }),
    policy('a', 'allow-cli', { podSelector: {}, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'cli' } } }] }] }),
  ]);
  const v = evaluate(new StateIndex(s), { src: '10.244.2.11', dst: '10.244.1.10', protocol: TCP, port: 8080 });
  assert.deepEqual(v.ingress?.allowedBy, ['a/allow-http', 'a/allow-cli']);
  assert.equal(v.egress?.isolated, false);
});

test('identities stay numbered across compilations and a change yields only its difference', () => {
  const alloc = new IdentityAllocator();
  const before = compileNode(state([policy('a', 'p', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: {} }] }] })]), 'n1', { allocator: alloc });
  const again = compileNode(state([policy('a', 'p', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: {} }] }] })]), 'n1', { allocator: alloc });
  const none = diffNode(before, again);
  assert.equal(none.ipcacheUpsert.length + none.ipcacheDelete.length + none.endpoints.size, 0);
  const after = compileNode(state([policy('a', 'p', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'blue' } } }] }] })]), 'n1', { allocator: alloc });
  const d = diffNode(before, after);
  assert.equal(d.ipcacheUpsert.length + d.ipcacheDelete.length, 0);
  const ep = d.endpoints.get('10.244.1.10');
  assert.ok(ep && ep !== 'deleted');
  const id = (ip: string) => before.ipcache.find((e) => e.cidr.prefix === 32 && e.cidr.addr === ip.split('.').reduce((a, o) => a * 256 + Number(o), 0))!.identity;
  assert.deepEqual(ep.ingress.remove.map((e) => e.peer).sort(), [id('10.244.1.10'), id('10.244.2.11')].sort());
  assert.deepEqual(ep.ingress.add, []);
  assert.equal(before.ipcache.at(-1)!.identity, ID_WORLD);
});
