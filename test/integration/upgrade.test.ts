// make test-upgrade (issue 15): v0.1.0, built from its commit (cached under
// /var/tmp: test/support/release-build.ts), on three simulated nodes with
// traffic flowing — a long cross-node TCP transfer, a masqueraded TCP
// connection to the internet namespace, a cross-node UDP stream every 1 ms —
// rolled node by node to this build (maps migrated ABI 1 -> 2 in place), then
// back to v0.1.0 (this build's --prepare-downgrade, then v0.1.0 adopts).
// Asserts no reset, the NAT mapping kept, pod IPs kept, every pod pair
// connecting after each roll; prints the longest UDP gap of each roll.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { declaredMaps, defaultObjDir, MapName, openDataplaneMaps } from '../../src/dataplane/index.js';
import { SockProgram, TC_HANDLE, TC_PRIORITY, programPin } from '../../src/dataplane/layout.js';
import { BpfProgram, queryTc } from '../../loader/index.js';
import { execFileSync, spawnSync } from 'node:child_process';
import { probeMany, startResponder, type Cluster, type SimNode, type SimPod } from '../../src/sim/index.js';
import type { FakeKubeApiServer } from '../../src/sim/kube-apiserver.js';
import { KubeCluster } from '../support/kube-daemons.js';
import { releaseBuild, V0_1_0, type ReleaseBuild } from '../support/release-build.js';
import { waitFor } from '../support/kube-util.js';
import { runCli } from '../../src/cli/run.js';
import {
  abiOf,
  FlowEnd,
  pinnedLayout,
  prepareDowngrade,
  roll,
  THIS_BUILD,
} from '../support/upgrade.js';
import { longestGap, monotonicS, type UdpSinkReport } from '../support/stream-gap.js';

const TCP_PORT = 7101;
const UDP_PORT = 7102;
const MASQ_PORT = 7103;
/** Slow enough to leave the 2-core machine to the daemons, fast enough to be a transfer. */
const TCP_RATE = 2_000_000;

/** The id of the BPF link pinned at pin (bpftool). */
function pinnedLinkId(pin: string): number {
  const j = JSON.parse(execFileSync('bpftool', ['-j', 'link', 'show', 'pinned', pin], { encoding: 'utf8' })) as { id: number };
  return j.id;
}

/** Whether a link with this id still exists (a detached cgroup link with no holder is freed). */
function linkExists(id: number): boolean {
  return spawnSync('bpftool', ['link', 'show', 'id', String(id)], { stdio: 'ignore' }).status === 0;
}

interface Roll {
  node: string;
  to: string;
  from: number;
  to_: number;
}

describe('rolling upgrade v0.1.0 -> this build -> v0.1.0 under traffic (3 nodes)', { timeout: 900_000 }, () => {
  let rel: ReleaseBuild;
  let c: Cluster;
  let api: FakeKubeApiServer;
  const k = new KubeCluster({ prefix: 'upg', nodes: 3 });
  const daemons = k.daemons;
  const pods: SimPod[] = [];
  const rolls: Roll[] = [];
  const node = (i: number): SimNode => c.nodes[i]!;
  let flows: { tcpSink: FlowEnd; tcpSource: FlowEnd; udpSink: FlowEnd<UdpSinkReport>; udpSource: FlowEnd; echo: FlowEnd; masq: FlowEnd };
  const podIdentity = new Map<string, string>();

  before(async () => {
    rel = releaseBuild(V0_1_0, (l) => console.log(l));
    ({ c, api } = await k.start({ build: rel }));
    // Pods through v0.1.0's plugin, which its bvcnid installed.
    for (let i = 0; i < 3; i++) pods.push(await c.addPod(node(i), 'a', { via: 'plugin' }));
    for (const p of pods) c.track(await startResponder(p.path));
  });

  after(async () => {
    await k.teardown();
    for (const d of daemons) {
      const bad = d.logs.filter((l) => (typeof l.level === 'number' && l.level >= 50) || l.raw);
      if (bad.length) console.log(`--- ${d.node.name} errors:`, bad.slice(-5));
    }
  });

  /** Every pod reaches every other over TCP and UDP, from the pod's own address. */
  async function allPairs(when: string): Promise<void> {
    for (const src of pods) {
      const targets = pods.filter((p) => p !== src).flatMap((p) => [{ ip: p.ip, proto: 'tcp' as const }, { ip: p.ip, proto: 'udp' as const }]);
      const out = await probeMany(src.path, targets, 3000);
      out.forEach((o, i) => {
        assert.ok(o.ok, `${when}: ${src.name} -> ${targets[i]!.ip}/${targets[i]!.proto}: ${o.ok ? '' : o.error}`);
        assert.equal(o.peer, `${src.ip}`, `${when}: ${src.name}'s address as the target saw it`);
      });
    }
  }

  /** What bvcnictl status says of the node's pinned maps. */
  async function statusAbi(n: SimNode): Promise<unknown> {
    const r = await runCli(['status', '--json', '--health-addr', 'none', '--pin-dir', n.pinDir, '--netns', n.path]);
    return (JSON.parse(r.output) as { abi: unknown }).abi;
  }

  /** Each pod's endpoint entry (ip -> ifindex, MAC) on its node, in whatever layout the node has. */
  function endpoints(): Map<string, string> {
    const out = new Map<string, string>();
    for (const p of pods) {
      using maps = openDataplaneMaps(p.node.pinDir);
      const ep = maps.endpoints.lookup({ ip: p.ip });
      if (ep) out.set(p.ip, `${ep.ifindex}/${ep.pod_mac}`);
    }
    return out;
  }

  /**
   * Each pod's bpf_to_pod (NetworkPolicy for what the host hands the pod) at its host veth's
   * egress: the program id there per pod, undefined where none is attached.
   */
  function toPodIds(): (number | undefined)[] {
    return pods.map((p) => {
      using maps = openDataplaneMaps(p.node.pinDir);
      const ep = maps.endpoints.lookup({ ip: p.ip });
      return ep ? queryTc({ ifindex: ep.ifindex, netns: p.node.path, direction: 'egress', handle: TC_HANDLE, priority: TC_PRIORITY }) : undefined;
    });
  }

  test('the two releases pin different map layouts (else this test would prove nothing)', () => {
    const key = (dir: string): string =>
      JSON.stringify(
        declaredMaps(dir)
          .filter((m) => (Object.values(MapName) as string[]).includes(m.name))
          .sort((a, b) => a.name.localeCompare(b.name)),
      );
    assert.notEqual(key(join(rel.dir, 'dist/bpf')), key(defaultObjDir()), 'v0.1.0 and this build declare the same maps: nothing to migrate');
    for (const n of c.nodes) assert.equal(abiOf(pinnedLayout(n.pinDir)), 1, `${n.name} runs v0.1.0's layouts`);
  });

  test('flows start on v0.1.0: cross-node TCP, masqueraded TCP to the internet, 1 ms UDP; every pod pair connects', async () => {
    const [a, b, cc] = pods as [SimPod, SimPod, SimPod];
    const tcpSink = new FlowEnd(c, b, 'tcp-sink', [TCP_PORT]);
    const udpSink = new FlowEnd<UdpSinkReport>(c, cc, 'udp-sink', [UDP_PORT]);
    const echo = new FlowEnd(c, c.internet, 'echo-peer', [MASQ_PORT]);
    await Promise.all([tcpSink.ready(), udpSink.ready(), echo.ready()]);
    const tcpSource = new FlowEnd(c, a, 'tcp-source', [b.ip, TCP_PORT, TCP_RATE]);
    const udpSource = new FlowEnd(c, b, 'udp-source', [cc.ip, UDP_PORT]);
    const masq = new FlowEnd(c, cc, 'masq-client', [c.internet.ip, MASQ_PORT]);
    await Promise.all([tcpSource.ready(), udpSource.ready(), masq.ready()]);
    flows = { tcpSink, tcpSource, udpSink, udpSource, echo, masq };
    for (const [ip, ep] of endpoints()) podIdentity.set(ip, ep);
    assert.equal(podIdentity.size, 3, 'every pod registered in its node endpoint map');
    await allPairs('on v0.1.0');
  });

  test('roll node by node to this build: maps migrated to ABI 2 in place, pods keep their IPs and entries, all pairs connect', async () => {
    for (const d of daemons) {
      assert.deepEqual(await statusAbi(d.node), { pinned: 1, migrating: false, thisBuild: 2 }, 'bvcnictl status: v0.1.0 maps before the roll');
      const from = monotonicS();
      await roll(d, THIS_BUILD);
      rolls.push({ node: d.node.name, to: 'this build', from, to_: monotonicS() });
      const l = pinnedLayout(d.node.pinDir);
      assert.equal(abiOf(l), 2, `${d.node.name}: ABI 2 layouts after the roll: ${JSON.stringify(l)}`);
      assert.deepEqual(await statusAbi(d.node), { pinned: 2, migrating: false, thisBuild: 2 }, 'bvcnictl status after the roll');
      assert.equal(l.staging, false, 'no migration left half done');
      await waitFor(`${d.node.name} logged its migration`, () => d.logged(/migrated to this release's layouts/).length === 1, 5000);
      assert.deepEqual(endpoints(), podIdentity, 'every pod keeps its IP and its endpoint entry');
      // v0.1.0's pods get this build's bpf_to_pod at their host veth's egress, the pinned one.
      {
        using toPod = BpfProgram.openPinned(programPin(d.node.pinDir, 'toPod'));
        const here = pods.map((p, i) => [p, toPodIds()[i]] as const).filter(([p]) => p.node === d.node);
        assert.ok(here.length > 0 && here.every(([, id]) => id === toPod.id), `${d.node.name}: bpf_to_pod (id ${toPod.id}) on every pod's host veth egress: ${JSON.stringify(here.map(([p, id]) => [p.ip, id]))}`);
      }
      await allPairs(`after ${d.node.name} rolled to this build`);
    }
  });

  test("roll back node by node: this build's --prepare-downgrade, then v0.1.0 adopts the ABI 1 maps; all pairs connect", async () => {
    for (const d of daemons) {
      // Control: this build's hostPort state is there to be removed (maps created by the
      // migration up, the node's connect4 link attached to the cgroup root).
      const linkPin = join(d.node.pinDir, SockProgram.linkPin);
      const before = pinnedLayout(d.node.pinDir);
      assert.ok(before.maps[MapName.hostport] && before.maps[MapName.hostportFlows], `${d.node.name}: the hostPort maps were created by the migration up`);
      for (const m of [MapName.ipcache, MapName.policy, MapName.podCt]) assert.ok(before.maps[m], `${d.node.name}: ${m} was created by the migration up`);
      for (const m of [MapName.events, MapName.monitor, MapName.monitorBucket]) assert.ok(before.maps[m], `${d.node.name}: ${m} was created by the migration up`);
      assert.ok(existsSync(linkPin), `${d.node.name}: this build attached its cgroup connect4 link`);
      const linkId = pinnedLinkId(linkPin);
      assert.ok(linkExists(linkId), `${d.node.name}: link ${linkId} found by id`);
      const toPodPin = programPin(d.node.pinDir, 'toPod');
      const onNode = (ids: (number | undefined)[]) => ids.filter((_, i) => pods[i]!.node === d.node);
      assert.ok(existsSync(toPodPin) && onNode(toPodIds()).every((id) => id !== undefined), `${d.node.name}: bpf_to_pod pinned and attached before the roll back`);
      const from = monotonicS();
      let prep = { code: -1, out: '' };
      await roll(d, rel, {
        beforeStart: async () => {
          prep = await prepareDowngrade(c, d);
        },
      });
      rolls.push({ node: d.node.name, to: 'v0.1.0', from, to_: monotonicS() });
      assert.equal(prep.code, 0, `--prepare-downgrade on ${d.node.name}: ${prep.out}`);
      assert.match(prep.out, /converted to ABI 1/);
      const l = pinnedLayout(d.node.pinDir);
      assert.equal(abiOf(l), 1, `${d.node.name}: ABI 1 layouts after the roll back: ${JSON.stringify(l)}`);
      assert.equal(l.staging, false);
      // v0.1.0 knows nothing of them: a connect4 link left attached would go on rewriting
      // the node's connects through maps nobody maintains; stale mappings would come back
      // at the next upgrade.
      assert.ok(!existsSync(linkPin), `${d.node.name}: the connect4 link's pin is gone`);
      assert.ok(!linkExists(linkId), `${d.node.name}: link ${linkId} no longer exists (detached, its pin gone)`);
      assert.equal(l.maps[MapName.hostport], undefined, `${d.node.name}: bvcni_hostport unpinned`);
      assert.equal(l.maps[MapName.hostportFlows], undefined, `${d.node.name}: bvcni_hostport_flows unpinned`);
      assert.match(prep.out, /hostPorts \(ABI 2\) removed/);
      for (const m of [MapName.ipcache, MapName.policy, MapName.podCt]) assert.equal(l.maps[m], undefined, `${d.node.name}: ${m} unpinned`);
      for (const m of [MapName.events, MapName.monitor, MapName.monitorBucket]) assert.equal(l.maps[m], undefined, `${d.node.name}: ${m} unpinned`);
      assert.match(prep.out, /drop events \(ABI 2\) removed/);
      // bpf_to_pod has no ABI 1 build: unpinned, and detached from every pod (v0.1.0 would leave it deciding on dead maps).
      assert.ok(!existsSync(toPodPin), `${d.node.name}: prog_to_pod unpinned`);
      assert.deepEqual(onNode(toPodIds()).filter((id) => id !== undefined), [], `${d.node.name}: no pod veth keeps bpf_to_pod`);
      assert.match(prep.out, /bpf_to_pod/);
      assert.equal(d.logged(/dataplane setup failed/).length, 0, `${d.node.name}: v0.1.0 adopted the maps at once`);
      assert.deepEqual(endpoints(), podIdentity, 'every pod keeps its IP and its endpoint entry');
      await allPairs(`after ${d.node.name} rolled back to v0.1.0`);
    }
  });

  test('the flows lived through every roll: no reset, every byte delivered, one NAT mapping, the UDP stream resumed', async () => {
    const src = (await flows.tcpSource.finish()) as { sent: number; error: string | null };
    const sink = (await flows.tcpSink.finish()) as { received: number; error: string | null };
    const masq = (await flows.masq.finish()) as { answers: number; peers: Record<string, number>; error: string | null };
    const echo = (await flows.echo.finish()) as { error: string | null };
    await flows.udpSource.finish();
    const udp = await flows.udpSink.finish();
    console.log('# longest gap of the 1 ms UDP stream (pod on one node -> pod on another) during each roll:');
    for (const r of rolls) {
      const g = longestGap(udp, r.from, r.to_);
      console.log(`#   ${r.node} -> ${r.to}: ${g.ms.toFixed(1)} ms, ${g.dataplaneMs.toFixed(1)} ms of it the dataplane's (${g.lost} datagrams lost)`);
    }
    assert.equal(src.error, null, 'the TCP source saw no error (a reset above all)');
    assert.equal(sink.error, null, 'the TCP sink saw no error');
    assert.ok(src.sent > 0 && sink.received === src.sent, `every byte arrived: sent ${src.sent}, received ${sink.received}`);
    assert.equal(masq.error, null, 'the masqueraded connection saw no error');
    assert.equal(echo.error, null);
    assert.equal(Object.keys(masq.peers).length, 1, `the internet saw one source address and port all along: ${JSON.stringify(masq.peers)}`);
    assert.match(Object.keys(masq.peers)[0]!, new RegExp(`^${pods[2]!.node.ip.replace(/\./g, '\\.')}:\\d+$`), 'masqueraded to the node IP');
    // The stream went on after the last roll: datagrams arrived after it ended.
    assert.ok(udp.last !== null && udp.last > rolls[rolls.length - 1]!.to_, 'UDP datagrams arrived after the last roll');
  });
});
