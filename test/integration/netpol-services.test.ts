// NetworkPolicy through Services (issue 16's host-delivered gap), on 2 simulated nodes running
// bvcnid --network-policy, with real TCP and UDP. kube-proxy is emulated as netpol-paths does it:
// nat rules in each node's namespace DNAT a ClusterIP (10.96.0.0/12, the nodes' service range) to
// one backend pod, on every node, as kube-proxy's rules are.
//
// What it holds the dataplane to:
//  - a pod denied by a backend's ingress policy reaches it neither directly nor through its
//    ClusterIP: local backend (kube-proxy DNATs in the host stack and routes to the bridge, where
//    only bpf_to_pod sees it: the hole this closes) and remote backend; an allowed pod reaches it
//    both ways (the control); before the policy the denied pod did reach it through the ClusterIP
//    (the probe's own control: it can reach its target);
//  - egress is decided on the backend, after the DNAT: a pod allowed only `podSelector: app=db`
//    reaches db through its ClusterIP (local and remote backend), not another Service's backend,
//    and its ingress isolation lets the un-DNAT'd replies (from the ClusterIP) in;
//  - the node still reaches an ingress-isolated pod (kubelet probes), and a NodePort DNAT'd to a
//    local backend meets the backend's ingress policy with the client's real address (allowed
//    when kube-proxy masquerades it to the node: externalTrafficPolicy Cluster).
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { loadDataplane, probeMany, RESPONDER_PORT, startResponder, type ProbeOutcome, type SimNetns, type SimNode, type SimPod } from '../../src/sim/index.js';
import { makeRealisticNetworkPolicy, makeRealisticPod, makeNamespace, NAMESPACES, NETWORK_POLICIES, PODS } from '../../src/sim/kube-resources.js';
import { openEndpointsMap } from '../../src/dataplane/maps.js';
import { KubeCluster } from '../support/kube-daemons.js';
import { waitFor } from '../support/kube-util.js';
import { ENDPOINT_F_EGRESS_ISOLATED, ENDPOINT_F_INGRESS_ISOLATED, ENDPOINT_F_POLICY_PENDING, enforcementMode, type EnforcementMode } from '../support/netpol-e2e.js';

const NS = 'svc';
const SVC_PORT = 80;
const VIP = { db0: '10.96.0.10', db1: '10.96.0.11', other0: '10.96.0.12', other1: '10.96.0.13' } as const;
const NODEPORT_DB = 30090;
const NODEPORT_OTHER = 30091;
const TIMEOUT_MS = 1500;

type Proto = 'tcp' | 'udp';

describe('NetworkPolicy through Services: host-delivered traffic and egress after the DNAT, 2 simulated nodes', { timeout: 240_000 }, () => {
  const k = new KubeCluster({ prefix: 'nps', nodes: 2, daemonArgs: () => ['--network-policy'] });
  let n0: SimNode;
  let n1: SimNode;
  const pods: Record<string, SimPod> = {};
  let mode: EnforcementMode = { enforcing: false, why: 'not started' };
  let before0: Record<string, bigint> = {};

  /** A node's drop counters by reason (summed over directions). */
  const dropsOf = async (n: SimNode): Promise<Record<string, bigint>> => {
    const out: Record<string, bigint> = {};
    for (const r of (await loadDataplane()).readDropStats(n.pinDir)) out[r.reason] = (out[r.reason] ?? 0n) + r.packets;
    return out;
  };
  const describeDrops = async (n: SimNode): Promise<string> => {
    const d = Object.entries(await dropsOf(n)).filter(([, v]) => v > 0n);
    return `drops on ${n.name}: ${d.map(([r, v]) => `${r} ${v}`).join(', ') || 'none'}`;
  };

  /** One probe per target from `from`; each target is a ClusterIP (port 80) or a pod (its responder). */
  const probe = async (from: SimNetns, targets: { ip: string; proto: Proto; port?: number }[]): Promise<ProbeOutcome[]> =>
    probeMany(
      from.path,
      targets.map((t) => ({ ip: t.ip, proto: t.proto, port: t.port ?? (t.ip.startsWith('10.96.') ? SVC_PORT : RESPONDER_PORT) })),
      TIMEOUT_MS,
    );
  /** Which of `targets` answered, as "ip/proto" strings (answered by the expected pod: checked by the caller). */
  const reached = async (from: SimNetns, targets: { ip: string; proto: Proto; port?: number }[]): Promise<string[]> => {
    const r = await probe(from, targets);
    return targets.filter((_, i) => r[i]!.ok).map((t) => `${t.ip}${t.port ? `:${t.port}` : ''}/${t.proto}`);
  };
  const both = (ip: string, port?: number) => (['tcp', 'udp'] as const).map((proto) => ({ ip, proto, ...(port ? { port } : {}) }));
  const key = (ip: string, proto: Proto, port?: number) => `${ip}${port ? `:${port}` : ''}/${proto}`;

  before(async () => {
    const { c, api } = await k.start();
    [n0, n1] = c.nodes as [SimNode, SimNode];
    api.resources.add(NAMESPACES, makeNamespace(NS));
    const add = async (node: SimNode, name: string, labels: Record<string, string>): Promise<SimPod> => {
      const pod = await c.addPod(node, `s${name}`, { via: 'plugin', args: `K8S_POD_NAMESPACE=${NS};K8S_POD_NAME=${name}` });
      api.resources.add(PODS, makeRealisticPod({ namespace: NS, name, labels, ip: pod.ip, nodeName: node.name, ports: [{ name: 'whoami', containerPort: RESPONDER_PORT }] }));
      c.track(await startResponder(pod.path));
      return pod;
    };
    pods.db0 = await add(n0, 'db0', { app: 'db' });
    pods.db1 = await add(n1, 'db1', { app: 'db' });
    pods.other0 = await add(n0, 'other0', { app: 'other' });
    pods.other1 = await add(n1, 'other1', { app: 'other' });
    pods.client0 = await add(n0, 'client0', { role: 'client' });
    pods.rogue0 = await add(n0, 'rogue0', { role: 'rogue' });
    pods.rogue1 = await add(n1, 'rogue1', { role: 'rogue' });
    pods.picky0 = await add(n0, 'picky0', { role: 'picky' });
    // kube-proxy: the same ClusterIPs on every node; NodePorts on node 0 (its own address).
    for (const n of [n0, n1])
      for (const [svc, vip] of Object.entries(VIP))
        for (const proto of ['tcp', 'udp'])
          await c.exec(n, ['iptables', '-t', 'nat', '-A', 'PREROUTING', '-d', vip, '-p', proto, '--dport', String(SVC_PORT), '-j', 'DNAT', '--to-destination', `${pods[svc]!.ip}:${RESPONDER_PORT}`]);
    for (const [port, pod] of [
      [NODEPORT_DB, pods.db0!],
      [NODEPORT_OTHER, pods.other0!],
    ] as const)
      await c.exec(n0, ['iptables', '-t', 'nat', '-A', 'PREROUTING', '-d', n0.ip, '-p', 'tcp', '--dport', String(port), '-j', 'DNAT', '--to-destination', `${pod.ip}:${RESPONDER_PORT}`]);
    for (const d of k.daemons) await waitFor(`${d.node.name} compiled`, () => d.logged(/network policy compiled/).some((l) => l.endpoints === (d.node === n0 ? 5 : 3)), 60_000);
    before0 = await dropsOf(n0);
  });
  after(async () => {
    for (const n of [n0, n1]) if (n) await k.c.exec(n, ['nft', 'delete', 'table', 'ip', 'nat'], { allowFail: true });
    await k.teardown();
  });

  const needsEnforcement = (t: TestContext): boolean => {
    if (!mode.enforcing) t.skip(`needs the enforcing dataplane (${mode.why})`);
    return mode.enforcing;
  };

  test('before any policy: every pod reaches db0 and db1 through their ClusterIPs, answered by the backend with its own address (the probes reach their targets)', async () => {
    for (const from of [pods.rogue0!, pods.rogue1!, pods.client0!, pods.picky0!]) {
      const targets = [...both(VIP.db0), ...both(VIP.db1), ...both(VIP.other0), ...both(VIP.other1)];
      const r = await probe(from, targets);
      targets.forEach((t, i) => {
        const o = r[i]!;
        assert.ok(o.ok, `${from.name} -> ${t.ip}/${t.proto}: ${!o.ok ? o.error : ''}`);
        assert.equal(o.peer, from.ip, `${from.name} -> ${t.ip}/${t.proto}: the backend sees the client (no SNAT)`);
      });
    }
    const [np] = await probe(k.c.internet, [{ ip: n0.ip, port: NODEPORT_DB, proto: 'tcp' }]);
    assert.ok(np!.ok, 'NodePort to db0 before the policy');
  });

  test('policies in force: db pods ingress-isolated (from role=client and role=picky only), picky0 isolated both ways (egress to app=db only)', async () => {
    const api = k.api;
    api.resources.add(
      NETWORK_POLICIES,
      makeRealisticNetworkPolicy(NS, 'db-from-clients', {
        podSelector: { matchLabels: { app: 'db' } },
        policyTypes: ['Ingress'],
        ingress: [{ from: [{ podSelector: { matchExpressions: [{ key: 'role', operator: 'In', values: ['client', 'picky'] }] } }] }],
      }),
    );
    api.resources.add(
      NETWORK_POLICIES,
      makeRealisticNetworkPolicy(NS, 'picky-to-db', { podSelector: { matchLabels: { role: 'picky' } }, policyTypes: ['Ingress', 'Egress'], egress: [{ to: [{ podSelector: { matchLabels: { app: 'db' } } }] }] }),
    );
    const iso = ENDPOINT_F_INGRESS_ISOLATED | ENDPOINT_F_EGRESS_ISOLATED;
    const want: [SimNode, SimPod, number][] = [
      [n0, pods.db0!, ENDPOINT_F_INGRESS_ISOLATED],
      [n1, pods.db1!, ENDPOINT_F_INGRESS_ISOLATED],
      [n0, pods.picky0!, iso],
      [n0, pods.client0!, 0],
      [n0, pods.other0!, 0],
    ];
    mode = await enforcementMode(k.c.nodes, async () => {
      await waitFor(
        'isolation flags in the endpoint maps',
        () =>
          want.every(([n, pod, flags]) => {
            using eps = openEndpointsMap(n.pinDir);
            return ((eps.lookup({ ip: pod.ip })?.flags ?? -1) & (iso | ENDPOINT_F_POLICY_PENDING)) === flags;
          }),
        30_000,
      );
    });
    assert.ok(mode.enforcing, mode.enforcing ? '' : mode.why);
  });

  test('ingress: a denied pod reaches db neither directly nor through its ClusterIP (local backend: the host stack; remote backend), the allowed pod does both', async (t) => {
    if (!needsEnforcement(t)) return;
    const { db0, db1, client0, rogue0, rogue1 } = pods as Record<string, SimPod>;
    const targets = [...both(db0!.ip), ...both(VIP.db0), ...both(db1!.ip), ...both(VIP.db1)];
    // Control: the allowed client, same node as db0 and another than db1, both ways, TCP and UDP.
    const ok = await probe(client0!, targets);
    targets.forEach((x, i) => {
      const o = ok[i]!;
      assert.ok(o.ok, `control: client0 -> ${x.ip}/${x.proto}: ${!o.ok ? o.error : ''} (${''})`);
      assert.equal(o.peer, client0!.ip);
    });
    // The attack: rogue0 (beside db0) and rogue1 (beside db1), every way.
    for (const rogue of [rogue0!, rogue1!]) assert.deepEqual(await reached(rogue, targets), [], `${rogue.name} must reach no db pod (${await describeDrops(n0)}; ${await describeDrops(n1)})`);
    const now = await dropsOf(n0);
    assert.ok((now.DROP_POLICY_INGRESS ?? 0n) > (before0.DROP_POLICY_INGRESS ?? 0n), 'node 0 counted DROP_POLICY_INGRESS');
  });

  test('egress after the DNAT: picky0 (egress to app=db only) reaches db through its ClusterIP, local and remote, and no other Service; its ingress isolation lets the replies in', async (t) => {
    if (!needsEnforcement(t)) return;
    const { db0, db1, other0, client0, picky0 } = pods as Record<string, SimPod>;
    const allowed = [...both(VIP.db0), ...both(VIP.db1), ...both(db0!.ip), ...both(db1!.ip)];
    const r = await probe(picky0!, allowed);
    allowed.forEach((x, i) => {
      const o = r[i]!;
      assert.ok(o.ok, `picky0 -> ${x.ip}/${x.proto}: ${!o.ok ? o.error : ''}`);
      assert.equal(o.peer, picky0!.ip);
    });
    const egress = (await dropsOf(n0)).DROP_POLICY_EGRESS ?? 0n;
    const denied = [...both(VIP.other0), ...both(VIP.other1), ...both(other0!.ip)];
    // Control: the same Services answer a pod without egress policy.
    assert.deepEqual(await reached(client0!, denied), denied.map((x) => key(x.ip, x.proto)), 'control: client0 reaches the other Services');
    assert.deepEqual(await reached(picky0!, denied), [], `picky0 must reach no other backend (${await describeDrops(n0)})`);
    assert.ok(((await dropsOf(n0)).DROP_POLICY_EGRESS ?? 0n) > egress, 'node 0 counted DROP_POLICY_EGRESS');
  });

  test('the node reaches its ingress-isolated pod (kubelet probes); a NodePort to a local backend meets its ingress policy with the client address, and passes masqueraded to the node', async (t) => {
    if (!needsEnforcement(t)) return;
    const { db0 } = pods as Record<string, SimPod>;
    const [tcp, udp] = await probe(n0, both(db0!.ip));
    assert.ok(tcp!.ok && udp!.ok, `node 0 -> db0 (${await describeDrops(n0)})`);
    // From the node's IP or from the bridge's address (the gateway), whichever the node's route picks.
    assert.ok(tcp!.ok && [n0.ip, n0.gateway].includes(tcp!.peer), `node 0 -> db0 seen from ${tcp!.ok && tcp!.peer}`);
    // Control: the same client reaches a NodePort whose local backend no policy selects.
    const [other, denied] = await probe(k.c.internet, [
      { ip: n0.ip, port: NODEPORT_OTHER, proto: 'tcp' },
      { ip: n0.ip, port: NODEPORT_DB, proto: 'tcp' },
    ]);
    assert.ok(other!.ok, `control: NodePort to other0: ${!other!.ok ? other!.error : ''}`);
    assert.equal(denied!.ok, false, 'the outside client is no role=client pod: db0 refuses it through the NodePort too');
    // externalTrafficPolicy: Cluster: kube-proxy masquerades NodePort traffic; the backend sees its node.
    await k.c.exec(n0, ['iptables', '-t', 'nat', '-A', 'POSTROUTING', '-d', db0!.ip, '-p', 'tcp', '-j', 'MASQUERADE']);
    const [masq] = await probe(k.c.internet, [{ ip: n0.ip, port: NODEPORT_DB, proto: 'tcp' }]);
    assert.ok(masq!.ok, `masqueraded NodePort to db0: ${!masq!.ok ? masq!.error : ''}`);
    assert.ok(masq!.ok && [n0.ip, n0.gateway].includes(masq!.peer), 'masqueraded: the backend sees the node, not the client');
  });
});
