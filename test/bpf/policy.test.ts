// NetworkPolicy in the programs (bpf/lib/policy.h) through BPF_PROG_TEST_RUN:
// every verdict and drop reason, and a pod trying to get around policy — each
// attack beside its control, the same probe allowed, reaching its target.
// Tables are written through src/dataplane/policy.ts (applyPolicyDiff), the
// API bvcnid uses. One namespace and pin directory of our own.
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { BpfObject, testRun, withNetns, type BpfProgram } from '../../loader/index.js';
import { run } from '../../src/common/exec.js';
import { createNetns, deleteNetnsSync, netnsPath, uniquePrefix } from '../../src/sim/netns.js';
import { ConfigFlags, EndpointFlags, PodCtFlags, Programs, TunnelFlags, openDataplaneMaps, readStats, type ConfigValue, type DataplaneMaps } from '../../src/dataplane/index.js';
import { applyPolicyDiff, clearPolicyState, listPodCt, openPolicyMaps, setEndpointPolicyState, type PolicyEntryLike, type PolicyMaps } from '../../src/dataplane/policy.js';
import { openHostportMap } from '../../src/dataplane/hostport.js';
import { programSetDir } from '../../src/dataplane/features.js';
import { portRangeToPrefixes } from '../../src/policy/compile.js';
import { ipv4ToInt } from '../../loader/codec.js';
import { PROTO, arpFrame, ipPacket, macOf, packet, parse, vxlanPacket, type PacketSpec, TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT } from './packet.js';

const SCTP = 132;
const TCP_SYN = 0x02;
const TCP_ACK = 0x10;
const TCP_RST = 0x04;
const TCP_FIN = 0x01;

const P = uniquePrefix('bvpol');
const NS = `${P}-t`;
const PIN = `/sys/fs/bpf/${P}`;
const NODE_IP = '192.0.2.11';
const PEER_NODE = '192.0.2.12';
const GW_MAC = '0a:58:0a:f4:01:01';
const POD1 = '10.244.1.2'; // identity 300 ("role=client")
const POD2 = '10.244.1.3'; // identity 301: the server most tests isolate
const POD3 = '10.244.1.4'; // identity 303: a denied pod on the same node
const REMOTE_OK = '10.244.2.2'; // identity 300, another node
const REMOTE_BAD = '10.244.2.9'; // identity 303, another node
const INET = '198.51.100.1'; // 198.51.100.0/24: identity 400 (an ipBlock's class)
const ID = { client: 300, server: 301, denied: 303, inet: 400 } as const;

const objects: BpfObject[] = [];
const progs: Partial<Record<keyof typeof Programs, BpfProgram>> = {};
let maps: DataplaneMaps;
let pol: PolicyMaps;

function exec(slot: keyof typeof Programs, data: Buffer): { retval: number; out: Buffer } {
  const r = withNetns(netnsPath(NS), () => testRun(progs[slot]!, { data }));
  return { retval: r.retval, out: r.dataOut };
}
const counter = (reason: string): bigint =>
  readStats(PIN)
    .filter((r) => r.reason === reason)
    .reduce((a, r) => a + r.packets, 0n);

/** A frame a local pod sends (bpf_pod). */
const fromPod = (spec: PacketSpec) => exec('pod', packet(spec));
/** A frame from a pod of the other node, decapsulated at the uplink (bpf_host). */
const fromRemote = (spec: PacketSpec) => exec('uplinkIngress', vxlanPacket({ src: PEER_NODE, dst: NODE_IP, vni: 1 }, packet(spec)));
/** The same through the VXLAN device (bpf_overlay). */
const fromOverlay = (spec: PacketSpec) => exec('overlayIngress', packet(spec));
/** What the host stack hands to a local pod (bpf_to_pod: its host veth's egress, its netkit primary). */
const fromHost = (spec: PacketSpec) => exec('toPod', packet({ ...spec, srcMac: GW_MAC, dstMac: macOf(spec.dst) }));
/** What the host stack routes to a remote pod (bpf_overlay's egress, the VXLAN device's transmit). */
const toOverlay = (spec: PacketSpec) => exec('overlayEgress', packet(spec));
const CLUSTER_IP = '10.96.0.10';
const GATEWAY = '10.244.1.1';

const tcp = (src: string, dst: string, sport: number, dport: number, tcpFlags = TCP_SYN): PacketSpec => ({ src, dst, proto: PROTO.TCP, sport, dport, tcpFlags });
const udp = (src: string, dst: string, sport: number, dport: number): PacketSpec => ({ src, dst, proto: PROTO.UDP, sport, dport });
const e = (peer: number, proto: number, port = 0, portPrefix = port ? 16 : 0): PolicyEntryLike => ({ peer, proto, port, portPrefix });
const range = (peer: number, proto: number, from: number, to: number): PolicyEntryLike[] =>
  portRangeToPrefixes(from, to).map((b) => ({ peer, proto, port: b.port, portPrefix: b.prefix }));
const NONE = { isolated: false, add: [], remove: [] };

/** Isolates one endpoint with these allow entries (through applyPolicyDiff, as bvcnid does). */
function isolate(ip: string, t: { ingress?: PolicyEntryLike[]; egress?: PolicyEntryLike[] }): void {
  applyPolicyDiff(pol, {
    ipcacheUpsert: [],
    ipcacheDelete: [],
    endpoints: new Map([
      [
        ip,
        {
          ingress: t.ingress ? { isolated: true, add: t.ingress, remove: [] } : NONE,
          egress: t.egress ? { isolated: true, add: t.egress, remove: [] } : NONE,
        },
      ],
    ]),
  });
}

/** An ICMP error from `src` to `dst` quoting `quoted` (its IP header and 8 bytes). */
function icmpError(src: string, dst: string, quoted: PacketSpec, type = 3, code = 3): PacketSpec {
  return { src, dst, proto: PROTO.ICMP, icmpType: type, icmpCode: code, payload: ipPacket(quoted).subarray(0, 28) };
}

function config(): ConfigValue {
  return {
    node_ip: NODE_IP,
    pod_cidr: '10.244.1.0',
    pod_prefix: 24,
    cluster_cidr: '10.244.0.0',
    cluster_prefix: 16,
    vxlan_ifindex: 1,
    uplink_ifindex: 2,
    bridge_ifindex: 2,
    vni: 1,
    nat_port_min: 61000,
    nat_port_max: 61010,
    bridge_mac: GW_MAC,
    uplink_mac: '02:00:00:00:00:11',
    mtu: 1450,
    flags: ConfigFlags.ready | ConfigFlags.masquerade,
    service_cidr: '10.96.0.0',
    service_prefix: 12,
    vxlan_port: 8472,
  };
}

describe('NetworkPolicy in the programs under BPF_PROG_TEST_RUN', () => {
  before(async () => {
    const ns = await createNetns(NS);
    await run(['ip', 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'up1'], { netns: ns });
    await run(['ip', 'addr', 'add', `${NODE_IP}/24`, 'dev', 'up0'], { netns: ns });
    await run(['ip', 'link', 'set', 'up0', 'up'], { netns: ns });
    await run(['ip', 'link', 'set', 'up1', 'up'], { netns: ns });
    await run(['ip', 'neigh', 'replace', '192.0.2.1', 'lladdr', '02:00:00:00:00:01', 'dev', 'up0', 'nud', 'permanent'], { netns: ns });
    await run(['ip', 'route', 'add', 'default', 'via', '192.0.2.1', 'dev', 'up0'], { netns: ns });
    await run(['sysctl', '-q', '-w', 'net.ipv4.conf.all.forwarding=1'], { netns: ns });
    const uplink = JSON.parse((await run(['ip', '-j', 'link', 'show', 'up0'], { netns: ns })).stdout)[0].ifindex as number;
    const dir = programSetDir('conntrack');
    for (const file of ['bpf_pod.o', 'bpf_overlay.o', 'bpf_host.o', 'bpf_to_pod.o']) {
      const obj = BpfObject.open(join(dir, file), { pinDir: PIN });
      objects.push(obj);
      obj.load();
      for (const [slot, p] of Object.entries(Programs)) if (p.object === file) progs[slot as keyof typeof Programs] = obj.program(p.program);
    }
    maps = openDataplaneMaps(PIN);
    pol = openPolicyMaps(PIN);
    maps.config.update(0, { ...config(), uplink_ifindex: uplink, bridge_ifindex: uplink });
    // The test run's skb comes in on the namespace's loopback (ifindex 1): every local pod's "veth".
    for (const ip of [POD1, POD2, POD3]) maps.endpoints.update({ ip }, { ifindex: 1, flags: EndpointFlags.pod, pod_mac: macOf(ip), gw_mac: GW_MAC, identity: 0 });
    maps.tunnel.update({ prefixlen: 24, addr: '10.244.2.0' }, { node_ip: PEER_NODE, flags: 0 });
    maps.tunnel.update({ prefixlen: 32, addr: PEER_NODE }, { node_ip: PEER_NODE, flags: TunnelFlags.nodeIp });
  });

  const ipcache = (): void => {
    const set = (cidr: string, prefix: number, identity: number) => ({ cidr: { addr: ipv4ToInt(cidr), prefix }, identity });
    applyPolicyDiff(pol, {
      ipcacheUpsert: [
        set(POD1, 32, ID.client),
        set(POD2, 32, ID.server),
        set(POD3, 32, ID.denied),
        set(REMOTE_OK, 32, ID.client),
        set(REMOTE_BAD, 32, ID.denied),
        set('198.51.100.0', 24, ID.inet),
        set(NODE_IP, 32, 1),
      ],
      ipcacheDelete: [],
      endpoints: new Map(),
    });
  };

  afterEach(() => {
    clearPolicyState(pol);
    ipcache();
  });

  after(() => {
    pol?.close();
    maps?.close();
    for (const p of Object.values(progs)) p?.close();
    for (const o of objects) o.close();
    rmSync(PIN, { recursive: true, force: true });
    deleteNetnsSync(NS);
  });

  test('an endpoint without policy flags: everything passes and nothing is tracked', () => {
    ipcache();
    assert.equal(fromPod(tcp(POD1, POD2, 40000, 81)).retval, TC_ACT_REDIRECT);
    assert.equal(fromRemote(tcp(REMOTE_BAD, POD2, 40000, 81)).retval, TC_ACT_REDIRECT);
    assert.equal(listPodCt(pol).length, 0, 'no conntrack entry for endpoints without policy');
  });

  test('ingress isolated: an allowed peer passes and is tracked, its reply passes both ways; a denied pod on the same node is DROP_POLICY_INGRESS', () => {
    isolate(POD2, { ingress: [e(ID.client, PROTO.TCP, 80)] });
    const drops = counter('DROP_POLICY_INGRESS');
    // Control: the allowed client on the allowed port reaches the server.
    const syn = fromPod(tcp(POD1, POD2, 40001, 80));
    assert.equal(syn.retval, TC_ACT_REDIRECT);
    assert.equal(parse(syn.out).dst, POD2);
    const ct = listPodCt(pol);
    assert.deepEqual(
      ct.map((c) => [c.saddr, c.daddr, c.sport, c.dport, c.proto, c.dir]),
      [[POD1, POD2, 40001, 80, PROTO.TCP, 0]],
    );
    // The server's answer: its egress is open, but it is tracked as the answer of what it accepted.
    assert.equal(fromPod(tcp(POD2, POD1, 80, 40001, TCP_SYN | TCP_ACK)).retval, TC_ACT_REDIRECT);
    assert.ok(listPodCt(pol)[0]!.flags & PodCtFlags.REPLY, 'the flow is marked answered');
    assert.equal(fromPod(tcp(POD1, POD2, 40001, 80, TCP_ACK)).retval, TC_ACT_REDIRECT);
    // The attack: the same client on another port, and a denied pod on the allowed port.
    assert.equal(fromPod(tcp(POD1, POD2, 40002, 81)).retval, TC_ACT_SHOT);
    assert.equal(fromPod(tcp(POD3, POD2, 40003, 80)).retval, TC_ACT_SHOT);
    assert.equal(counter('DROP_POLICY_INGRESS'), drops + 2n);
  });

  test('a denied pod on another node is dropped at the uplink and at the VXLAN device; an allowed one passes both', () => {
    isolate(POD2, { ingress: [e(ID.client, PROTO.TCP, 80)] });
    const drops = counter('DROP_POLICY_INGRESS');
    assert.equal(fromRemote(tcp(REMOTE_OK, POD2, 41000, 80)).retval, TC_ACT_REDIRECT, 'control: uplink');
    assert.equal(fromOverlay(tcp(REMOTE_OK, POD2, 41001, 80)).retval, TC_ACT_REDIRECT, 'control: VXLAN device');
    assert.equal(fromRemote(tcp(REMOTE_BAD, POD2, 41002, 80)).retval, TC_ACT_SHOT);
    assert.equal(fromOverlay(tcp(REMOTE_BAD, POD2, 41003, 80)).retval, TC_ACT_SHOT);
    // An address no ipcache entry holds is the world: not the allowed identity either.
    assert.equal(fromRemote(tcp('10.244.2.77', POD2, 41004, 80)).retval, TC_ACT_SHOT);
    assert.equal(counter('DROP_POLICY_INGRESS'), drops + 3n);
  });

  test('reply-looking packets from a denied peer without a tracked flow (TCP ACK, RST, SYN-ACK, FIN) are decided as new flows and dropped', () => {
    isolate(POD2, { ingress: [e(ID.client, PROTO.TCP, 80)] });
    const drops = counter('DROP_POLICY_INGRESS');
    for (const flags of [TCP_ACK, TCP_RST, TCP_SYN | TCP_ACK, TCP_FIN | TCP_ACK, TCP_RST | TCP_ACK])
      assert.equal(fromRemote(tcp(REMOTE_BAD, POD2, 80, 42000, flags)).retval, TC_ACT_SHOT, `flags ${flags}`);
    // As answers to a port the server might have used as a client: the same.
    assert.equal(fromPod(tcp(POD3, POD2, 80, 42001, TCP_SYN | TCP_ACK)).retval, TC_ACT_SHOT);
    assert.equal(counter('DROP_POLICY_INGRESS'), drops + 6n);
    // Control: the same ACK from the allowed peer to the allowed port gets through.
    assert.equal(fromRemote(tcp(REMOTE_OK, POD2, 42002, 80, TCP_ACK)).retval, TC_ACT_REDIRECT);
    // And a real answer to the server's own connection passes from the denied peer.
    assert.equal(fromPod(tcp(POD2, REMOTE_BAD, 42003, 443)).retval, TC_ACT_REDIRECT);
    assert.equal(fromRemote(tcp(REMOTE_BAD, POD2, 443, 42003, TCP_SYN | TCP_ACK)).retval, TC_ACT_REDIRECT);
  });

  test('ICMP errors: quoting an untracked flow from a denied peer are dropped; quoting the pod\'s tracked flow they pass (unreachable, frag needed, time exceeded)', () => {
    isolate(POD2, { ingress: [e(ID.client, PROTO.TCP, 80)] });
    const quoted = udp(POD2, REMOTE_BAD, 5000, 53);
    const drops = counter('DROP_POLICY_INGRESS');
    for (const [type, code] of [
      [3, 3],
      [3, 4],
      [11, 0],
    ] as const)
      assert.equal(fromRemote(icmpError(REMOTE_BAD, POD2, quoted, type, code)).retval, TC_ACT_SHOT, `untracked ${type}/${code}`);
    assert.equal(counter('DROP_POLICY_INGRESS'), drops + 3n);
    // The pod's flow (its egress is open: tracked, for exactly these).
    assert.equal(fromPod(quoted).retval, TC_ACT_REDIRECT);
    for (const [type, code] of [
      [3, 3],
      [3, 4],
      [11, 0],
    ] as const)
      assert.equal(fromRemote(icmpError(REMOTE_BAD, POD2, quoted, type, code)).retval, TC_ACT_REDIRECT, `tracked ${type}/${code}`);
    // From a router on the way (not the peer itself), for the same flow: passes too.
    assert.equal(fromRemote(icmpError('10.244.2.1', POD2, quoted, 11, 0)).retval, TC_ACT_REDIRECT);
    // Quoting another pod's tracked flow, sent to this one: no.
    assert.equal(fromPod(udp(POD1, REMOTE_BAD, 5001, 53)).retval, TC_ACT_REDIRECT);
    assert.equal(fromRemote(icmpError(REMOTE_BAD, POD2, udp(POD1, REMOTE_BAD, 5001, 53))).retval, TC_ACT_SHOT);
    // An echo reply for a ping the pod never sent is a new ICMP packet: dropped; its own ping's reply passes.
    assert.equal(fromRemote({ src: REMOTE_BAD, dst: POD2, proto: PROTO.ICMP, icmpType: 0, icmpId: 77 }).retval, TC_ACT_SHOT);
    assert.equal(fromPod({ src: POD2, dst: REMOTE_BAD, proto: PROTO.ICMP, icmpType: 8, icmpId: 77 }).retval, TC_ACT_REDIRECT);
    assert.equal(fromRemote({ src: REMOTE_BAD, dst: POD2, proto: PROTO.ICMP, icmpType: 0, icmpId: 77 }).retval, TC_ACT_REDIRECT);
  });

  test('ports on range edges: 8080-8095 allows 8080 and 8095, not 8079 or 8096 (TCP, UDP, SCTP); another protocol on an allowed port is dropped', () => {
    isolate(POD2, { ingress: [...range(ID.client, PROTO.TCP, 8080, 8095), ...range(ID.client, PROTO.UDP, 8080, 8095), ...range(ID.client, SCTP, 8080, 8095)] });
    let sport = 43000;
    for (const proto of [PROTO.TCP, PROTO.UDP, SCTP]) {
      for (const [port, ok] of [
        [8079, false],
        [8080, true],
        [8087, true],
        [8095, true],
        [8096, false],
        [0, false],
        [65535, false],
      ] as const) {
        const spec: PacketSpec =
          proto === SCTP
            ? { src: REMOTE_OK, dst: POD2, proto, rawL4: Buffer.from([sport >> 8, sport & 0xff, port >> 8, port & 0xff, 0, 0, 0, 0, 0, 0, 0, 0]) }
            : { src: REMOTE_OK, dst: POD2, proto, sport, dport: port, tcpFlags: TCP_SYN };
        sport++;
        if (proto === SCTP) {
          // SCTP goes up the host stack (conntrack.h: the kfunc cannot say whether a Service
          // translated it), to be decided where the host hands it to the pod (bpf_to_pod).
          assert.equal(fromRemote(spec).retval, TC_ACT_OK, `proto ${proto} port ${port}: up the stack`);
          assert.equal(fromHost(spec).retval, ok ? TC_ACT_OK : TC_ACT_SHOT, `proto ${proto} port ${port}`);
        } else assert.equal(fromRemote(spec).retval, ok ? TC_ACT_REDIRECT : TC_ACT_SHOT, `proto ${proto} port ${port}`);
      }
    }
    // ICMP matches no port rule.
    assert.equal(fromRemote({ src: REMOTE_OK, dst: POD2, proto: PROTO.ICMP, icmpType: 8, icmpId: 5 }).retval, TC_ACT_SHOT);
  });

  test('fragments: a non-first fragment never reaches a port-scoped rule (DROP_POLICY_FRAGMENT); the first is decided by its ports; an every-port rule lets the rest through', () => {
    // Fragments for a pod go up the host stack to be reassembled (conntrack.h), through the
    // VXLAN device (bpf_overlay) from other nodes: TC_ACT_OK is on their way, each fragment checked.
    const up = TC_ACT_OK;
    isolate(POD2, { ingress: [e(ID.client, PROTO.UDP, 53)] });
    const frag = counter('DROP_POLICY_FRAGMENT');
    const first = { ...udp(REMOTE_OK, POD2, 5300, 53), frag: { offset: 0, more: true } };
    assert.equal(fromOverlay(first).retval, up, 'control: the first fragment, on the allowed port');
    assert.equal(fromOverlay({ ...udp(REMOTE_OK, POD2, 5300, 54), frag: { offset: 0, more: true } }).retval, TC_ACT_SHOT, 'a first fragment for another port');
    assert.equal(fromPod({ ...udp(POD3, POD2, 5300, 53), frag: { offset: 0, more: true } }).retval, TC_ACT_SHOT, 'a first fragment from a denied pod of this node');
    // Bytes that would be ports in a non-first fragment (here: 53) must not count.
    const rest = { src: REMOTE_OK, dst: POD2, proto: PROTO.UDP, frag: { offset: 1480, more: false }, rawL4: Buffer.from([0x14, 0xb4, 0x00, 0x35, 0, 0, 0, 0]) };
    assert.equal(fromOverlay(rest).retval, TC_ACT_SHOT);
    assert.equal(fromPod({ ...rest, src: POD1 }).retval, TC_ACT_SHOT);
    assert.equal(counter('DROP_POLICY_FRAGMENT'), frag + 2n);
    // An every-port UDP rule for the peer: the whole datagram passes.
    isolate(POD2, { ingress: [e(ID.client, PROTO.UDP)] });
    assert.equal(fromOverlay(rest).retval, up);
    assert.equal(fromPod({ ...rest, src: POD1 }).retval, up);
    assert.equal(fromOverlay({ ...rest, src: REMOTE_BAD }).retval, TC_ACT_SHOT, 'not for another peer');
    // A direction that is not isolated is not policy's to fragment-check.
    clearPolicyState(pol);
    ipcache();
    isolate(POD2, { egress: [] });
    assert.equal(fromOverlay({ ...rest, src: REMOTE_BAD }).retval, up);
  });

  test('egress isolated: a denied destination is DROP_POLICY_EGRESS, decided before any translation; allowed flows pass with their replies (overlay and masquerade)', () => {
    isolate(POD1, { egress: [e(ID.client, PROTO.UDP, 53), e(ID.inet, PROTO.TCP, 443)] });
    const drops = counter('DROP_POLICY_EGRESS');
    assert.equal(fromPod(udp(POD1, REMOTE_BAD, 5000, 53)).retval, TC_ACT_SHOT, 'a denied pod of another node');
    assert.equal(fromPod(udp(POD1, REMOTE_OK, 5000, 54)).retval, TC_ACT_SHOT, 'another port');
    assert.equal(fromPod(udp(POD1, POD3, 5000, 53)).retval, TC_ACT_SHOT, 'a denied pod of this node');
    assert.equal(fromPod(tcp(POD1, INET, 40000, 80)).retval, TC_ACT_SHOT, 'the internet on another port (before the masquerade)');
    assert.equal(fromPod(tcp(POD1, '203.0.113.5', 40000, 443)).retval, TC_ACT_SHOT, 'an address outside the ipBlock');
    assert.equal(counter('DROP_POLICY_EGRESS'), drops + 5n);
    // Controls: each allowed, and its reply.
    assert.equal(fromPod(udp(POD1, REMOTE_OK, 5001, 53)).retval, TC_ACT_REDIRECT);
    assert.equal(fromRemote(udp(REMOTE_OK, POD1, 53, 5001)).retval, TC_ACT_REDIRECT, 'the reply, through the overlay');
    const out = fromPod(tcp(POD1, INET, 40001, 443));
    assert.equal(out.retval, TC_ACT_REDIRECT);
    const nat = parse(out.out);
    assert.equal(nat.src, NODE_IP, 'masqueraded after the policy');
    const back = exec('uplinkIngress', packet({ ...tcp(INET, NODE_IP, 443, nat.sport, TCP_SYN | TCP_ACK) }));
    assert.equal(back.retval, TC_ACT_REDIRECT, 'the reply, translated back, passes the pod');
    assert.equal(parse(back.out).dst, POD1);
    // Not isolated for ingress: the denied peer may still open a flow to it, and POD1 answer.
    assert.equal(fromRemote(udp(REMOTE_BAD, POD1, 6000, 7000)).retval, TC_ACT_REDIRECT);
    assert.equal(fromPod(udp(POD1, REMOTE_BAD, 7000, 6000)).retval, TC_ACT_REDIRECT, 'its answer crosses the isolated egress');
  });

  test('ICMP echo is allowed only by an every-protocol rule', () => {
    isolate(POD2, { ingress: [e(ID.client, PROTO.TCP)] });
    assert.equal(fromRemote({ src: REMOTE_OK, dst: POD2, proto: PROTO.ICMP, icmpType: 8, icmpId: 9 }).retval, TC_ACT_SHOT);
    isolate(POD2, { ingress: [e(ID.client, 0)] });
    assert.equal(fromRemote({ src: REMOTE_OK, dst: POD2, proto: PROTO.ICMP, icmpType: 8, icmpId: 9 }).retval, TC_ACT_REDIRECT);
    assert.equal(fromPod({ src: POD2, dst: REMOTE_OK, proto: PROTO.ICMP, icmpType: 0, icmpId: 9 }).retval, TC_ACT_REDIRECT, 'the echo reply');
  });

  test('established flows need no policy: entries removed, the tracked flow goes on; after a RST a new SYN on the same tuple is decided again', () => {
    isolate(POD2, { ingress: [e(ID.client, PROTO.TCP, 80)] });
    assert.equal(fromRemote(tcp(REMOTE_OK, POD2, 44000, 80)).retval, TC_ACT_REDIRECT);
    assert.equal(fromPod(tcp(POD2, REMOTE_OK, 80, 44000, TCP_SYN | TCP_ACK)).retval, TC_ACT_REDIRECT);
    applyPolicyDiff(pol, { ipcacheUpsert: [], ipcacheDelete: [], endpoints: new Map([[POD2, { ingress: { isolated: true, add: [], remove: [e(ID.client, PROTO.TCP, 80)] }, egress: NONE }]]) });
    assert.equal(fromRemote(tcp(REMOTE_OK, POD2, 44000, 80, TCP_ACK)).retval, TC_ACT_REDIRECT, 'established: no lookup');
    assert.equal(fromRemote(tcp(REMOTE_OK, POD2, 44001, 80)).retval, TC_ACT_SHOT, 'a new flow: the rule is gone');
    assert.equal(fromRemote(tcp(REMOTE_OK, POD2, 44000, 80, TCP_RST)).retval, TC_ACT_REDIRECT);
    assert.equal(fromRemote(tcp(REMOTE_OK, POD2, 44000, 80, TCP_SYN)).retval, TC_ACT_SHOT, 'a new connection on a reset tuple');
  });

  test('pending: DROP_POLICY_PENDING both ways, but the node reaches the pod and the pod answers its node', () => {
    assert.ok(setEndpointPolicyState(pol, POD2, { identity: 0, pending: true }));
    const drops = counter('DROP_POLICY_PENDING');
    assert.equal(fromPod(tcp(POD1, POD2, 45000, 80)).retval, TC_ACT_SHOT, 'in, from a pod');
    assert.equal(fromRemote(tcp(REMOTE_OK, POD2, 45001, 80)).retval, TC_ACT_SHOT, 'in, from another node');
    assert.equal(fromPod(tcp(POD2, REMOTE_OK, 45002, 80)).retval, TC_ACT_SHOT, 'out');
    assert.equal(counter('DROP_POLICY_PENDING'), drops + 3n);
    // Controls: between the pod and its node, both ways (the answers to the node's probes came through the bridge, unseen).
    assert.equal(fromPod(tcp(POD2, NODE_IP, 45003, 10250)).retval, TC_ACT_OK, 'out, a new connection to the node');
    assert.equal(fromPod(udp(POD2, '10.244.1.1', 53, 45007)).retval, TC_ACT_OK, 'a UDP answer to its gateway address');
    assert.equal(fromPod(tcp(POD2, NODE_IP, 8080, 45004, TCP_SYN | TCP_ACK)).retval, TC_ACT_OK);
    assert.equal(fromPod(tcp(POD2, '10.244.1.1', 8080, 45005, TCP_SYN | TCP_ACK)).retval, TC_ACT_OK, 'to its gateway address');
    assert.equal(fromPod({ src: POD2, dst: '10.244.1.1', proto: PROTO.ICMP, icmpType: 0, icmpId: 3 }).retval, TC_ACT_OK);
    // Known again: what is allowed passes.
    assert.ok(setEndpointPolicyState(pol, POD2, { identity: ID.server, pending: false }));
    assert.equal(maps.endpoints.lookup({ ip: POD2 })?.identity, ID.server);
    assert.equal(fromPod(tcp(POD1, POD2, 45006, 80)).retval, TC_ACT_REDIRECT);
    assert.equal(setEndpointPolicyState(pol, '10.244.1.99', { identity: 1, pending: true }), false, 'no such endpoint');
  });

  test('a spoofed source stays DROP_SPOOFED with policy: a denied pod cannot borrow an allowed address', () => {
    isolate(POD2, { ingress: [e(ID.client, PROTO.TCP, 80)] });
    // POD3's veth is loopback here as everyone's: the spoof check is by interface, so give POD1 another one.
    const ep1 = maps.endpoints.lookup({ ip: POD1 })!;
    maps.endpoints.update({ ip: POD1 }, { ...ep1, ifindex: 999 });
    try {
      const spoofed = counter('DROP_SPOOFED');
      assert.equal(fromPod({ ...tcp(POD1, POD2, 46000, 80), srcMac: macOf(POD3) }).retval, TC_ACT_SHOT);
      assert.equal(counter('DROP_SPOOFED'), spoofed + 1n);
    } finally {
      maps.endpoints.update({ ip: POD1 }, ep1);
    }
    assert.equal(fromPod(tcp(POD1, POD2, 46001, 80)).retval, TC_ACT_REDIRECT, 'control: from its own interface');
  });

  test("hostPort: ingress is decided after the DNAT on the client's real address", () => {
    using hp = openHostportMap(PIN);
    hp.update({ host_ip: '0.0.0.0', port: 8080, proto: PROTO.TCP }, { pod_ip: POD2, pod_port: 80, owner: 1n });
    try {
      isolate(POD2, { ingress: [e(ID.client, PROTO.TCP, 80)] });
      const drops = counter('DROP_POLICY_INGRESS');
      assert.equal(exec('uplinkIngress', packet(tcp(INET, NODE_IP, 47000, 8080))).retval, TC_ACT_SHOT, 'a client no rule allows');
      assert.equal(counter('DROP_POLICY_INGRESS'), drops + 1n);
      // The ipBlock's class (not the node's address, not the hostPort) is what the rule names.
      isolate(POD2, { ingress: [e(ID.inet, PROTO.TCP, 80)] });
      const r = exec('uplinkIngress', packet(tcp(INET, NODE_IP, 47001, 8080)));
      assert.equal(r.retval, TC_ACT_REDIRECT);
      assert.deepEqual([parse(r.out).src, parse(r.out).dst, parse(r.out).dport], [INET, POD2, 80]);
    } finally {
      hp.delete({ host_ip: '0.0.0.0', port: 8080, proto: PROTO.TCP });
    }
  });

  test("host delivery (bpf_to_pod): what the host stack hands to a pod meets its ingress policy; a denied pod is DROP_POLICY_INGRESS, an allowed one and the node pass", () => {
    isolate(POD2, { ingress: [e(ID.client, PROTO.TCP, 80)] });
    const drops = counter('DROP_POLICY_INGRESS');
    // Control: the allowed client, as kube-proxy's DNAT hands it over, reaches the server and is tracked.
    const ok = fromHost(tcp(POD1, POD2, 41001, 80));
    assert.equal(ok.retval, TC_ACT_OK);
    assert.equal(parse(ok.out).dst, POD2);
    assert.ok(listPodCt(pol).some((c) => c.saddr === POD1 && c.daddr === POD2 && c.sport === 41001 && c.dir === 0), 'tracked as an ingress flow of the server');
    // The attack: a denied pod (and the world) through the host stack, a Service's DNAT.
    assert.equal(fromHost(tcp(POD3, POD2, 41002, 80)).retval, TC_ACT_SHOT);
    assert.equal(fromHost(tcp(INET, POD2, 41003, 80)).retval, TC_ACT_SHOT);
    assert.equal(fromHost(udp(POD1, POD2, 41004, 80)).retval, TC_ACT_SHOT, 'the allowed client on a protocol no rule allows');
    assert.equal(counter('DROP_POLICY_INGRESS'), drops + 3n);
    // The node (kubelet probes) from its IP and from the bridge's address: always.
    assert.equal(fromHost(tcp(NODE_IP, POD2, 41005, 9999)).retval, TC_ACT_OK);
    assert.equal(fromHost(udp(GATEWAY, POD2, 41006, 9999)).retval, TC_ACT_OK);
    // Another address of the pod CIDR without an endpoint is no node.
    assert.equal(fromHost(tcp('10.244.1.200', POD2, 41007, 9999)).retval, TC_ACT_SHOT);
    assert.equal(counter('DROP_POLICY_INGRESS'), drops + 4n);
  });

  test('host delivery: the reply of a tracked flow passes, a new flow the other way does not; not IPv4, no endpoint, a pod without policy: untouched', () => {
    // POD1 isolated both ways, allowed to reach POD2:80 only.
    isolate(POD1, { ingress: [], egress: [e(ID.server, PROTO.TCP, 80)] });
    assert.equal(fromPod(tcp(POD1, POD2, 41010, 80)).retval, TC_ACT_REDIRECT);
    // POD2's answer, if the host stack delivered it (a fragment reassembled, say): a reply.
    assert.equal(fromHost(tcp(POD2, POD1, 80, 41010, TCP_SYN | TCP_ACK)).retval, TC_ACT_OK);
    // The attack: POD2 opening a flow of its own to POD1 the same way.
    const drops = counter('DROP_POLICY_INGRESS');
    assert.equal(fromHost(tcp(POD2, POD1, 81, 41011)).retval, TC_ACT_SHOT);
    assert.equal(counter('DROP_POLICY_INGRESS'), drops + 1n);
    // Passed untouched and uncounted: addresses that are no endpoint, ARP, a pod without policy.
    const fwd = counter('FORWARD');
    assert.equal(fromHost(tcp(INET, '10.244.1.77', 1, 2)).retval, TC_ACT_OK);
    assert.equal(exec('toPod', arpFrame({ op: 1, sip: GATEWAY, tip: POD1, srcMac: GW_MAC })).retval, TC_ACT_OK);
    assert.equal(fromHost(tcp(REMOTE_BAD, POD3, 41012, 80)).retval, TC_ACT_OK);
    assert.equal(counter('FORWARD'), fwd);
  });

  test('egress to a ClusterIP is deferred: tracked as sent, then decided on the backend after the DNAT at the backend host end (local) or the VXLAN device (remote)', () => {
    // POD1 may reach server pods (POD2) and client pods (REMOTE_OK) on 80, nothing else; its ingress is closed.
    isolate(POD1, { ingress: [], egress: [e(ID.server, PROTO.TCP, 80), e(ID.client, PROTO.TCP, 80), e(ID.server, PROTO.UDP, 53)] });
    const egress = counter('DROP_POLICY_EGRESS');
    // Control for the egress isolation itself: the world, bare, is denied at bpf_pod.
    assert.equal(fromPod(tcp(POD1, INET, 41020, 80)).retval, TC_ACT_SHOT);
    assert.equal(counter('DROP_POLICY_EGRESS'), egress + 1n);
    // To the ClusterIP: up to the host (kube-proxy), tracked as the pod sent it.
    assert.equal(fromPod(tcp(POD1, CLUSTER_IP, 41021, 80)).retval, TC_ACT_OK);
    assert.ok(listPodCt(pol).some((c) => c.saddr === POD1 && c.daddr === CLUSTER_IP && c.sport === 41021 && c.dport === 80 && c.dir === 1));
    // After the DNAT, to a local backend: allowed (POD2) passes, a denied backend (POD3) is DROP_POLICY_EGRESS.
    assert.equal(fromHost(tcp(POD1, POD2, 41021, 80)).retval, TC_ACT_OK);
    assert.equal(fromPod(tcp(POD1, CLUSTER_IP, 41022, 80)).retval, TC_ACT_OK);
    assert.equal(fromHost(tcp(POD1, POD3, 41022, 80)).retval, TC_ACT_SHOT);
    assert.equal(counter('DROP_POLICY_EGRESS'), egress + 2n);
    // To a remote backend, at the VXLAN device's egress: allowed is sent on, denied dropped.
    assert.equal(fromPod(tcp(POD1, CLUSTER_IP, 41023, 80)).retval, TC_ACT_OK);
    assert.notEqual(toOverlay(tcp(POD1, REMOTE_OK, 41023, 80)).retval, TC_ACT_SHOT);
    assert.equal(fromPod(tcp(POD1, CLUSTER_IP, 41024, 80)).retval, TC_ACT_OK);
    assert.equal(toOverlay(tcp(POD1, REMOTE_BAD, 41024, 80)).retval, TC_ACT_SHOT);
    assert.equal(counter('DROP_POLICY_EGRESS'), egress + 3n);
    // The un-DNAT'd reply (from the ClusterIP) reaches POD1 through the bridge although its ingress is closed.
    assert.equal(fromHost(tcp(CLUSTER_IP, POD1, 80, 41021, TCP_SYN | TCP_ACK)).retval, TC_ACT_OK);
    // The attack: the pre-DNAT entry lets nothing else in, not the denied backend from its own address
    // on the tracked port, nor the ClusterIP from another port.
    const ingress = counter('DROP_POLICY_INGRESS');
    assert.equal(fromHost(tcp(POD3, POD1, 80, 41022, TCP_SYN | TCP_ACK)).retval, TC_ACT_SHOT);
    assert.equal(fromPod(tcp(POD3, POD1, 80, 41022, TCP_SYN | TCP_ACK)).retval, TC_ACT_SHOT);
    assert.equal(fromHost(tcp(CLUSTER_IP, POD1, 81, 41021, TCP_SYN | TCP_ACK)).retval, TC_ACT_SHOT);
    assert.equal(counter('DROP_POLICY_INGRESS'), ingress + 3n);
    // UDP the same way: deferred, allowed on the backend, the reply from the ClusterIP passes.
    assert.equal(fromPod(udp(POD1, CLUSTER_IP, 41025, 53)).retval, TC_ACT_OK);
    assert.equal(fromHost(udp(POD1, POD2, 41025, 53)).retval, TC_ACT_OK);
    assert.equal(fromHost(udp(CLUSTER_IP, POD1, 53, 41025)).retval, TC_ACT_OK);
    assert.equal(fromPod(udp(POD1, CLUSTER_IP, 41026, 53)).retval, TC_ACT_OK);
    assert.equal(fromHost(udp(POD1, POD3, 41026, 53)).retval, TC_ACT_SHOT);
    assert.equal(counter('DROP_POLICY_EGRESS'), egress + 4n);
  });

  test("a Service flow's backend side: the backend's reply to what the bridge tracked passes its own egress isolation", () => {
    // POD2 isolated both ways: it accepts client pods on 80 and may send nothing of its own.
    isolate(POD2, { ingress: [e(ID.client, PROTO.TCP, 80)], egress: [] });
    assert.equal(fromHost(tcp(POD1, POD2, 41030, 80)).retval, TC_ACT_OK);
    // Its reply (bpf_pod; the host un-DNATs it, ct_host_translated): the answer of a tracked flow.
    assert.notEqual(fromPod(tcp(POD2, POD1, 80, 41030, TCP_SYN | TCP_ACK)).retval, TC_ACT_SHOT);
    // Control: a flow of its own to the same pod is denied.
    const drops = counter('DROP_POLICY_EGRESS');
    assert.equal(fromPod(tcp(POD2, POD1, 80, 41031)).retval, TC_ACT_SHOT);
    assert.equal(counter('DROP_POLICY_EGRESS'), drops + 1n);
  });

  test('pending: a pod whose labels are not known yet reaches no ClusterIP either (fail-closed)', () => {
    assert.ok(setEndpointPolicyState(pol, POD1, { identity: 0, pending: true }));
    const drops = counter('DROP_POLICY_PENDING');
    assert.equal(fromPod(tcp(POD1, CLUSTER_IP, 41040, 80)).retval, TC_ACT_SHOT);
    assert.equal(counter('DROP_POLICY_PENDING'), drops + 1n);
    // Control: the same pod once known and without policy reaches it.
    assert.ok(setEndpointPolicyState(pol, POD1, { identity: ID.client, pending: false }));
    assert.equal(fromPod(tcp(POD1, CLUSTER_IP, 41040, 80)).retval, TC_ACT_OK);
  });

  test('applyPolicyDiff: isolation set only with entries in, cleared before they go; a deleted endpoint loses all its entries', () => {
    isolate(POD2, { ingress: [e(ID.client, PROTO.TCP, 80), e(0, PROTO.UDP, 53)], egress: [e(ID.inet, 0)] });
    const flags = () => maps.endpoints.lookup({ ip: POD2 })!.flags;
    assert.equal(flags() & (EndpointFlags.ingress_isolated | EndpointFlags.egress_isolated), EndpointFlags.ingress_isolated | EndpointFlags.egress_isolated);
    assert.equal([...pol.policy.keys()].length, 3);
    const r = applyPolicyDiff(
      pol,
      { ipcacheUpsert: [], ipcacheDelete: [], endpoints: new Map([[POD2, { ingress: { isolated: false, add: [], remove: [e(ID.client, PROTO.TCP, 80), e(0, PROTO.UDP, 53)] }, egress: NONE }]]) },
      { endpoints: new Map([[POD2, { identity: ID.server }]]) },
    );
    assert.equal(r.entriesRemoved, 2);
    assert.equal(flags() & (EndpointFlags.ingress_isolated | EndpointFlags.egress_isolated), 0);
    assert.equal(maps.endpoints.lookup({ ip: POD2 })!.identity, ID.server);
    isolate(POD2, { ingress: [e(ID.client, PROTO.TCP, 80)] });
    assert.equal(fromPod(tcp(POD1, POD2, 48000, 80)).retval, TC_ACT_REDIRECT);
    assert.equal(listPodCt(pol).length, 1);
    applyPolicyDiff(pol, { ipcacheUpsert: [], ipcacheDelete: [], endpoints: new Map([[POD2, 'deleted' as const]]) });
    assert.equal([...pol.policy.keys()].filter((k) => k.endpoint === POD2).length, 0, 'its entries gone');
    assert.equal(listPodCt(pol).length, 0, 'its tracked flows gone (the address may be the next pod\'s)');
    assert.equal(flags() & EndpointFlags.ingress_isolated, 0);
    // An endpoint the plugin never registered is reported, not created.
    const missing = applyPolicyDiff(pol, { ipcacheUpsert: [], ipcacheDelete: [], endpoints: new Map([['10.244.1.99', { ingress: { isolated: true, add: [], remove: [] }, egress: NONE }]]) });
    assert.deepEqual(missing.missingEndpoints, ['10.244.1.99']);
    assert.equal(maps.endpoints.lookup({ ip: '10.244.1.99' }), undefined);
  });
});
