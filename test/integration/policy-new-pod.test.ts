// A pod created after a deny policy is unreachable by a denied peer from its
// first packet: the real bvcnid --network-policy on 2 simulated nodes, the
// real plugin (through bvcnid's socket), real traffic. Hostile peers (one on
// the other node, one on the same node) flood UDP at every address the new
// pod could get, from before its ADD until after its rules are written; the
// new pod counts what reaches it (Udp NoPorts: nothing listens). Three ways a
// pod comes up:
//  A. bvcnid serves the ADD and has the Pod cached: its rules, identity and
//     isolation are in the maps when the ADD returns;
//  B. the ADD names no Pod (as if the plugin worked alone): the endpoint is
//     ENDPOINT_F_POLICY_PENDING until the Pod's status.podIP names it;
//  C. the ADD names a Pod bvcnid has not seen yet: pending until it arrives.
// Each has a control: an allowed peer's identical flood reaches the pod (the
// probe does reach its target), and the node reaches the pod.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import type { Cluster, SimNode, SimPod } from '../../src/sim/index.js';
import type { FakeKubeApiServer } from '../../src/sim/kube-apiserver.js';
import { makeNamespace, makeRealisticNetworkPolicy, makeRealisticPod, NAMESPACES, NETWORK_POLICIES, PODS } from '../../src/sim/kube-resources.js';
import { ping } from '../../src/sim/probe.js';
import { openEndpointsMap } from '../../src/dataplane/maps.js';
import { EndpointFlags } from '../../src/dataplane/abi.js';
import { openPolicyMaps, policyEntryKey } from '../../src/dataplane/policy.js';
import { runCli } from '../../src/cli/run.js';
import { KubeCluster, HEALTH_PORT, type DaemonProc } from '../support/kube-daemons.js';
import { waitFor } from '../support/kube-util.js';

const FLOOD = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
base, lo, hi, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
print('flooding', flush=True)
while True:
    for i in range(lo, hi):
        try:
            s.sendto(b'x', (base + str(i), port))
        except OSError:
            pass
`;

describe('a new pod under a deny policy, from its first packet', { timeout: 240_000 }, () => {
  let c: Cluster;
  let api: FakeKubeApiServer;
  const k = new KubeCluster({ prefix: 'npn', nodes: 2, daemonArgs: () => ['--network-policy'] });
  let d0: DaemonProc;
  let n0: SimNode;
  let n1: SimNode;
  const hostile: SimPod[] = [];
  let friend: SimPod;
  const floods: ChildProcess[] = [];

  async function podViaApi(node: SimNode, ns: string, name: string, labels: Record<string, string>): Promise<SimPod> {
    const pod = await c.addPod(node, name, { via: 'plugin', args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${ns};K8S_POD_NAME=${name}` });
    api.resources.add(PODS, makeRealisticPod({ namespace: ns, name, labels, ip: pod.ip, nodeName: node.name }));
    return pod;
  }

  const prefix24 = (n: SimNode): string => `${n.podCidr.split('/')[0]!.split('.').slice(0, 3).join('.')}.`;

  function flood(from: SimPod, port: number): ChildProcess {
    const p = c.spawn(from, ['python3', '-c', FLOOD, prefix24(n0), '2', '48', String(port)]);
    floods.push(p);
    return p;
  }
  function stop(p: ChildProcess): void {
    p.kill('SIGKILL');
  }

  async function udpArrived(pod: SimPod): Promise<number> {
    const r = await c.exec(pod, ['cat', '/proc/net/snmp']);
    const lines = r.stdout.split('\n').filter((l) => l.startsWith('Udp:'));
    const names = lines[0]!.split(/\s+/);
    const vals = lines[1]!.split(/\s+/).map(Number);
    return vals[names.indexOf('InDatagrams')]! + vals[names.indexOf('NoPorts')]!;
  }

  function endpointFlags(ip: string): { flags: number; identity: number } | undefined {
    using m = openEndpointsMap(n0.pinDir);
    const v = m.lookup({ ip });
    return v && { flags: Number(v.flags), identity: Number(v.identity) };
  }

  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

  /** The allowed friend's identical flood reaches the pod: the hostile probe would have been counted. */
  async function control(pod: SimPod): Promise<void> {
    const before = await udpArrived(pod);
    const f = flood(friend, 9998);
    try {
      await waitFor(`the allowed peer's flood reaches ${pod.name}`, async () => (await udpArrived(pod)) > before + 10, 10_000);
    } finally {
      stop(f);
    }
    assert.ok((await ping(n0.path, pod.ip, { count: 1 })).ok, 'the node reaches the pod');
  }

  before(async () => {
    ({ c, api } = await k.start());
    d0 = k.daemons[0]!;
    [n0, n1] = c.nodes as [SimNode, SimNode];
    api.resources.add(NAMESPACES, makeNamespace('shop', { team: 'shop' }));
    api.resources.add(NAMESPACES, makeNamespace('ops', { team: 'ops' }));
    hostile.push(await podViaApi(n1, 'ops', 'peer', { app: 'peer' }));
    hostile.push(await podViaApi(n0, 'ops', 'near', { app: 'peer' }));
    friend = await podViaApi(n1, 'ops', 'friend', { app: 'friend' });
    api.resources.add(NETWORK_POLICIES, makeRealisticNetworkPolicy('shop', 'deny-ingress', { podSelector: {}, policyTypes: ['Ingress'] }));
    api.resources.add(
      NETWORK_POLICIES,
      makeRealisticNetworkPolicy('shop', 'allow-friend', {
        podSelector: {},
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'ops' } }, podSelector: { matchLabels: { app: 'friend' } } }] }],
      }),
    );
    // Both policies and the three peers compiled on node 0 (the ipcache knows the peers).
    await waitFor('node 0 compiled the policies and peers', () => d0.logged(/network policy compiled/).some((l) => l.policies === 2 && l.pods === 3), 60_000);
    for (const h of hostile) flood(h, 9999);
    await sleep(300);
  });

  after(async () => {
    for (const p of floods) p.kill('SIGKILL');
    await k.teardown();
  });

  test('A: bvcnid serves the ADD of a cached Pod: rules in force when the ADD returns; denied peers never reach it', async () => {
    api.resources.add(PODS, makeRealisticPod({ namespace: 'shop', name: 'web1', labels: { app: 'web' }, ip: '', nodeName: n0.name }));
    await waitFor('web1 cached on node 0', () => d0.logged(/network policy compiled/).some((l) => l.pods === 4), 30_000);
    const pod = await c.addPod(n0, 'web1', { via: 'plugin', args: 'K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web1' });
    const ep = endpointFlags(pod.ip)!;
    assert.equal(ep.flags & EndpointFlags.policy_pending, 0, 'not pending when the ADD returned');
    assert.ok(ep.flags & EndpointFlags.ingress_isolated, 'ingress isolated when the ADD returned');
    assert.ok(ep.identity >= 256, `identity written before the answer (${ep.identity})`);
    await sleep(500);
    assert.equal(await udpArrived(pod), 0, 'a denied peer reached the pod');
    await control(pod);
  });

  test('bvcnictl policy --pod shows the rules in force, written in the maps, and reports a difference', async () => {
    const cli = (...args: string[]) => runCli(['policy', '--pod', 'shop/web1', '--pin-dir', n0.pinDir, '--netns', n0.path, '--health-addr', `127.0.0.1:${HEALTH_PORT}`, ...args]);
    const r = await cli('--json');
    assert.equal(r.exitCode, 0, r.output);
    const v = JSON.parse(r.output) as { ip: string; identity: number; ingress: { isolated: boolean }; entries: { direction: string; peer: number; peerText: string; proto: number; port: number; portPrefix: number; written: boolean }[]; problems: string[] };
    assert.equal(v.ingress.isolated, true);
    assert.deepEqual(v.problems, []);
    // The node's own traffic, and the friend's identity (allow-friend), every port; nothing for the hostile peers.
    assert.ok(v.entries.some((e) => e.direction === 'ingress' && e.peerText === 'this node'));
    const friendEntry = v.entries.find((e) => e.direction === 'ingress' && /^pod ops \{app=friend[,}]/.test(e.peerText));
    assert.ok(friendEntry, JSON.stringify(v.entries));
    assert.ok(v.entries.every((e) => !/app=peer/.test(e.peerText)));
    const text = await cli();
    assert.equal(text.exitCode, 0);
    assert.match(text.output, /pod shop\/web1 .*identity/);
    assert.match(text.output, /pod ops \{app=friend[,}].*yes/);
    // An entry gone from the map behind bvcnid's back: reported, exit 1.
    {
      using m = openPolicyMaps(n0.pinDir);
      assert.ok(m.policy.delete(policyEntryKey(v.ip, 'ingress', friendEntry)));
    }
    const bad = await cli();
    assert.equal(bad.exitCode, 1);
    assert.match(bad.output, /pod ops \{app=friend[,}].*NO/);
    assert.match(bad.output, /compiled, not in bvcni_policy/);
    {
      using m = openPolicyMaps(n0.pinDir);
      m.policy.update(policyEntryKey(v.ip, 'ingress', friendEntry), { rule_ref: 0 });
    }
    const unknown = await runCli(['policy', '--pod', 'shop/nope', '--pin-dir', n0.pinDir, '--netns', n0.path]);
    assert.equal(unknown.exitCode, 1);
    assert.match(unknown.output, /not an endpoint on this node/);
  });

  test('B: an ADD that names no Pod stays pending until status.podIP names it; denied peers never reach it', async () => {
    const pod = await c.addPod(n0, 'web2', { via: 'plugin' });
    assert.ok(endpointFlags(pod.ip)!.flags & EndpointFlags.policy_pending, 'pending after the ADD');
    await sleep(300);
    assert.equal(await udpArrived(pod), 0, 'a denied peer reached the pending pod');
    api.resources.add(PODS, makeRealisticPod({ namespace: 'shop', name: 'web2', labels: { app: 'web' }, ip: pod.ip, nodeName: n0.name }));
    await waitFor('pending cleared', () => (endpointFlags(pod.ip)!.flags & EndpointFlags.policy_pending) === 0, 30_000);
    assert.ok(endpointFlags(pod.ip)!.flags & EndpointFlags.ingress_isolated);
    await sleep(300);
    assert.equal(await udpArrived(pod), 0, 'a denied peer reached the pod');
    await control(pod);
  });

  test('C: an ADD naming a Pod not cached yet stays pending until the Pod arrives; denied peers never reach it', async () => {
    const pod = await c.addPod(n0, 'web3', { via: 'plugin', args: 'K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web3' });
    assert.ok(endpointFlags(pod.ip)!.flags & EndpointFlags.policy_pending, 'pending after the ADD');
    await sleep(300);
    assert.equal(await udpArrived(pod), 0, 'a denied peer reached the pending pod');
    // The Pod as the API has it right after scheduling: no address yet (the kubelet reports it later).
    api.resources.add(PODS, makeRealisticPod({ namespace: 'shop', name: 'web3', labels: { app: 'web' }, ip: '', nodeName: n0.name }));
    await waitFor('pending cleared', () => (endpointFlags(pod.ip)!.flags & EndpointFlags.policy_pending) === 0, 30_000);
    assert.ok(endpointFlags(pod.ip)!.flags & EndpointFlags.ingress_isolated);
    await sleep(300);
    assert.equal(await udpArrived(pod), 0, 'a denied peer reached the pod');
    await control(pod);
  });

  test('D: bvcnid restarted without --network-policy removes the policy state: nothing is left isolated or pending', async () => {
    const web1 = c.pods.find((p) => p.podName === 'web1')!;
    assert.ok(endpointFlags(web1.ip)!.flags & EndpointFlags.ingress_isolated);
    await d0.kill('SIGTERM');
    d0.extraArgs.length = 0;
    d0.start();
    await waitFor('flags cleared', () => (endpointFlags(web1.ip)!.flags & (EndpointFlags.ingress_isolated | EndpointFlags.policy_pending)) === 0, 60_000);
    {
      using m = openPolicyMaps(n0.pinDir);
      assert.equal([...m.policy.keys()].length, 0);
    }
    // The hostile flood, still running, now reaches the pod: enforcement is off, as asked.
    const before = await udpArrived(web1);
    await waitFor('the once-denied flood arrives', async () => (await udpArrived(web1)) > before + 10, 15_000);
  });
});

