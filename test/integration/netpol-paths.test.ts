// Every path that is not pod-to-pod policy keeps working while a default-deny
// policy is in force in ANOTHER namespace, on 2 simulated nodes running bvcnid
// --network-policy: masquerade to the internet, node ↔ pod, a NodePort (kube-proxy
// style DNAT, local and remote backends) and a hostPort, for pods no policy
// selects, on the same nodes as isolated pods. And the node's own traffic (the
// kubelet's probes) reaches a pod under default-deny ingress.
//
// With the enforcing dataplane (bvcni_policy pinned) the deny policy is also shown
// in force — pods of the locked namespace unreachable from a pod of either node
// and from another node, and unable to send — so "the paths work" is not the
// trivial result of a policy that does nothing. Without it, those checks are skipped
// and say so.
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { loadDataplane, probeMany, RESPONDER_PORT, startResponder, type ProbeOutcome, type SimNetns, type SimNode, type SimPod } from '../../src/sim/index.js';
import { makeRealisticNetworkPolicy, makeRealisticPod, makeNamespace, NAMESPACES, NETWORK_POLICIES, PODS } from '../../src/sim/kube-resources.js';
import { openEndpointsMap } from '../../src/dataplane/maps.js';
import { KubeCluster } from '../support/kube-daemons.js';
import { waitFor } from '../support/kube-util.js';
import { ENDPOINT_F_EGRESS_ISOLATED, ENDPOINT_F_INGRESS_ISOLATED, ENDPOINT_F_POLICY_PENDING, enforcementMode, type EnforcementMode } from '../support/netpol-e2e.js';

const HOSTPORT = 8080;
const NODEPORT_LOCAL = 30080;
const NODEPORT_REMOTE = 30081;

/** A node's nonzero drop counters, for failure messages. */
async function drops(n: SimNode): Promise<string> {
  const d = (await loadDataplane()).readDropStats(n.pinDir).filter((x) => x.packets > 0n);
  return `drops on ${n.name}: ${d.map((x) => `${x.reason}/${x.direction} ${x.packets}`).join(', ') || 'none'}`;
}

function peerOf(o: ProbeOutcome | undefined, what: string): string {
  assert.ok(o?.ok, `${what}: ${o && !o.ok ? o.error : 'no result'}`);
  return o.peer;
}

describe('paths beside NetworkPolicy: a default-deny in another namespace, 2 simulated nodes', { timeout: 180_000 }, () => {
  const k = new KubeCluster({ prefix: 'npp', nodes: 2, daemonArgs: () => ['--network-policy'] });
  let n0: SimNode;
  let n1: SimNode;
  let web: SimPod; // app/web on node 0, hostPort HOSTPORT/tcp
  let cli: SimPod; // app/cli on node 1
  let db: SimPod; // locked/db on node 0, beside web
  let db1: SimPod; // locked/db1 on node 1, beside cli
  let mode: EnforcementMode = { enforcing: false, why: 'not started' };

  before(async () => {
    const { c, api } = await k.start();
    [n0, n1] = c.nodes as [SimNode, SimNode];
    api.resources.add(NAMESPACES, makeNamespace('app'));
    api.resources.add(NAMESPACES, makeNamespace('locked'));
    api.resources.add(NETWORK_POLICIES, makeRealisticNetworkPolicy('locked', 'deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }));
    const add = async (node: SimNode, ns: string, name: string, opts: { hostPort?: number } = {}): Promise<SimPod> => {
      const pod = await c.addPod(node, `${ns.slice(0, 3)}${name}`, {
        via: 'plugin',
        args: `K8S_POD_NAMESPACE=${ns};K8S_POD_NAME=${name}`,
        ...(opts.hostPort ? { portMappings: [{ hostPort: opts.hostPort, containerPort: RESPONDER_PORT, protocol: 'tcp' }] } : {}),
      });
      api.resources.add(
        PODS,
        makeRealisticPod({ namespace: ns, name, labels: { app: name }, ip: pod.ip, nodeName: node.name, ports: [{ name: 'whoami', containerPort: RESPONDER_PORT }] }),
      );
      return pod;
    };
    web = await add(n0, 'app', 'web', { hostPort: HOSTPORT });
    cli = await add(n1, 'app', 'cli');
    db = await add(n0, 'locked', 'db');
    db1 = await add(n1, 'locked', 'db1');
    for (const ns of [web, cli, db, db1, c.internet, n0, n1]) c.track(await startResponder(ns.path));
    // Converged: each daemon compiled the deny policy for its locked pod; with enforcement,
    // the endpoint map says so too (isolated both ways, nothing left pending).
    const pairs = [
      [k.daemons[0]!, db, web],
      [k.daemons[1]!, db1, cli],
    ] as const;
    for (const [d] of pairs)
      await waitFor(`${d.node.name} compiled the deny policy`, () => d.logged(/network policy compiled/).some((l) => l.policies === 1 && l.endpoints === 2), 60_000);
    mode = await enforcementMode(c.nodes, async () => {
      for (const [d, pod, free] of pairs)
        await waitFor(
          `${d.node.name}: ${pod.name} isolated, ${free.name} not`,
          () => {
            using eps = openEndpointsMap(d.node.pinDir);
            const flags = (ip: string): number => eps.lookup({ ip })?.flags ?? -1;
            const iso = ENDPOINT_F_INGRESS_ISOLATED | ENDPOINT_F_EGRESS_ISOLATED;
            return (flags(pod.ip) & (iso | ENDPOINT_F_POLICY_PENDING)) === iso && (flags(free.ip) & (iso | ENDPOINT_F_POLICY_PENDING)) === 0;
          },
          30_000,
        );
    });
  });
  after(() => k.teardown());

  const needsEnforcement = (t: TestContext): boolean => {
    if (!mode.enforcing) t.skip(`needs the enforcing dataplane (${mode.why})`);
    return mode.enforcing;
  };

  test('the deny policy is in force: the locked pods are unreachable from a pod of either node and from another node, and send nothing', async (t) => {
    if (!needsEnforcement(t)) return;
    // Controls first: the same probes reach an app pod, so a blocked answer below is the policy's.
    const tcp = (ip: string) => ({ ip, proto: 'tcp' as const });
    const reach = async (from: SimNetns, ip: string): Promise<boolean> => (await probeMany(from.path, [tcp(ip)], 1500))[0]!.ok;
    assert.ok(await reach(cli, web.ip), 'control: app/cli reaches app/web across nodes');
    assert.ok(await reach(n1, web.ip), 'control: node 1 reaches app/web');
    assert.ok(await reach(web, k.c.internet.ip), 'control: app/web reaches the internet');
    assert.equal(await reach(cli, db.ip), false, 'app/cli (node 1) must not reach locked/db (node 0)');
    assert.equal(await reach(web, db.ip), false, 'app/web must not reach locked/db on its own node');
    assert.equal(await reach(n1, db.ip), false, 'another node is an address like any other: denied');
    assert.equal(await reach(db, web.ip), false, 'locked/db must not send to app/web (egress denied)');
    assert.equal(await reach(db1, k.c.internet.ip), false, 'locked/db1 must not reach the internet');
  });

  test('masquerade: app pods on both nodes reach the internet, seen as their node', async () => {
    for (const [pod, node] of [
      [web, n0],
      [cli, n1],
    ] as const) {
      const [tcp, udp] = await probeMany(pod.path, [
        { ip: k.c.internet.ip, proto: 'tcp' },
        { ip: k.c.internet.ip, proto: 'udp' },
      ]);
      assert.equal(peerOf(tcp, `${pod.name} TCP`), node.ip);
      assert.equal(peerOf(udp, `${pod.name} UDP`), node.ip);
    }
  });

  test('node ↔ pod: each node reaches the app pods of both nodes, and they reach each node, with real addresses', async () => {
    for (const node of [n0, n1])
      for (const pod of [web, cli]) {
        const [r] = await probeMany(node.path, [{ ip: pod.ip, proto: 'tcp' }]);
        assert.equal(peerOf(r, `${node.name} -> ${pod.name}`), node.ip);
        const [back] = await probeMany(pod.path, [{ ip: node.ip, proto: 'tcp' }]);
        assert.equal(peerOf(back, `${pod.name} -> ${node.name}`), pod.ip);
      }
  });

  test('the kubelet probe: each node reaches its locked pod under default-deny ingress (TCP)', async () => {
    for (const [node, pod] of [
      [n0, db],
      [n1, db1],
    ] as const) {
      const [tcp] = await probeMany(node.path, [{ ip: pod.ip, proto: 'tcp' }]);
      assert.equal(peerOf(tcp, `${node.name} -> ${pod.name} TCP (${await drops(node)})`), node.ip);
    }
  });

  // The pod is isolated both ways: its answers to the node are replies of a flow the node
  // was allowed to open, and must pass as for TCP (issue 16: "replies of an allowed
  // connection always pass, in both directions").
  test("the node's UDP to its locked pod is answered: the reply of an allowed flow passes the pod's egress isolation", async () => {
    const [udp] = await probeMany(n0.path, [{ ip: db.ip, proto: 'udp' }]);
    assert.equal(peerOf(udp, `node 0 -> locked/db UDP (${await drops(n0)})`), n0.ip);
  });

  test('NodePort: an outside client reaches app/web (local backend) and app/cli (remote backend, SNAT) through node 0', async () => {
    const ipt = (...a: string[]) => k.c.exec(n0, ['iptables', '-t', 'nat', '-A', ...a]);
    await ipt('PREROUTING', '-d', n0.ip, '-p', 'tcp', '--dport', String(NODEPORT_LOCAL), '-j', 'DNAT', '--to-destination', `${web.ip}:${RESPONDER_PORT}`);
    await ipt('PREROUTING', '-d', n0.ip, '-p', 'tcp', '--dport', String(NODEPORT_REMOTE), '-j', 'DNAT', '--to-destination', `${cli.ip}:${RESPONDER_PORT}`);
    await ipt('POSTROUTING', '-d', cli.ip, '-p', 'tcp', '-j', 'MASQUERADE');
    try {
      const [local, remote] = await probeMany(k.c.internet.path, [
        { ip: n0.ip, port: NODEPORT_LOCAL, proto: 'tcp' },
        { ip: n0.ip, port: NODEPORT_REMOTE, proto: 'tcp' },
      ]);
      assert.equal(peerOf(local, 'NodePort, local backend'), k.c.internet.ip, 'the local backend sees the client (no SNAT)');
      assert.equal(local!.ok && local!.local, web.ip);
      assert.equal(peerOf(remote, 'NodePort, remote backend'), n0.ip, 'the remote backend sees the node that took the connection');
      assert.equal(remote!.ok && remote!.local, cli.ip);
    } finally {
      await k.c.exec(n0, ['nft', 'delete', 'table', 'ip', 'nat'], { allowFail: true });
    }
  });

  test('hostPort: an outside client, a pod of another node and another node reach app/web at <node 0>:hostPort, seen with their own address', async () => {
    for (const [what, ns, ip] of [
      ['outside client', k.c.internet, k.c.internet.ip],
      ['pod on another node', cli, cli.ip],
      ['another node', n1, n1.ip],
    ] as const) {
      const [r] = await probeMany(ns.path, [{ ip: n0.ip, port: HOSTPORT, proto: 'tcp' }]);
      assert.equal(peerOf(r, what), ip, `${what}: the pod sees the client's address`);
      assert.equal(r!.ok && r!.local, web.ip, `${what}: answered by the pod`);
    }
  });
});
