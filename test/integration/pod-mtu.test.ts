// Pods have the uplink's MTU; only what crosses the VXLAN tunnel has the
// overlay's (50 bytes less), through the routes the plugin gives the pod
// (src/cni/overlay-routes.ts). Each size is proven at its edge: the largest
// DF packet passes, one byte more is refused by the sender's own stack (no
// packet lost in the tunnel), and TCP settles on the MSS each path allows.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  createCluster,
  iperf,
  loadDataplane,
  ping,
  RESPONDER_PORT,
  startIperfServer,
  startResponder,
  tcpWhoami,
  uniquePrefix,
  type Cluster,
  type DataplaneApi,
  type SimNetns,
  type SimPod,
} from '../../src/sim/index.js';
import { run } from '../../src/common/exec.js';

const SERVICE_CIDR = '10.96.0.0/12';
const HOST_PORT = 18431;
const UPLINK_MTU = 1500;
const OVERLAY_MTU = 1450;
/** ICMP echo payload that fills an MTU exactly (IP 20 + ICMP 8). */
const pingPayload = (mtu: number): number => mtu - 28;

/** The send MSS a TCP client settles on (TCP_MAXSEG after the handshake: timestamps included, so MTU − 52). */
async function clientMss(ns: SimNetns, ip: string, port = RESPONDER_PORT): Promise<number> {
  const py = [
    'import socket, sys',
    's = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)',
    'print(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG))',
  ].join('\n');
  const r = await run(['python3', '-c', py, ip, String(port)], { netns: ns.path });
  return Number(r.stdout.trim());
}

/**
 * DF UDP datagrams that fill `mtu` exactly (IP 20 + UDP 8), `count` of them on
 * one socket 300 ms apart (a later one after any ICMP error had time to
 * arrive): for each, 'sent', or the errno the sender's own stack refused it
 * with (EMSGSIZE: the route's MTU, or one an ICMP error taught it).
 */
async function dfDatagrams(ns: SimNetns, ip: string, mtu: number, count: number): Promise<('sent' | number)[]> {
  const py = [
    'import socket, sys, time',
    's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
    's.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER = IP_PMTUDISC_DO',
    's.connect((sys.argv[1], 9))',
    'for i in range(int(sys.argv[3])):',
    '    if i: time.sleep(0.3)',
    '    try:',
    '        s.send(b"x" * (int(sys.argv[2]) - 28)); print("sent")',
    '    except OSError as e:',
    '        print(e.errno)',
  ].join('\n');
  const out = (await run(['python3', '-c', py, ip, String(mtu), String(count)], { netns: ns.path })).stdout.trim().split('\n');
  return out.map((l) => (l === 'sent' ? 'sent' : Number(l)));
}
const dfDatagram = async (ns: SimNetns, ip: string, mtu: number): Promise<'sent' | number> => (await dfDatagrams(ns, ip, mtu, 1))[0]!;
const dfTwice = (ns: SimNetns, ip: string, mtu: number): Promise<('sent' | number)[]> => dfDatagrams(ns, ip, mtu, 2);
const EMSGSIZE = 90;

/** Sizes of the datagrams a UDP socket on `port` receives until `quietMs` pass without one. */
async function udpSizes(ns: SimNetns, port: number, quietMs = 1500): Promise<number[]> {
  const py = [
    'import socket, sys',
    's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
    's.bind(("0.0.0.0", int(sys.argv[1])))',
    's.settimeout(float(sys.argv[2]))',
    'try:',
    '    while True: print(len(s.recv(65535)), flush=True)',
    'except socket.timeout:',
    '    pass',
  ].join('\n');
  const r = await run(['python3', '-c', py, String(port), String(quietMs / 1000)], { netns: ns.path });
  return r.stdout.trim().split('\n').filter(Boolean).map(Number);
}

interface RouteJson {
  dst: string;
  gateway?: string;
  metrics?: { mtu?: number }[];
}
async function routes(ns: SimNetns): Promise<RouteJson[]> {
  return JSON.parse((await run(['ip', '-j', '-d', 'route', 'show'], { netns: ns.path })).stdout) as RouteJson[];
}

describe("pod MTU: the uplink's on the interface, the overlay's only through the tunnel", { timeout: 240_000 }, () => {
  let c: Cluster;
  let dp: DataplaneApi;
  let a: SimPod; // node 0, with a hostPort
  let b: SimPod; // node 0
  let r: SimPod; // node 1

  const fragNeeded = (): bigint =>
    dp.readDropStats(c.nodes[0]!.pinDir).filter((s) => s.reason.endsWith('DROP_FRAG_NEEDED')).reduce((n, s) => n + s.packets, 0n);

  before(async () => {
    dp = await loadDataplane();
    c = await createCluster({ prefix: uniquePrefix('bvm'), nodes: 2, dataplane: 'bvcni' });
    // With a Service CIDR, as bvcnid configures it (--service-cidr): ClusterIPs' backends may be on any node.
    for (const n of c.nodes) (await dp.ensureNodeDataplane({ ...n.dataplaneConfig, serviceCidr: SERVICE_CIDR })).close();
    a = await c.addPod(c.nodes[0]!, 'a', { via: 'plugin', portMappings: [{ hostPort: HOST_PORT, containerPort: RESPONDER_PORT, protocol: 'tcp' }] });
    b = await c.addPod(c.nodes[0]!, 'b', { via: 'plugin' });
    r = await c.addPod(c.nodes[1]!, 'r', { via: 'plugin' });
    await Promise.all([a, b, r, c.internet].map(async (ns) => c.track(await startResponder(ns.path))));
  });
  after(() => c?.destroy());

  test("the interface has the uplink's MTU; the cluster CIDR and the Service CIDR go through the gateway at the overlay's", async () => {
    for (const p of [a, b, r]) {
      const link = JSON.parse((await run(['ip', '-j', 'link', 'show', 'eth0'], { netns: p.path })).stdout) as { mtu: number }[];
      assert.equal(link[0]!.mtu, UPLINK_MTU, p.name);
      const rs = await routes(p);
      const viaGw = (dst: string) => rs.find((x) => x.dst === dst);
      assert.deepEqual(
        ['10.244.0.0/16', SERVICE_CIDR].map((d) => [viaGw(d)?.gateway, viaGw(d)?.metrics?.[0]?.mtu]),
        [
          [p.node.gateway, OVERLAY_MTU],
          [p.node.gateway, OVERLAY_MTU],
        ],
        p.name,
      );
      assert.equal(viaGw('default')?.metrics, undefined, `${p.name}: the default route keeps the interface's MTU`);
    }
  });

  test("DF pings at each path's edge: another node's pod at the overlay MTU, this node's pod and the internet at the uplink's; one byte more is refused by the sender", async () => {
    const cases: [string, string, number][] = [
      ['another node', r.ip, OVERLAY_MTU],
      ['same node', b.ip, UPLINK_MTU],
      ['internet', c.internet.ip, UPLINK_MTU],
    ];
    for (const [what, ip, mtu] of cases) {
      assert.ok((await ping(a.path, ip, { size: pingPayload(mtu), df: true })).ok, `${what}: a full ${mtu}-byte packet passes`);
      const over = await ping(a.path, ip, { size: pingPayload(mtu) + 1, df: true, count: 1, timeoutS: 1 });
      assert.equal(over.ok, false, `${what}: ${mtu + 1} bytes must not pass`);
      assert.equal(await dfDatagram(a, ip, mtu), 'sent', `${what}: ${mtu} bytes leave the sender`);
      assert.equal(await dfDatagram(a, ip, mtu + 1), EMSGSIZE, `${what}: ${mtu + 1} bytes are refused by the sender's stack, not lost on the way`);
    }
    // And the reverse direction across the tunnel.
    assert.ok((await ping(r.path, a.ip, { size: pingPayload(OVERLAY_MTU), df: true })).ok);
  });

  test('TCP settles on the MSS each path allows: 1398 across the tunnel (both ends), 1448 within the node, to the internet and from an outside client through a hostPort', async () => {
    assert.equal(await clientMss(a, r.ip), OVERLAY_MTU - 52, 'pod → another node');
    assert.equal(await clientMss(r, a.ip), OVERLAY_MTU - 52, 'another node → pod');
    assert.equal(await clientMss(a, b.ip), UPLINK_MTU - 52, 'pod → same node');
    assert.equal(await clientMss(a, c.internet.ip), UPLINK_MTU - 52, 'pod → internet');
    assert.equal(await clientMss(c.internet, c.nodes[0]!.ip, HOST_PORT), UPLINK_MTU - 52, 'outside client → hostPort');
    // The hostPort answers for the pod (a control: the MSS above is the pod's connection, not a refusal's).
    assert.equal((await tcpWhoami(c.internet.path, c.nodes[0]!.ip, HOST_PORT)).peer, c.internet.ip);
  });

  test('bulk TCP (full-size GSO segments) moves across the tunnel both ways and to the internet', async () => {
    await startIperfServer(c, r, 5301);
    await startIperfServer(c, a, 5301);
    await startIperfServer(c, c.internet, 5301);
    for (const [from, to] of [
      [a, r.ip],
      [r, a.ip],
      [a, c.internet.ip],
    ] as const) {
      // A stream whose segments do not fit stalls in retransmissions: a second moves next to nothing.
      const res = await iperf(from.path, to, { seconds: 1, port: 5301 });
      assert.ok(res.bytes >= 16 * 1024 * 1024, `${from.name} → ${to}: ${res.bytes} bytes in 1 s`);
    }
  });

  test("what the routes miss (another node's IP, tunnelled too) is sized by the dataplane: DF is answered with \"fragmentation needed\" and the pod's stack learns the overlay's MTU; without DF it arrives whole", async () => {
    const remoteNode = c.nodes[1]!;
    // Control: not tunnelled, the internet takes the uplink's MTU twice over.
    const control = await dfTwice(a, c.internet.ip, UPLINK_MTU);
    assert.ok(control[0] === 'sent' && !control.includes(EMSGSIZE), `to the internet: ${control.join(', ')} (a port unreachable may follow: port 9 is closed there)`);
    assert.deepEqual(await dfTwice(a, remoteNode.ip, UPLINK_MTU), ['sent', EMSGSIZE], 'the first leaves, its answer makes the stack refuse the second');
    const cached = (await run(['ip', 'route', 'get', remoteNode.ip], { netns: a.path })).stdout;
    assert.match(cached, new RegExp(`mtu ${OVERLAY_MTU}\\b`), `the pod's route cache learned the overlay MTU: ${cached}`);

    // Without DF (b has learned nothing): the VXLAN device carries it, its outer packet fragmented on the underlay.
    const port = 9331;
    const sizes = udpSizes(remoteNode, port);
    await new Promise((res) => setTimeout(res, 400));
    const py = 'import socket, sys\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.setsockopt(socket.IPPROTO_IP, 10, 0)\ns.sendto(b"y" * 1472, (sys.argv[1], int(sys.argv[2])))';
    await run(['python3', '-c', py, remoteNode.ip, String(port)], { netns: b.path });
    assert.deepEqual(await sizes, [1472], 'the full datagram arrived');
  });

  test('hostile: a pod that deletes its overlay route gets no oversized packet into the tunnel: answered (DROP_FRAG_NEEDED), it learns the MTU as from a router', async () => {
    const big = { size: pingPayload(UPLINK_MTU), df: true, count: 1, timeoutS: 1 };
    // Control: the probe's target answers at the overlay MTU.
    assert.ok((await ping(a.path, r.ip, { size: pingPayload(OVERLAY_MTU), df: true })).ok);
    await run(['ip', 'route', 'del', '10.244.0.0/16'], { netns: a.path });
    try {
      const before = fragNeeded();
      assert.deepEqual(await dfTwice(a, r.ip, UPLINK_MTU), ['sent', EMSGSIZE], 'without the route the pod sends the full-size packet once');
      assert.equal((await ping(a.path, r.ip, big)).ok, false, 'a 1500-byte packet does not cross the tunnel');
      assert.ok(fragNeeded() >= before + 1n, `bpf_pod counted it as DROP_FRAG_NEEDED (${before} → ${fragNeeded()})`);
    } finally {
      await run(['ip', 'route', 'add', '10.244.0.0/16', 'via', a.node.gateway, 'mtu', String(OVERLAY_MTU)], { netns: a.path });
    }
    assert.equal(await dfDatagram(a, r.ip, UPLINK_MTU), EMSGSIZE);
  });

  test('both ends without their overlay routes: a TCP stream (full-size TSO segments, MSS 1448 both ways) learns the MTU from the answer and moves', async () => {
    await startIperfServer(c, r, 5302);
    for (const p of [a, r]) await run(['ip', 'route', 'del', '10.244.0.0/16'], { netns: p.path });
    try {
      for (const p of [a, r]) await run(['ip', 'route', 'flush', 'cache'], { netns: p.path });
      const before = fragNeeded();
      const res = await iperf(a.path, r.ip, { seconds: 1, port: 5302 });
      assert.ok(res.bytes >= 16 * 1024 * 1024, `${res.bytes} bytes in 1 s`);
      assert.ok(fragNeeded() > before, 'the first segments were answered, not sent');
    } finally {
      for (const p of [a, r]) await run(['ip', 'route', 'add', '10.244.0.0/16', 'via', p.node.gateway, 'mtu', String(OVERLAY_MTU)], { netns: p.path });
    }
  });
});
