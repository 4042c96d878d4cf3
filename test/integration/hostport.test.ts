// hostPort (issue 18) in a simulated 2-node cluster, through the real plugin
// and the real programs: pods asking for hostPorts (runtimeConfig.portMappings,
// as a runtime passes them when the conflist declares the capability) are
// reached at their node's IP by an outside client, a pod of another node, a
// pod of the same node and another node, each seen by the server with its own
// address; the host's own listeners and masquerade are untouched; a
// conflicting ADD fails and leaves the first owner's mapping; after DEL
// nothing answers; no iptables or nftables rule is ever involved.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  createCluster,
  loadDataplane,
  probeMany,
  startResponder,
  uniquePrefix,
  RESPONDER_PORT,
  type Cluster,
  type DataplaneApi,
  type ProbeOutcome,
  type SimNetns,
  type SimPod,
} from '../../src/sim/index.js';
import { claimHostPorts, listHostPorts } from '../../src/dataplane/index.js';
import { run } from '../../src/common/exec.js';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const PLUGIN = resolve(fileURLToPath(new URL('../../dist/bin/bvcni', import.meta.url)));
import { hostports } from '../../src/cli/commands/hostports.js';

const HTTP = 8080; // TCP hostPort -> RESPONDER_PORT
const DNS = 8053; // UDP hostPort -> RESPONDER_PORT
const OTHER = 8081; // TCP hostPort of the second pod, the control after DEL

function peerOf(o: ProbeOutcome, what: string): string {
  assert.ok(o.ok, `${what}: ${o.ok ? '' : o.error}`);
  return o.peer;
}

describe('hostPort: portMappings in eBPF, 2 simulated nodes', () => {
  let c: Cluster;
  let dp: DataplaneApi;
  let web: SimPod; // node 0, hostPorts HTTP/tcp and DNS/udp
  let web2: SimPod; // node 0, hostPort OTHER/tcp
  let local: SimPod; // node 0, a client on the same node
  let remote: SimPod; // node 1, a client on another node
  const n0 = (): SimNetns & { ip: string } => c.nodes[0]!;

  /** The plugin on node 0, as a runtime calls it. */
  async function plugin(command: string, pod: SimPod, extra: Record<string, unknown>): Promise<{ code: number; json: Record<string, unknown> }> {
    const node = c.nodes[0]!;
    const conf = { cniVersion: '1.1.0', name: 'bvcni', type: 'bvcni', podcidr: node.podCidr, bridge: node.bridge, dataDir: node.stateDir, pinDir: node.pinDir, ...extra };
    const env = { PATH: process.env.PATH, CNI_COMMAND: command, CNI_CONTAINERID: pod.name, CNI_NETNS: pod.path, CNI_IFNAME: 'eth0', CNI_PATH: join(PLUGIN, '..') };
    const r = await run([PLUGIN], { netns: node.path, input: JSON.stringify(conf), env, allowFail: true });
    return { code: r.code, json: r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>) : {} };
  }

  before(async () => {
    dp = await loadDataplane();
    c = await createCluster({ prefix: uniquePrefix('bvh'), nodes: 2, dataplane: 'bvcni' });
    web = await c.addPod(c.nodes[0]!, 'web', {
      via: 'plugin',
      portMappings: [
        { hostPort: HTTP, containerPort: RESPONDER_PORT, protocol: 'tcp' },
        { hostPort: DNS, containerPort: RESPONDER_PORT, protocol: 'udp', hostIP: '' },
      ],
    });
    web2 = await c.addPod(c.nodes[0]!, 'web2', { via: 'plugin', portMappings: [{ hostPort: OTHER, containerPort: RESPONDER_PORT }] });
    local = await c.addPod(c.nodes[0]!, 'cli', { via: 'plugin' });
    remote = await c.addPod(c.nodes[1]!, 'cli', { via: 'plugin' });
    // The node itself listens on RESPONDER_PORT too: its own listener, which no mapping may touch.
    for (const ns of [web, web2, local, remote, c.internet, c.nodes[0]!, c.nodes[1]!]) c.track(await startResponder(ns.path));
  });
  after(() => c?.destroy());

  test('an outside client, a pod of another node, a pod of the same node and another node reach the pod at <node IP>:<hostPort>, seen with their own address (TCP and UDP)', async () => {
    const clients: [string, SimNetns, string][] = [
      ['outside client', c.internet, c.internet.ip],
      ['pod on another node', remote, remote.ip],
      ['pod on the same node', local, local.ip],
      ['another node', c.nodes[1]!, c.nodes[1]!.ip],
    ];
    for (const [what, ns, ip] of clients) {
      const [tcp, udp] = await probeMany(ns.path, [
        { ip: n0().ip, port: HTTP, proto: 'tcp' },
        { ip: n0().ip, port: DNS, proto: 'udp' },
      ]);
      assert.equal(peerOf(tcp!, `${what} TCP`), ip, `${what}: the pod sees the client's address over TCP`);
      assert.equal(peerOf(udp!, `${what} UDP`), ip, `${what}: the pod sees the client's address over UDP`);
      // What the server said it listens on proves the pod answered, not the node's own listener.
      assert.equal(tcp!.ok && tcp!.local, web.ip, `${what}: TCP answered by the pod`);
    }
  });

  test('the node itself reaches the pod at <node IP>:<hostPort> and 127.0.0.1:<hostPort> (TCP and UDP); another node\'s own sockets are left alone', async () => {
    const node = c.nodes[0]!;
    for (const dst of [node.ip, '127.0.0.1']) {
      const [tcp, udp, host] = await probeMany(node.path, [
        { ip: dst, port: HTTP, proto: 'tcp' },
        { ip: dst, port: DNS, proto: 'udp' },
        { ip: dst, port: RESPONDER_PORT, proto: 'tcp' },
      ]);
      assert.ok(tcp!.ok && tcp!.local === web.ip, `${dst}:${HTTP} from the node: ${JSON.stringify(tcp)}`);
      assert.equal(tcp!.peer, node.ip, 'the pod sees the node');
      assert.ok(udp!.ok, `${dst}:${DNS}/udp from the node: ${JSON.stringify(udp)}`);
      // The control: the node's own listener on an unmapped port is still its own.
      assert.ok(host!.ok && host!.local === (dst === '127.0.0.1' ? '127.0.0.1' : node.ip), JSON.stringify(host));
    }
    // Node 1's sockets connecting to node 0 go over the network, as the "another node" client above: still node 1's own address.
    const [far] = await probeMany(c.nodes[1]!.path, [{ ip: node.ip, port: HTTP, proto: 'tcp' }]);
    assert.equal(peerOf(far!, 'node 1'), c.nodes[1]!.ip);
    // And 127.0.0.1 on node 1, which has no such hostPort, is node 1's own business: refused.
    const [local1] = await probeMany(c.nodes[1]!.path, [{ ip: '127.0.0.1', port: HTTP, proto: 'tcp' }], 1500);
    assert.ok(!local1!.ok, 'another node\'s loopback is not translated');
  });

  test("the node's own listener on an unmapped port still answers, and the mapped ports are not its", async () => {
    const [host, mapped] = await probeMany(c.internet.path, [
      { ip: n0().ip, port: RESPONDER_PORT, proto: 'tcp' },
      { ip: n0().ip, port: HTTP, proto: 'tcp' },
    ]);
    assert.ok(host!.ok && host!.local === n0().ip, `the host's listener answers for itself: ${JSON.stringify(host)}`);
    assert.ok(mapped!.ok && mapped!.local === web.ip, 'the hostPort is the pod');
  });

  test("the pod's containerPort reached directly keeps the pod's address (only hostPort flows are translated back), and the pod still masquerades to the outside", async () => {
    const [direct] = await probeMany(remote.path, [{ ip: web.ip, port: RESPONDER_PORT, proto: 'tcp' }]);
    assert.equal(peerOf(direct!, 'direct'), remote.ip);
    assert.ok(direct!.ok && direct!.local === web.ip);
    const [direct2] = await probeMany(remote.path, [{ ip: web.ip, port: RESPONDER_PORT, proto: 'udp' }]);
    assert.equal(peerOf(direct2!, 'direct UDP'), remote.ip);
    const [out] = await probeMany(web.path, [{ ip: c.internet.ip, proto: 'tcp' }]);
    assert.equal(peerOf(out!, 'masquerade'), n0().ip, 'the internet sees the node IP');
  });

  test('bvcnictl hostports lists the mappings with their pods', async () => {
    const r = await hostports.run({ pinDir: c.nodes[0]!.pinDir, json: true, netns: c.nodes[0]!.path });
    const list = (JSON.parse(r.output) as { hostports: { hostPort: number; protocol: string; podIp: string; containerPort: number; hostIp: string; endpoint: boolean }[] }).hostports;
    assert.deepEqual(
      list.map((e) => [e.hostIp, e.hostPort, e.protocol, e.podIp, e.containerPort, e.endpoint]),
      [
        ['*', DNS, 'udp', web.ip, RESPONDER_PORT, true],
        ['*', HTTP, 'tcp', web.ip, RESPONDER_PORT, true],
        ['*', OTHER, 'tcp', web2.ip, RESPONDER_PORT, true],
      ],
    );
  });

  test("a second pod asking for the same hostPort and protocol fails with CNI error 105, and the first keeps its mapping", async () => {
    const before = listHostPorts(c.nodes[0]!.pinDir);
    await assert.rejects(
      c.addPod(c.nodes[0]!, 'thief', { via: 'plugin', portMappings: [{ hostPort: 9999, containerPort: 1 }, { hostPort: HTTP, containerPort: RESPONDER_PORT }] }),
      (e: Error) => {
        const json = JSON.parse(e.message.slice(e.message.indexOf('{'))) as { code: number; msg: string; details?: string };
        assert.equal(json.code, 105, e.message);
        assert.match(json.msg, new RegExp(`hostPort 0\\.0\\.0\\.0:${HTTP}/tcp is already in use`));
        assert.match(json.details ?? '', new RegExp(web.ip.replace(/\./g, '\\.')));
        return true;
      },
    );
    assert.deepEqual(listHostPorts(c.nodes[0]!.pinDir), before, 'nothing claimed (9999 rolled back), nothing taken');
    const [tcp] = await probeMany(c.internet.path, [{ ip: n0().ip, port: HTTP, proto: 'tcp' }]);
    assert.ok(tcp!.ok && tcp!.local === web.ip, 'the first owner still answers');
    // The same port over the other protocol is another mapping: allowed.
    const udp = await c.addPod(c.nodes[0]!, 'udpish', { via: 'plugin', portMappings: [{ hostPort: HTTP, containerPort: RESPONDER_PORT, protocol: 'udp' }] });
    await c.removePod(udp);
  });

  test('concurrent ADDs racing for one hostPort: exactly one wins, the others fail with 105 and leave nothing', async () => {
    const names = ['race0', 'race1', 'race2', 'race3'];
    const results = await Promise.allSettled(names.map((n) => c.addPod(c.nodes[0]!, n, { via: 'plugin', portMappings: [{ hostPort: 8090, containerPort: RESPONDER_PORT }] })));
    const won = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const lost = results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as Error).message] : []));
    try {
      assert.equal(won.length, 1, `winners: ${won.map((p) => p.name)}; errors: ${lost.join(' | ')}`);
      for (const m of lost) assert.match(m, /"code":\s*105/);
      const e = listHostPorts(c.nodes[0]!.pinDir).filter((x) => x.hostPort === 8090);
      assert.deepEqual(e.map((x) => x.podIp), [won[0]!.ip]);
    } finally {
      for (const p of won) await c.removePod(p);
    }
    assert.ok(!listHostPorts(c.nodes[0]!.pinDir).some((x) => x.hostPort === 8090));
  });

  test('CHECK verifies the mappings runtimeConfig names: its own pass, a mapping it does not own is code 103', async () => {
    const prevResult = { cniVersion: '1.1.0', interfaces: [{ name: 'eth0', mac: web.mac, sandbox: web.path }], ips: [{ interface: 0, address: `${web.ip}/24` }] };
    const own = await plugin('CHECK', web, { prevResult, runtimeConfig: { portMappings: [{ hostPort: HTTP, containerPort: RESPONDER_PORT, protocol: 'tcp' }] } });
    assert.equal(own.code, 0, JSON.stringify(own.json));
    const other = await plugin('CHECK', web, { prevResult, runtimeConfig: { portMappings: [{ hostPort: OTHER, containerPort: RESPONDER_PORT, protocol: 'tcp' }] } });
    assert.equal(other.code, 1);
    assert.equal(other.json.code, 103);
    assert.match(String(other.json.msg), new RegExp(`hostPort 0\\.0\\.0\\.0:${OTHER}/tcp maps to ${web2.ip.replace(/\./g, '\\.')}:${RESPONDER_PORT} for another container`));
    const missing = await plugin('CHECK', web, { prevResult, runtimeConfig: { portMappings: [{ hostPort: 1234, containerPort: RESPONDER_PORT, protocol: 'tcp' }] } });
    assert.equal(missing.json.code, 103);
    assert.match(String(missing.json.msg), /is not mapped/);
  });

  test('GC removes mappings no valid attachment owns (a killed ADD\'s) and keeps the valid ones', async () => {
    const pin = c.nodes[0]!.pinDir;
    // What a killed ADD leaves: a mapping whose owner the runtime no longer lists.
    claimHostPorts(pin, 0x1234n, '10.244.1.250', [{ hostIp: '0.0.0.0', hostPort: 4444, containerPort: 80, protocol: 'tcp' }]);
    assert.ok(listHostPorts(pin).some((e) => e.hostPort === 4444));
    const valid = [web, web2, local].map((p) => ({ containerID: p.name, ifname: 'eth0' }));
    const gc = await plugin('GC', web, { 'cni.dev/valid-attachments': valid });
    assert.equal(gc.code, 0, JSON.stringify(gc.json));
    assert.deepEqual(listHostPorts(pin).map((e) => e.hostPort).sort(), [DNS, HTTP, OTHER]);
  });

  test('no iptables or nftables rule anywhere on the nodes', async () => {
    for (const node of c.nodes) {
      const nft = await run(['nft', 'list', 'ruleset'], { netns: node.path });
      assert.doesNotMatch(nft.stdout, /bvcni|dnat|\b8080\b/i, `${node.name}: nft ruleset`);
      const ipt = await run(['iptables-save'], { netns: node.path, allowFail: true });
      assert.doesNotMatch(ipt.stdout, /bvcni|DNAT|8080/, `${node.name}: iptables-save`);
    }
    // Control: the same command in the same namespace does see a rule that is there.
    await run(['nft', 'add', 'table', 'ip', 'bvcnictl_probe'], { netns: c.nodes[0]!.path });
    try {
      const nft = await run(['nft', 'list', 'ruleset'], { netns: c.nodes[0]!.path });
      assert.match(nft.stdout, /bvcnictl_probe/);
    } finally {
      await run(['nft', 'delete', 'table', 'ip', 'bvcnictl_probe'], { netns: c.nodes[0]!.path });
    }
  });

  // kube-proxy's rules beside the hostPorts: a ClusterIP (DNAT in the client's node) and a NodePort
  // with externalTrafficPolicy=Local (DNAT in the pod's node, no SNAT) to the same pod and
  // containerPort the hostPort maps. Their replies must reach conntrack untranslated by the hostPort.
  test('Services to the hostPort pod keep working: a ClusterIP from a pod of another node and a NodePort from outside', async () => {
    const n0node = c.nodes[0]!;
    const n1node = c.nodes[1]!;
    await c.exec(n1node, ['iptables', '-t', 'nat', '-A', 'PREROUTING', '-d', '10.96.0.10', '-p', 'tcp', '--dport', '80', '-j', 'DNAT', '--to-destination', `${web.ip}:${RESPONDER_PORT}`]);
    await c.exec(n0node, ['iptables', '-t', 'nat', '-A', 'PREROUTING', '-d', n0node.ip, '-p', 'tcp', '--dport', '30080', '-j', 'DNAT', '--to-destination', `${web.ip}:${RESPONDER_PORT}`]);
    try {
      const [svc] = await probeMany(remote.path, [{ ip: '10.96.0.10', port: 80, proto: 'tcp' }]);
      assert.equal(peerOf(svc!, 'ClusterIP'), remote.ip);
      assert.ok(svc!.ok && svc!.local === web.ip);
      const [np, hp] = await probeMany(c.internet.path, [
        { ip: n0node.ip, port: 30080, proto: 'tcp' },
        { ip: n0node.ip, port: HTTP, proto: 'tcp' },
      ]);
      assert.equal(peerOf(np!, 'NodePort'), c.internet.ip);
      assert.equal(peerOf(hp!, 'hostPort beside it'), c.internet.ip);
    } finally {
      for (const n of [n0node, n1node]) await c.exec(n, ['nft', 'delete', 'table', 'ip', 'nat'], { allowFail: true });
    }
  });

  test('after DEL the hostPorts answer no more (the host stack refuses), while another pod\'s hostPort still does', async () => {
    await c.removePod(web);
    assert.deepEqual(
      listHostPorts(c.nodes[0]!.pinDir).map((e) => e.hostPort),
      [OTHER],
      'exactly its own mappings went',
    );
    for (const ns of [c.internet, remote, local, c.nodes[0]!]) {
      const [tcp, udp, control] = await probeMany(
        ns.path,
        [
          { ip: n0().ip, port: HTTP, proto: 'tcp' },
          { ip: n0().ip, port: DNS, proto: 'udp' },
          { ip: n0().ip, port: OTHER, proto: 'tcp' },
        ],
        1500,
      );
      assert.ok(!tcp!.ok, `${ns.name}: TCP ${HTTP} answered after DEL: ${JSON.stringify(tcp)}`);
      assert.ok(!udp!.ok, `${ns.name}: UDP ${DNS} answered after DEL`);
      assert.ok(control!.ok && control!.local === web2.ip, `${ns.name}: control, the probe reaches the node's other hostPort`);
    }
    const drops = dp.readDropStats(c.nodes[0]!.pinDir).filter((d) => /HOSTPORT/.test(d.reason));
    assert.deepEqual(drops.map((d) => [d.reason, d.packets]).filter(([, n]) => n !== 0n), [], 'nothing dropped: the mappings went before the pod');
  });
});
