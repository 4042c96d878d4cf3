// `bvcnictl monitor` names pods and policies: the real bvcnid --network-policy
// on 2 simulated nodes serves GET /endpoints; the built monitor fetches it and
// prints a denied probe's event with the pod's NS/NAME and the policy that
// isolates it. Controls: the same probe to a pod no policy selects passes (the
// probe reaches its target) and makes no event; that pod is named with no
// policy; a pod added after the monitor started gets its name (the refresh);
// --pod NS/NAME filters by name. The names are fetched in the monitor's own
// process where no namespace switch is needed (inside the node, with or
// without --netns naming it), through a child only with --netns from outside
// (the control: the same watch sees that child).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Cluster, SimNode, SimPod } from '../../src/sim/index.js';
import type { FakeKubeApiServer } from '../../src/sim/kube-apiserver.js';
import { makeNamespace, makeRealisticNetworkPolicy, makeRealisticPod, NAMESPACES, NETWORK_POLICIES, PODS } from '../../src/sim/kube-resources.js';
import { ping } from '../../src/sim/probe.js';
import { Reason } from '../../src/dataplane/abi.js';
import { KubeCluster, HEALTH_PORT, httpGet, type DaemonProc } from '../support/kube-daemons.js';
import { waitFor } from '../support/kube-util.js';
import { CHILD_SPAWNS, startMonitor, stopAllMonitors, type MonitorOptions } from '../support/monitor-proc.js';

describe('bvcnictl monitor names pods and the policies behind a policy drop', { timeout: 240_000 }, () => {
  let c: Cluster;
  let api: FakeKubeApiServer;
  const k = new KubeCluster({ prefix: 'pmn', nodes: 2, daemonArgs: () => ['--network-policy'] });
  let d0: DaemonProc;
  let n0: SimNode;
  let n1: SimNode;
  let web: SimPod; // shop/web: isolated for ingress by shop/deny-ingress
  let free: SimPod; // ops/free: no policy selects it
  let peer: SimPod; // ops/peer on the other node: the prober
  const health = ['--health-addr', `127.0.0.1:${HEALTH_PORT}`];

  async function podViaApi(node: SimNode, ns: string, name: string, labels: Record<string, string>): Promise<SimPod> {
    const pod = await c.addPod(node, name, { via: 'plugin', args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${ns};K8S_POD_NAME=${name}` });
    api.resources.add(PODS, makeRealisticPod({ namespace: ns, name, labels, ip: pod.ip, nodeName: node.name }));
    return pod;
  }

  before(async () => {
    ({ c, api } = await k.start());
    d0 = k.daemons[0]!;
    [n0, n1] = c.nodes as [SimNode, SimNode];
    api.resources.add(NAMESPACES, makeNamespace('shop', { team: 'shop' }));
    api.resources.add(NAMESPACES, makeNamespace('ops', { team: 'ops' }));
    api.resources.add(NETWORK_POLICIES, makeRealisticNetworkPolicy('shop', 'deny-ingress', { podSelector: {}, policyTypes: ['Ingress'] }));
    peer = await podViaApi(n1, 'ops', 'peer', { app: 'peer' });
    web = await podViaApi(n0, 'shop', 'web', { app: 'web' });
    free = await podViaApi(n0, 'ops', 'free', { app: 'free' });
    await waitFor('node 0 compiled the policy and the pods', () => d0.logged(/network policy compiled/).some((l) => l.policies === 1 && l.pods === 3), 60_000);
  });

  after(async () => {
    await stopAllMonitors();
    await k.teardown();
  });

  test('GET /endpoints: each local pod by IP with the policies isolating it per direction', async () => {
    const r = await httpGet(c, n0, `http://127.0.0.1:${HEALTH_PORT}/endpoints`);
    assert.equal(r.status, 200, r.body);
    const eps = (JSON.parse(r.body) as { endpoints: Record<string, unknown> }).endpoints;
    assert.deepEqual(eps[web.ip], { pod: 'shop/web', ingress: ['shop/deny-ingress'], egress: [] });
    assert.deepEqual(eps[free.ip], { pod: 'ops/free', ingress: [], egress: [] });
    assert.equal(eps[peer.ip], undefined, "another node's pod is not a local endpoint");
  });

  test('a denied probe: the event names shop/web and shop/deny-ingress; the unselected pod is reached and makes no event', async () => {
    const m = await startMonitor(n0, health);
    // Control: the same probe reaches a pod no policy selects.
    assert.ok((await ping(peer.path, free.ip, { count: 2 })).ok, 'peer reaches ops/free');
    assert.ok(!(await ping(peer.path, web.ip, { count: 2, timeoutS: 1 })).ok, 'peer reaches shop/web under default-deny');
    await waitFor('the policy drop', () => m.lines.some((l) => l.reasonCode === Reason.DROP_POLICY_INGRESS && l.daddr === web.ip), 15_000);
    const { code, lines } = await m.stop();
    assert.equal(code, 0);
    const drop = lines.find((l) => l.reasonCode === Reason.DROP_POLICY_INGRESS && l.daddr === web.ip)!;
    assert.equal(drop.pod, 'shop/web');
    assert.deepEqual(drop.policies, ['shop/deny-ingress']);
    assert.equal(drop.policy, 'shop/deny-ingress');
    assert.equal(drop.saddr, peer.ip);
    assert.deepEqual(
      lines.filter((l) => l.daddr === free.ip || l.saddr === free.ip),
      [],
      'the unselected pod made events',
    );
  });

  test('names fetched without a child inside the node (no --netns, or --netns naming its own namespace); with --netns from outside, through one', async () => {
    /** A denied probe's event as this monitor prints it, and the children the monitor started meanwhile. */
    const namedDrop = async (args: string[], o: MonitorOptions): Promise<{ pod: string | null; children: string[] }> => {
      const m = await startMonitor(n0, [...health, ...args], { ...o, nodeArgs: ['--import', CHILD_SPAWNS] });
      await waitFor(
        'the policy drop',
        async () => {
          await ping(peer.path, web.ip, { count: 1, timeoutS: 1 });
          return m.lines.some((l) => l.reasonCode === Reason.DROP_POLICY_INGRESS && l.daddr === web.ip);
        },
        15_000,
        200,
      );
      const { code, lines, stderr } = await m.stop();
      assert.equal(code, 0, stderr);
      const drop = lines.find((l) => l.reasonCode === Reason.DROP_POLICY_INGRESS && l.daddr === web.ip)!;
      return { pod: drop.pod, children: stderr.split('\n').filter((l) => l.startsWith('[child_process]')) };
    };
    const inside = await namedDrop([], { from: 'inside' });
    assert.equal(inside.pod, 'shop/web', 'named from bvcnid inside the node');
    assert.deepEqual(inside.children, [], 'no child inside the node');
    const sameNs = await namedDrop(['--netns', n0.path], { from: 'inside' });
    assert.equal(sameNs.pod, 'shop/web');
    assert.deepEqual(sameNs.children, [], '--netns naming the namespace the monitor is in: no child');
    const outside = await namedDrop([], { from: 'flag' });
    assert.equal(outside.pod, 'shop/web', '--netns from outside still names the pod');
    assert.ok(outside.children.length > 0, 'the watch sees the child --netns needs (else the two assertions above prove nothing)');
  });

  test('--pod NS/NAME, and a pod added after the monitor started gets its name', async () => {
    const m = await startMonitor(n0, [...health, '--pod', 'shop/web2']);
    const web2 = await podViaApi(n0, 'shop', 'web2', { app: 'web' });
    await waitFor('node 0 compiled web2', () => d0.logged(/network policy compiled/).some((l) => l.pods === 4), 30_000);
    // Probes to both web pods: only web2's pass the filter.
    await waitFor(
      'a named event for web2',
      async () => {
        await ping(peer.path, web.ip, { count: 1, timeoutS: 1 });
        await ping(peer.path, web2.ip, { count: 1, timeoutS: 1 });
        return m.lines.some((l) => l.pod === 'shop/web2' && l.policies.includes('shop/deny-ingress'));
      },
      30_000,
      200,
    );
    const { lines } = await m.stop();
    assert.ok(lines.length > 0);
    assert.deepEqual(lines.filter((l) => l.daddr === web.ip), [], '--pod shop/web2 let shop/web through');
    assert.ok(lines.every((l) => l.daddr === web2.ip || l.saddr === web2.ip), JSON.stringify(lines));
  });
});
