// NetworkPolicy enforced with real traffic: two simulated nodes, the real
// compiler (src/policy) turning a small cluster state into each node's tables,
// written with applyPolicyDiff (src/dataplane/policy.ts) as bvcnid does, then
// TCP, UDP and ICMP between pods of the same node and of the other node, from
// the node itself and to the internet; the drop counters name what was
// dropped. Every denial beside a control: the same probe, allowed, arriving.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createCluster, loadDataplane, ping, probeMany, startResponder, tcpWhoami, uniquePrefix, type Cluster, type DataplaneApi, type SimPod } from '../../src/sim/index.js';
import { applyPolicyDiff, openPolicyMaps } from '../../src/dataplane/policy.js';
import { compileNode, diffNode, parseNamespace, parseNetworkPolicy, parseNode, parsePod, type ClusterState, type CompiledNode, type NetworkPolicy } from '../../src/policy/index.js';

const SERVED = 80;
const OTHER = 81;

describe('NetworkPolicy in the dataplane: 2 simulated nodes, tables from the compiler', () => {
  let c: Cluster;
  let dp: DataplaneApi;
  // node 0: server, client, stranger; node 1: client, stranger, spare.
  let server: SimPod, clientLocal: SimPod, strangerLocal: SimPod, clientRemote: SimPod, strangerRemote: SimPod;
  const labels = new Map<SimPod, Record<string, string>>();
  let policies: NetworkPolicy[] = [];
  const compiled = new Map<string, CompiledNode>();

  const state = (): ClusterState => ({
    namespaces: [parseNamespace({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default', labels: { 'kubernetes.io/metadata.name': 'default' } } })],
    pods: c.pods.map((p) =>
      parsePod({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: p.podName, namespace: 'default', labels: labels.get(p) ?? {} },
        spec: { nodeName: p.node.name, containers: [{ name: 'c', ports: [{ containerPort: SERVED, name: 'http', protocol: 'TCP' }] }] },
        status: { phase: 'Running', podIP: p.ip, podIPs: [{ ip: p.ip }] },
      }),
    ),
    policies,
    nodes: c.nodes.map((n) => parseNode({ apiVersion: 'v1', kind: 'Node', metadata: { name: n.name }, status: { addresses: [{ type: 'InternalIP', address: n.ip }] } })),
  });

  /** Every node's tables compiled again and only the difference written, as bvcnid does. */
  const sync = (): void => {
    const s = state();
    for (const n of c.nodes) {
      const next = compileNode(s, n.name);
      using maps = openPolicyMaps(n.pinDir);
      const r = applyPolicyDiff(maps, diffNode(compiled.get(n.name) ?? null, next), next);
      assert.deepEqual(r.missingEndpoints, [], `${n.name}: every endpoint registered`);
      compiled.set(n.name, next);
    }
  };

  const drops = (pod: SimPod, reason: string): bigint =>
    dp
      .readDropStats(pod.node.pinDir)
      .filter((d) => d.reason === reason)
      .reduce((a, d) => a + d.packets, 0n);

  /** TCP and UDP to a port of a pod: [tcp ok, udp ok]. */
  const reach = async (from: SimPod, to: SimPod, port: number): Promise<[boolean, boolean]> => {
    const [t, u] = await probeMany(from.path, [
      { ip: to.ip, port, proto: 'tcp' },
      { ip: to.ip, port, proto: 'udp' },
    ], 1500);
    if (t!.ok) assert.equal(t!.peer, from.ip, 'the server sees the client\'s own address');
    return [t!.ok, u!.ok];
  };

  const denyAllButClients = (): NetworkPolicy =>
    parseNetworkPolicy({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'server-clients-only', namespace: 'default' },
      spec: {
        podSelector: { matchLabels: { app: 'server' } },
        ingress: [{ from: [{ podSelector: { matchLabels: { role: 'client' } } }], ports: [{ port: SERVED, protocol: 'TCP' }, { port: SERVED, protocol: 'UDP' }] }],
      },
    });

  before(async () => {
    dp = await loadDataplane();
    c = await createCluster({ prefix: uniquePrefix('bvpd'), nodes: 2, dataplane: 'bvcni', podsPerNode: 3 });
    [server, clientLocal, strangerLocal] = c.nodes[0]!.pods as [SimPod, SimPod, SimPod];
    [clientRemote, strangerRemote] = c.nodes[1]!.pods as [SimPod, SimPod];
    labels.set(server, { app: 'server' });
    labels.set(clientLocal, { role: 'client' });
    labels.set(clientRemote, { role: 'client' });
    labels.set(strangerLocal, { role: 'other' });
    labels.set(strangerRemote, { role: 'other' });
    for (const p of c.pods) for (const port of [SERVED, OTHER]) c.track(await startResponder(p.path, port));
    c.track(await startResponder(c.internet.path, SERVED));
    sync(); // no policy yet: the ipcache filled, nothing isolated
  });
  after(() => c?.destroy());

  test('without a policy every pair connects (the control for what follows)', async () => {
    for (const from of [clientLocal, strangerLocal, clientRemote, strangerRemote]) assert.deepEqual(await reach(from, server, SERVED), [true, true], from.name);
    assert.ok((await ping(strangerRemote.path, server.ip, { count: 1 })).ok);
  });

  test('deny-all ingress but clients on port 80: clients on both nodes reach it, strangers on both nodes do not, counted as DROP_POLICY_INGRESS', async () => {
    policies = [denyAllButClients()];
    sync();
    const before = drops(server, 'DROP_POLICY_INGRESS');
    assert.deepEqual(await reach(clientLocal, server, SERVED), [true, true], 'a client on the same node');
    assert.deepEqual(await reach(clientRemote, server, SERVED), [true, true], 'a client on the other node');
    assert.deepEqual(await reach(strangerLocal, server, SERVED), [false, false], 'a stranger on the same node');
    assert.deepEqual(await reach(strangerRemote, server, SERVED), [false, false], 'a stranger on the other node');
    assert.deepEqual(await reach(clientLocal, server, OTHER), [false, false], 'a client on another port');
    assert.ok(drops(server, 'DROP_POLICY_INGRESS') >= before + 6n, 'each denied probe counted where the server is');
    // The other pods are not isolated: the strangers still reach each other.
    assert.deepEqual(await reach(strangerLocal, strangerRemote, SERVED), [true, true]);
  });

  test('ICMP: no port rule allows it, but the node pings its pod (kubelet probes) and the server\'s own pings are answered', async () => {
    assert.equal((await ping(clientRemote.path, server.ip, { count: 1, timeoutS: 1 })).ok, false, 'a client\'s ping');
    assert.ok((await ping(c.nodes[0]!.path, server.ip, { count: 1 })).ok, 'the node\'s own');
    assert.ok((await ping(server.path, strangerRemote.ip, { count: 1 })).ok, 'the reply of the server\'s ping crosses its isolated ingress');
    assert.ok((await ping(server.path, c.internet.ip, { count: 1 })).ok, 'the same from the internet, masqueraded');
  });

  test('replies of the server\'s own connections pass its isolated ingress: to a stranger, to the internet (masqueraded)', async () => {
    assert.deepEqual(await reach(server, strangerRemote, OTHER), [true, true]);
    assert.deepEqual(await reach(server, strangerLocal, OTHER), [true, true]);
    const w = await tcpWhoami(server.path, c.internet.ip, SERVED);
    assert.equal(w.peer, c.nodes[0]!.ip, 'masqueraded, and its reply delivered');
  });

  test('a label change takes effect: the stranger labelled client gets in, and out again when the label goes', async () => {
    labels.set(strangerRemote, { role: 'client' });
    sync();
    assert.deepEqual(await reach(strangerRemote, server, SERVED), [true, true]);
    labels.set(strangerRemote, { role: 'other' });
    sync();
    assert.deepEqual(await reach(strangerRemote, server, SERVED), [false, false]);
  });

  test('egress: the client may reach only the server on port 80; everything else it opens is DROP_POLICY_EGRESS on its node, its answers still go out', async () => {
    policies = [
      denyAllButClients(),
      parseNetworkPolicy({
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: 'client-egress', namespace: 'default' },
        spec: {
          podSelector: { matchLabels: { role: 'client' } },
          policyTypes: ['Egress'],
          egress: [{ to: [{ podSelector: { matchLabels: { app: 'server' } } }], ports: [{ port: SERVED, protocol: 'TCP' }] }],
        },
      }),
    ];
    sync();
    const before = drops(clientLocal, 'DROP_POLICY_EGRESS');
    assert.deepEqual(await reach(clientLocal, server, SERVED), [true, false], 'TCP 80 only');
    assert.deepEqual(await reach(clientLocal, strangerRemote, SERVED), [false, false], 'another node\'s pod');
    assert.deepEqual(await reach(clientLocal, strangerLocal, SERVED), [false, false], 'a pod of its node');
    await assert.rejects(tcpWhoami(clientLocal.path, c.internet.ip, SERVED, 1), 'the internet, before the masquerade');
    assert.ok(drops(clientLocal, 'DROP_POLICY_EGRESS') >= before + 5n);
    // Not isolated for ingress: others still open connections to it, and its answers leave.
    assert.deepEqual(await reach(strangerRemote, clientLocal, OTHER), [true, true]);
  });

  test('policies removed: isolation cleared, every pair connects again', async () => {
    policies = [];
    sync();
    for (const from of [clientLocal, strangerLocal, clientRemote, strangerRemote]) assert.deepEqual(await reach(from, server, SERVED), [true, true], from.name);
    assert.deepEqual(await reach(clientLocal, strangerRemote, SERVED), [true, true]);
    for (const n of c.nodes) {
      using maps = openPolicyMaps(n.pinDir);
      assert.equal([...maps.policy.keys()].length, 0, `${n.name}: no entry left`);
    }
  });
});
