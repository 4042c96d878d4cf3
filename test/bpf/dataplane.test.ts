// In-kernel unit tests of the dataplane programs through BPF_PROG_TEST_RUN:
// crafted packets in, verdicts, rewritten packets, map and counter changes out.
// Runs inside a namespace of our own so bpf_fib_lookup sees a known table.
// Twice: the conntrack set (dist/bpf) and the no-conntrack set (dist/bpf/noct,
// -DBVCNI_NO_CT) bvcnid loads where the conntrack kfuncs do not resolve; every
// test runs on both, and the one that needs conntrack says what differs.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, rmSync, unlinkSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { BpfObject, numPossibleCpus, RingBufReader, testRun, withNetns, type BpfProgram } from '../../loader/index.js';
import { DropMonitor } from '../../src/dataplane/monitor.js';
import { run } from '../../src/common/exec.js';
import { waitFor } from '../../src/common/wait.js';
import { createNetns, deleteNetnsSync, netnsPath, uniquePrefix } from '../../src/sim/netns.js';
import {
  ConfigFlags,
  EventFlags,
  Hook,
  EndpointFlags,
  MapName,
  NatDir,
  Reason,
  NatTcpState,
  Programs,
  TunnelFlags,
  openDataplaneMaps,
  readStats,
  collectNat,
  listNat,
  monotonicNs,
  type ConfigValue,
  type DataplaneMaps,
} from '../../src/dataplane/index.js';
import { programSetDir, type ProgramSetName } from '../../src/dataplane/features.js';
import { openHostportMap } from '../../src/dataplane/hostport.js';
import { ETH_P, PROTO, arpFrame, ethFrame, macOf, packet, parse, parseIp, parseVxlan, vlanTagged, vxlanPacket, type PacketSpec, TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT } from './packet.js';


const P = uniquePrefix('bvd');
// Per program set (each describe sets them in its before()).
let NS = `${P}-t`;
let PIN = `/sys/fs/bpf/${P}`;
const NODE_IP = '192.0.2.11';
const ROUTER_MAC = '02:00:00:00:00:01';
// Frames from a pod carry macOf(its IP) by default (packet.ts).
const POD1 = { ip: '10.244.1.2', mac: macOf('10.244.1.2') };
const POD2 = { ip: '10.244.1.3', mac: macOf('10.244.1.3') };
const GW_MAC = '0a:58:0a:f4:01:01';
const INET = '198.51.100.1';
const NAT_MIN = 61000;
const NAT_MAX = 61010;

const objects: BpfObject[] = [];
const progs: Partial<Record<keyof typeof Programs, BpfProgram>> = {};
let maps: DataplaneMaps;
/** POD1's endpoint entry with these flags: the test run's skb comes in on loopback (ifindex 1), POD1's "veth". */
const setPod1 = (flags: number): void => maps.endpoints.update({ ip: POD1.ip }, { ifindex: 1, flags, pod_mac: POD1.mac, gw_mac: GW_MAC, identity: 0 });
let uplinkIndex = 0;

function prog(slot: keyof typeof Programs): BpfProgram {
  return progs[slot]!;
}

function exec(slot: keyof typeof Programs, data: Buffer): { retval: number; out: Buffer } {
  const r = withNetns(netnsPath(NS), () => testRun(prog(slot), { data }));
  return { retval: r.retval, out: r.dataOut };
}

function counter(reason: string, direction: 'ingress' | 'egress' = 'ingress'): bigint {
  return readStats(PIN).find((r) => r.reason === reason && r.direction === direction)!.packets;
}

function config(overrides: Partial<ConfigValue> = {}): ConfigValue {
  return {
    node_ip: NODE_IP,
    pod_cidr: '10.244.1.0',
    pod_prefix: 24,
    cluster_cidr: '10.244.0.0',
    cluster_prefix: 16,
    vxlan_ifindex: 1,
    uplink_ifindex: uplinkIndex,
    bridge_ifindex: uplinkIndex,
    vni: 1,
    nat_port_min: NAT_MIN,
    nat_port_max: NAT_MAX,
    bridge_mac: GW_MAC,
    uplink_mac: '02:00:00:00:00:11',
    mtu: 1450,
    flags: ConfigFlags.ready | ConfigFlags.masquerade,
    service_cidr: '10.96.0.0',
    service_prefix: 12,
    vxlan_port: 8472,
    ...overrides,
  };
}

for (const set of ['conntrack', 'no-conntrack'] as const satisfies readonly ProgramSetName[]) describe(`dataplane programs (${set} set) under BPF_PROG_TEST_RUN`, () => {
  before(async () => {
    // Nothing can be stale before the clock passes the UDP timeout (the stale-NAT test's entries
    // date from boot): a VM (make test-kernels) may get here within a minute of its boot. Waited
    // for before any flow exists, so no other test's entries age meanwhile.
    const uptimeNeeded = 61_000_000_000n - monotonicNs();
    if (uptimeNeeded > 0n) await new Promise((r) => setTimeout(r, Number(uptimeNeeded / 1_000_000n) + 1));
    NS = `${P}-${set === 'conntrack' ? 'c' : 'n'}`;
    PIN = `/sys/fs/bpf/${P}-${set === 'conntrack' ? 'c' : 'n'}`;
    objects.length = 0;
    for (const k of Object.keys(progs)) delete progs[k as keyof typeof Programs];
    const ns = await createNetns(NS);
    // An uplink with a route out and a permanent neighbour: bpf_fib_lookup succeeds deterministically.
    await run(['ip', 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'up1'], { netns: ns });
    await run(['ip', 'addr', 'add', `${NODE_IP}/24`, 'dev', 'up0'], { netns: ns });
    await run(['ip', 'link', 'set', 'up0', 'up'], { netns: ns });
    await run(['ip', 'link', 'set', 'up1', 'up'], { netns: ns });
    await run(['ip', 'neigh', 'replace', '192.0.2.1', 'lladdr', ROUTER_MAC, 'dev', 'up0', 'nud', 'permanent'], { netns: ns });
    await run(['ip', 'route', 'add', 'default', 'via', '192.0.2.1', 'dev', 'up0'], { netns: ns });
    await run(['sysctl', '-q', '-w', 'net.ipv4.conf.all.forwarding=1'], { netns: ns });
    uplinkIndex = JSON.parse((await run(['ip', '-j', 'link', 'show', 'up0'], { netns: ns })).stdout)[0].ifindex;

    const dir = programSetDir(set);
    for (const file of ['bpf_pod.o', 'bpf_overlay.o', 'bpf_host.o']) {
      const obj = BpfObject.open(join(dir, file), { pinDir: PIN });
      objects.push(obj);
      obj.load();
      for (const [slot, p] of Object.entries(Programs)) {
        if (p.object === file) progs[slot as keyof typeof Programs] = obj.program(p.program);
      }
    }
    maps = openDataplaneMaps(PIN);
    setPod1(EndpointFlags.pod);
    maps.endpoints.update({ ip: POD2.ip }, { ifindex: 1, flags: 1, pod_mac: POD2.mac, gw_mac: GW_MAC, identity: 0 });
    maps.tunnel.update({ prefixlen: 24, addr: '10.244.2.0' }, { node_ip: '192.0.2.12', flags: 0 });
    maps.tunnel.update({ prefixlen: 32, addr: '192.0.2.12' }, { node_ip: '192.0.2.12', flags: TunnelFlags.nodeIp });
  });

  after(() => {
    maps?.close();
    for (const p of Object.values(progs)) p?.close();
    for (const o of objects) o.close();
    if (existsSync(PIN)) {
      for (const f of readdirSync(PIN)) unlinkSync(join(PIN, f));
      rmdirSync(PIN);
    }
    rmSync(PIN, { recursive: true, force: true });
    deleteNetnsSync(NS);
  });

  test('without a ready config, pod traffic is dropped as DROP_NO_CONFIG and the uplink passes', () => {
    maps.config.update(0, config({ flags: 0 }));
    const before = counter('DROP_NO_CONFIG');
    const pkt = packet({ src: POD1.ip, dst: '10.244.2.2', proto: PROTO.UDP, sport: 1, dport: 2 });
    assert.equal(exec('pod', pkt).retval, TC_ACT_SHOT);
    assert.equal(counter('DROP_NO_CONFIG'), before + 1n);
    assert.equal(exec('uplinkIngress', packet({ src: INET, dst: NODE_IP, proto: PROTO.TCP, sport: 80, dport: 61005 })).retval, TC_ACT_OK);
    maps.config.update(0, config());
  });

  test('drop events: none while nobody listens; with a listener each drop is one ring-buffer event (hook, direction, reason, 5-tuple); a bucket of 3 without refill lets at most 3 per CPU through and counts the rest as MONITOR_SUPPRESSED', () => {
    const spoof = packet({ src: '10.244.1.77', dst: '10.244.2.2', proto: PROTO.UDP, sport: 1111, dport: 2222 });
    using ring = RingBufReader.openPinned(join(PIN, MapName.events));
    ring.skipToEnd();
    assert.equal(exec('pod', spoof).retval, TC_ACT_SHOT);
    assert.equal(ring.pending, 0, 'nobody listens: nothing written');
    {
      using m = DropMonitor.open(PIN);
      assert.equal(exec('pod', spoof).retval, TC_ACT_SHOT);
      assert.equal(exec('overlayEgress', packet({ src: POD1.ip, dst: '10.244.9.9', proto: PROTO.TCP, sport: 3333, dport: 80 })).retval, TC_ACT_SHOT);
      const evs = m.poll().map((e) => ({ reason: e.reason, hook: e.hook, dir: e.dir, flags: e.flags, proto: e.proto, saddr: e.saddr, daddr: e.daddr, sport: e.sport, dport: e.dport, ethertype: e.ethertype, rule_ref: e.rule_ref }));
      const f = EventFlags.ipv4 | EventFlags.ports;
      assert.deepEqual(evs, [
        { reason: Reason.DROP_SPOOFED, hook: Hook.pod, dir: 0, flags: f, proto: PROTO.UDP, saddr: '10.244.1.77', daddr: '10.244.2.2', sport: 1111, dport: 2222, ethertype: ETH_P.IP, rule_ref: 0 },
        { reason: Reason.DROP_NO_TUNNEL, hook: Hook.overlayEgress, dir: 1, flags: f, proto: PROTO.TCP, saddr: POD1.ip, daddr: '10.244.9.9', sport: 3333, dport: 80, ethertype: ETH_P.IP, rule_ref: 0 },
      ]);
    }
    {
      using m = DropMonitor.open(PIN, { rate: 0, burst: 3 });
      const suppressed = counter('MONITOR_SUPPRESSED');
      for (let i = 0; i < 10; i++) exec('pod', spoof);
      const n = m.poll().length;
      assert.ok(n >= 3 && n <= 3 * numPossibleCpus(), `${n} events from a bucket of 3 per CPU`);
      assert.equal(counter('MONITOR_SUPPRESSED') - suppressed, BigInt(10 - n), 'the rest counted as suppressed');
    }
  });

  test('a source that is not the pod on this interface is dropped as DROP_SPOOFED', () => {
    const before = counter('DROP_SPOOFED');
    const pkt = packet({ src: '10.244.1.77', dst: '10.244.2.2', proto: PROTO.UDP, sport: 1, dport: 2 });
    assert.equal(exec('pod', pkt).retval, TC_ACT_SHOT);
    assert.equal(counter('DROP_SPOOFED'), before + 1n);
    // A registered pod whose veth is another interface is spoofing too.
    maps.endpoints.update({ ip: '10.244.1.9' }, { ifindex: 999, flags: 1, pod_mac: POD1.mac, gw_mac: GW_MAC, identity: 0 });
    const spoof2 = packet({ src: '10.244.1.9', dst: '10.244.2.2', proto: PROTO.UDP, sport: 1, dport: 2 });
    assert.equal(exec('pod', spoof2).retval, TC_ACT_SHOT);
    assert.equal(counter('DROP_SPOOFED'), before + 2n);
    maps.endpoints.delete({ ip: '10.244.1.9' });
  });

  test("an IPv4 frame whose source MAC is not its pod's is dropped as DROP_SPOOFED_MAC; the pod's own MAC passes", () => {
    const before = counter('DROP_SPOOFED_MAC');
    const spec = { src: POD1.ip, dst: '10.244.2.2', proto: PROTO.UDP, sport: 1, dport: 2 };
    for (const srcMac of [POD2.mac, GW_MAC, '02:00:00:00:01:02', 'ff:ff:ff:ff:ff:ff']) {
      assert.equal(exec('pod', packet({ ...spec, srcMac })).retval, TC_ACT_SHOT, srcMac);
    }
    assert.equal(counter('DROP_SPOOFED_MAC'), before + 4n);
    // The control: the same packet from the pod's own MAC is encapsulated.
    assert.equal(exec('pod', packet({ ...spec, srcMac: POD1.mac })).retval, TC_ACT_REDIRECT);
    // Same-node delivery and the host path check it too.
    assert.equal(exec('pod', packet({ ...spec, dst: POD2.ip, srcMac: POD2.mac })).retval, TC_ACT_SHOT);
    assert.equal(exec('pod', packet({ ...spec, dst: NODE_IP, srcMac: POD2.mac })).retval, TC_ACT_SHOT);
    assert.equal(counter('DROP_SPOOFED_MAC'), before + 6n);
  });

  test('only untagged IPv4 and ARP leave a pod: IPv6, RARP, LLDP, 802.3 and VLAN-tagged frames are DROP_ETHERTYPE', () => {
    const before = counter('DROP_ETHERTYPE');
    const ip4 = packet({ src: POD1.ip, dst: '10.244.2.2', proto: PROTO.UDP, sport: 1, dport: 2 });
    const ip6 = Buffer.alloc(48);
    ip6[0] = 0x60;
    ip6.writeUInt16BE(8, 4); // payload length
    ip6[6] = 58; // ICMPv6
    ip6[7] = 255;
    const frames: [string, Buffer][] = [
      ['IPv6', ethFrame(ETH_P.IPV6, ip6, POD1.mac, '33:33:00:00:00:01')],
      ['RARP', arpFrame({ op: 3, sip: POD1.ip, tip: POD1.ip, srcMac: POD1.mac, type: ETH_P.RARP })],
      ['LLDP', ethFrame(0x88cc, Buffer.alloc(46), POD1.mac, '01:80:c2:00:00:0e')],
      ['802.3 (STP BPDU)', ethFrame(38, Buffer.from('424203000000000000000000000000000000000000000000000000000000000000000000000000000000000000', 'hex'), POD1.mac, '01:80:c2:00:00:00')],
      ['802.1Q', vlanTagged(ip4, 7)],
      ['802.1ad', vlanTagged(vlanTagged(ip4, 7), 8, ETH_P.QINQ)],
      ['802.1Q around ARP', vlanTagged(arpFrame({ op: 1, sip: POD1.ip, tip: '10.244.1.1', srcMac: POD1.mac }), 7)],
    ];
    for (const [name, f] of frames) assert.equal(exec('pod', f).retval, TC_ACT_SHOT, name);
    assert.equal(counter('DROP_ETHERTYPE'), before + BigInt(frames.length));
    // The control: the untagged IPv4 frame inside them passes.
    assert.equal(exec('pod', ip4).retval, TC_ACT_REDIRECT);
  });

  test("a pod's own ARP passes unchanged: request, reply, gratuitous, probe", () => {
    const fwd = counter('FORWARD');
    const own = { sip: POD1.ip, srcMac: POD1.mac };
    const frames = [
      arpFrame({ op: 1, ...own, tip: '10.244.1.1' }),
      arpFrame({ op: 2, ...own, tip: '10.244.1.1', tha: GW_MAC, dstMac: GW_MAC }),
      arpFrame({ op: 1, ...own, tip: POD1.ip }),
      arpFrame({ op: 2, ...own, tip: POD1.ip }),
      arpFrame({ op: 1, sip: '0.0.0.0', tip: POD1.ip, srcMac: POD1.mac }),
    ];
    for (const f of frames) {
      const r = exec('pod', f);
      assert.equal(r.retval, TC_ACT_OK);
      assert.deepEqual(r.out, f);
    }
    assert.equal(counter('FORWARD'), fwd + BigInt(frames.length));
  });

  test('an ARP whose sender is not the pod is DROP_ARP_SPOOFED (another pod, the gateway, a free address, a MAC not its own); a frame from another MAC is DROP_SPOOFED_MAC', () => {
    // A pod registered on another veth: its address is not this pod's to claim.
    maps.endpoints.update({ ip: '10.244.1.9' }, { ifindex: 999, flags: 1, pod_mac: macOf('10.244.1.9'), gw_mac: GW_MAC, identity: 0 });
    try {
      const spoofed = counter('DROP_ARP_SPOOFED');
      const lies = [
        arpFrame({ op: 2, sip: '10.244.1.9', tip: '10.244.1.1', srcMac: POD1.mac, dstMac: GW_MAC }),
        arpFrame({ op: 1, sip: '10.244.1.9', tip: '10.244.1.9', srcMac: POD1.mac }),
        arpFrame({ op: 1, sip: '10.244.1.1', tip: '10.244.1.1', srcMac: POD1.mac }),
        arpFrame({ op: 2, sip: '10.244.1.1', tip: POD2.ip, srcMac: POD1.mac, dstMac: POD2.mac }),
        arpFrame({ op: 1, sip: '10.244.1.77', tip: '10.244.1.1', srcMac: POD1.mac }),
        // Its own address with another pod's MAC as the sender hardware address.
        arpFrame({ op: 2, sip: POD1.ip, sha: POD2.mac, tip: '10.244.1.1', srcMac: POD1.mac, dstMac: GW_MAC }),
        arpFrame({ op: 1, sip: POD1.ip, sha: '02:00:00:00:00:66', tip: POD1.ip, srcMac: POD1.mac }),
        // A probe for an address that is not its own.
        arpFrame({ op: 1, sip: '0.0.0.0', tip: '10.244.1.9', srcMac: POD1.mac }),
      ];
      for (const [i, f] of lies.entries()) assert.equal(exec('pod', f).retval, TC_ACT_SHOT, `lie ${i}`);
      assert.equal(counter('DROP_ARP_SPOOFED'), spoofed + BigInt(lies.length));
      const mac = counter('DROP_SPOOFED_MAC');
      assert.equal(exec('pod', arpFrame({ op: 1, sip: POD1.ip, sha: POD1.mac, tip: '10.244.1.1', srcMac: POD2.mac })).retval, TC_ACT_SHOT);
      assert.equal(counter('DROP_SPOOFED_MAC'), mac + 1n);
    } finally {
      maps.endpoints.delete({ ip: '10.244.1.9' });
    }
  });

  test('a malformed ARP is DROP_INVALID: hardware type, protocol type, address lengths, opcode, truncated', () => {
    const before = counter('DROP_INVALID');
    const own = { sip: POD1.ip, tip: '10.244.1.1', srcMac: POD1.mac };
    const bad = [
      arpFrame({ op: 1, ...own, hrd: 6 }),
      arpFrame({ op: 1, ...own, pro: ETH_P.IPV6 }),
      arpFrame({ op: 1, ...own, hln: 8 }),
      arpFrame({ op: 1, ...own, pln: 16 }),
      arpFrame({ op: 3, ...own }),
      arpFrame({ op: 8, ...own }),
      arpFrame({ op: 1, ...own }).subarray(0, 14 + 20),
    ];
    for (const [i, f] of bad.entries()) assert.equal(exec('pod', f).retval, TC_ACT_SHOT, `frame ${i}`);
    assert.equal(counter('DROP_INVALID'), before + BigInt(bad.length));
  });

  test('remote podCIDR and remote node IP are encapsulated for the node (redirect); a cluster address with no tunnel is dropped', () => {
    const fwd = counter('FORWARD');
    for (const dst of ['10.244.2.2', '192.0.2.12']) {
      const pkt = packet({ src: POD1.ip, dst, proto: PROTO.TCP, sport: 1234, dport: 80 });
      const r = exec('pod', pkt);
      assert.equal(r.retval, TC_ACT_REDIRECT, dst);
      const v = parseVxlan(r.out);
      assert.deepEqual(v.inner, pkt, 'the whole frame is carried unchanged');
      assert.equal(v.outer.src, NODE_IP);
      assert.equal(v.outer.dst, '192.0.2.12');
      assert.equal(v.outer.proto, PROTO.UDP);
      assert.equal(v.outer.dport, 8472);
      assert.ok(v.outer.sport >= 49152, `source port ${v.outer.sport} from the dynamic range`);
      assert.equal(v.outer.ttl, 64);
      assert.ok(v.outer.ipCsumOk, 'outer IP checksum');
      assert.equal(v.df, false, 'DF clear, as the VXLAN device sends');
      assert.equal(v.ipTotalLength, r.out.length - 14);
      assert.equal(v.udpLength, r.out.length - 34);
      assert.equal(v.udpChecksum, 0);
      assert.equal(v.vxlanFlags, 0x08);
      assert.equal(v.vni, 1);
    }
    assert.equal(counter('FORWARD'), fwd + 2n);
    const before = counter('DROP_NO_TUNNEL');
    const miss = packet({ src: POD1.ip, dst: '10.244.3.2', proto: PROTO.TCP, sport: 1234, dport: 80 });
    assert.equal(exec('pod', miss).retval, TC_ACT_SHOT);
    assert.equal(counter('DROP_NO_TUNNEL'), before + 1n);
  });

  test('encapsulation: one flow keeps one source port, the outer header carries the inner ECN (CE as ECT(0)), the VNI is the configured one', () => {
    maps.config.update(0, config({ vni: 0x123456 }));
    try {
      const flow = (tos: number) => packet({ src: POD1.ip, dst: '10.244.2.2', proto: PROTO.UDP, sport: 4000, dport: 53, tos });
      const ports = new Set<number>();
      for (const [inner, outer] of [[0, 0], [1, 1], [2, 2], [3, 2], [0xb8 | 1, 1]] as const) {
        const v = parseVxlan(exec('pod', flow(inner)).out);
        assert.equal(v.tos, outer, `inner TOS ${inner}`);
        assert.equal(v.vni, 0x123456);
        ports.add(v.outer.sport);
      }
      assert.equal(ports.size, 1, 'the same flow, the same source port');
      const other = parseVxlan(exec('pod', packet({ src: POD1.ip, dst: '10.244.2.2', proto: PROTO.UDP, sport: 4001, dport: 53 })).out);
      const third = parseVxlan(exec('pod', packet({ src: POD1.ip, dst: '10.244.2.2', proto: PROTO.UDP, sport: 4002, dport: 53 })).out);
      assert.ok(new Set([...ports, other.outer.sport, third.outer.sport]).size > 1, 'other flows hash elsewhere');
    } finally {
      maps.config.update(0, config());
    }
  });

  test('with no route to the node, the packet goes to the VXLAN device with its tunnel key instead', async () => {
    await run(['ip', 'route', 'add', 'blackhole', '192.0.2.200/32'], { netns: netnsPath(NS) });
    maps.tunnel.update({ prefixlen: 24, addr: '10.244.5.0' }, { node_ip: '192.0.2.200', flags: 0 });
    try {
      const pkt = packet({ src: POD1.ip, dst: '10.244.5.2', proto: PROTO.TCP, sport: 1234, dport: 80 });
      const r = exec('pod', pkt);
      assert.equal(r.retval, TC_ACT_REDIRECT);
      assert.deepEqual(r.out, pkt, 'left for the device to encapsulate');
    } finally {
      maps.tunnel.delete({ prefixlen: 24, addr: '10.244.5.0' });
      await run(['ip', 'route', 'del', 'blackhole', '192.0.2.200/32'], { netns: netnsPath(NS) });
    }
  });

  test('the node egress path encapsulates for remote pods (the tunnel key and the device when it cannot) and drops unknown cluster addresses', async () => {
    const ok = packet({ src: NODE_IP, dst: '10.244.2.5', proto: PROTO.ICMP, icmpId: 7 });
    const r = exec('overlayEgress', ok);
    assert.equal(r.retval, TC_ACT_REDIRECT);
    const v = parseVxlan(r.out);
    assert.deepEqual(v.inner, ok);
    assert.deepEqual([v.outer.src, v.outer.dst, v.outer.dport, v.vni], [NODE_IP, '192.0.2.12', 8472, 1]);
    await run(['ip', 'route', 'add', 'blackhole', '192.0.2.12/32'], { netns: netnsPath(NS) });
    try {
      const dev = exec('overlayEgress', ok);
      assert.equal(dev.retval, TC_ACT_OK, 'with no route to the node: the device, with the tunnel key');
      assert.deepEqual(dev.out, ok);
    } finally {
      await run(['ip', 'route', 'del', 'blackhole', '192.0.2.12/32'], { netns: netnsPath(NS) });
    }
    const before = counter('DROP_NO_TUNNEL', 'egress');
    const miss = packet({ src: NODE_IP, dst: '10.244.9.5', proto: PROTO.ICMP, icmpId: 7 });
    assert.equal(exec('overlayEgress', miss).retval, TC_ACT_SHOT);
    assert.equal(counter('DROP_NO_TUNNEL', 'egress'), before + 1n);
  });

  test('a DF packet too big for the overlay is answered with ICMP "fragmentation needed" handed back to the pod, and counted as DROP_FRAG_NEEDED', () => {
    const before = counter('DROP_FRAG_NEEDED');
    const payload = Buffer.alloc(1460, 7);
    const big = packet({ src: POD1.ip, dst: '10.244.2.2', proto: PROTO.UDP, sport: 1111, dport: 2222, payload, dstMac: GW_MAC, srcMac: POD1.mac });
    const r = exec('pod', big);
    assert.equal(r.retval, TC_ACT_REDIRECT);
    const p = parse(r.out);
    assert.deepEqual(
      { dstMac: p.dstMac, srcMac: p.srcMac, src: p.src, dst: p.dst, proto: p.proto, type: p.icmpType, ipCsumOk: p.ipCsumOk, icmpCsumOk: p.l4CsumOk },
      { dstMac: POD1.mac, srcMac: GW_MAC, src: NODE_IP, dst: POD1.ip, proto: PROTO.ICMP, type: 3, ipCsumOk: true, icmpCsumOk: true },
    );
    const icmp = r.out.subarray(14 + 20);
    assert.equal(icmp[1], 4, 'code 4: fragmentation needed and DF set');
    assert.equal(icmp.readUInt16BE(6), 1450, "next-hop MTU: the overlay's");
    assert.deepEqual(icmp.subarray(8), big.subarray(14, 14 + 20 + 64), "it quotes the pod's IP header and 64 bytes after it, nothing more");
    assert.equal(counter('DROP_FRAG_NEEDED'), before + 1n);
  });

  test('controls: no answer for a packet without DF (the device fragments its outer packet) or one that fits exactly', () => {
    const before = counter('DROP_FRAG_NEEDED');
    const noDf = packet({ src: POD1.ip, dst: '10.244.2.2', proto: PROTO.UDP, sport: 1111, dport: 2222, payload: Buffer.alloc(1460), df: false, dstMac: GW_MAC, srcMac: POD1.mac });
    const r = exec('pod', noDf);
    assert.equal(r.retval, TC_ACT_REDIRECT);
    assert.deepEqual(r.out, noDf, 'left whole for the VXLAN device (its tunnel key set, not encapsulated here)');
    const fits = packet({ src: POD1.ip, dst: '10.244.2.2', proto: PROTO.UDP, sport: 1111, dport: 2222, payload: Buffer.alloc(1450 - 28), dstMac: GW_MAC, srcMac: POD1.mac });
    const f = exec('pod', fits);
    assert.equal(f.retval, TC_ACT_REDIRECT);
    assert.notEqual(parse(f.out).dst, POD1.ip, 'sent on, not answered');
    assert.equal(counter('DROP_FRAG_NEEDED'), before);
  });

  test('local pod to pod is delivered straight to the peer with rewritten MACs', () => {
    const pkt = packet({ src: POD1.ip, dst: POD2.ip, proto: PROTO.UDP, sport: 5, dport: 6, dstMac: GW_MAC, srcMac: POD1.mac });
    const r = exec('pod', pkt);
    assert.equal(r.retval, TC_ACT_REDIRECT);
    const p = parse(r.out);
    assert.equal(p.dstMac, POD2.mac);
    assert.equal(p.srcMac, GW_MAC);
    assert.equal(p.dst, POD2.ip);
  });

  test('decapsulated traffic: to a pod (redirect, MACs), to the node (host), to an unknown local address (dropped)', () => {
    const toPod = exec('overlayIngress', packet({ src: '10.244.2.2', dst: POD1.ip, proto: PROTO.TCP, sport: 80, dport: 1234 }));
    assert.equal(toPod.retval, TC_ACT_REDIRECT);
    assert.equal(parse(toPod.out).dstMac, POD1.mac);
    const toNode = exec('overlayIngress', packet({ src: '10.244.2.2', dst: NODE_IP, proto: PROTO.TCP, sport: 80, dport: 1234 }));
    assert.equal(toNode.retval, TC_ACT_OK);
    const before = counter('DROP_NO_ENDPOINT');
    const gone = exec('overlayIngress', packet({ src: '10.244.2.2', dst: '10.244.1.50', proto: PROTO.TCP, sport: 80, dport: 1 }));
    assert.equal(gone.retval, TC_ACT_SHOT);
    assert.equal(counter('DROP_NO_ENDPOINT'), before + 1n);
  });

  test('VXLAN at the uplink: for a local pod or the node decapsulated and delivered; anything else left to the VXLAN device', () => {
    maps.config.update(0, config());
    const inner = packet({ src: '10.244.2.2', dst: POD1.ip, proto: PROTO.TCP, sport: 80, dport: 1234 });
    const outer = { src: '192.0.2.12', dst: NODE_IP, vni: 1 };
    const r = exec('uplinkIngress', vxlanPacket(outer, inner));
    assert.equal(r.retval, TC_ACT_REDIRECT);
    assert.equal(r.out.length, inner.length, 'exactly the outer headers removed');
    const p = parse(r.out);
    assert.deepEqual([p.dstMac, p.srcMac, p.src, p.dst, p.sport, p.dport], [POD1.mac, GW_MAC, '10.244.2.2', POD1.ip, 80, 1234]);
    assert.ok(p.ipCsumOk && p.l4CsumOk);
    assert.deepEqual(r.out.subarray(12), inner.subarray(12), 'the inner packet untouched past the MACs');

    // For the node itself: decapsulated and handed to the VXLAN device's receive side (ingress).
    const toNode = packet({ src: '10.244.2.2', dst: NODE_IP, proto: PROTO.TCP, sport: 80, dport: 1234 });
    const n = exec('uplinkIngress', vxlanPacket(outer, toNode));
    assert.equal(n.retval, TC_ACT_REDIRECT, 'the node itself');
    assert.deepEqual(n.out, toNode, 'the node itself: exactly the outer headers removed');

    const passes = {
      'no such endpoint': vxlanPacket(outer, packet({ src: '10.244.2.2', dst: '10.244.1.50', proto: PROTO.TCP, sport: 80, dport: 1 })),
      'another VNI': vxlanPacket({ ...outer, vni: 2 }, inner),
      'another UDP port': vxlanPacket({ ...outer, port: 4789 }, inner),
      'CE-marked (the device propagates ECN)': vxlanPacket({ ...outer, tos: 3 }, inner),
      'for another address': vxlanPacket({ ...outer, dst: '192.0.2.99' }, inner),
      'from a host that is not a cluster node': vxlanPacket({ ...outer, src: '192.0.2.99' }, inner),
    };
    for (const [what, pkt] of Object.entries(passes)) {
      const x = exec('uplinkIngress', pkt);
      assert.equal(x.retval, TC_ACT_OK, what);
      assert.deepEqual(x.out, pkt, `${what}: unchanged`);
    }
  });

  test('traffic to a ClusterIP goes up the host stack untouched, for kube-proxy; never masqueraded', () => {
    const pkt = packet({ src: POD1.ip, dst: '10.96.0.10', proto: PROTO.UDP, sport: 33000, dport: 53 });
    const r = exec('pod', pkt);
    assert.equal(r.retval, TC_ACT_OK);
    assert.deepEqual(r.out, pkt);
    const fwd = { saddr: POD1.ip, daddr: '10.96.0.10', sport: 33000, dport: 53, proto: PROTO.UDP, dir: NatDir.egress };
    assert.equal(maps.nat.lookup(fwd), undefined, 'no masquerade mapping');
    // Without a service range configured the same packet is masqueraded.
    maps.config.update(0, config({ service_prefix: 0 }));
    try {
      assert.equal(exec('pod', pkt).retval, TC_ACT_REDIRECT);
      assert.ok(maps.nat.lookup(fwd));
    } finally {
      maps.config.update(0, config());
      for (const k of [...maps.nat.keys()]) if (k.saddr === '10.96.0.10' || k.daddr === '10.96.0.10') maps.nat.delete(k);
    }
  });

  test('masquerade TCP: SNAT to the node IP with valid checksums, and the reply translated back', () => {
    const syn = packet({ src: POD1.ip, dst: INET, proto: PROTO.TCP, sport: 40000, dport: 80, tcpFlags: 0x02, ttl: 64 });
    const r = exec('pod', syn);
    assert.equal(r.retval, TC_ACT_REDIRECT);
    const out = parse(r.out);
    assert.equal(out.src, NODE_IP);
    assert.equal(out.dst, INET);
    assert.ok(out.sport >= NAT_MIN && out.sport <= NAT_MAX, `port ${out.sport} in range`);
    assert.equal(out.dport, 80);
    assert.equal(out.ttl, 63);
    assert.equal(out.dstMac, ROUTER_MAC);
    assert.ok(out.ipCsumOk, 'IP checksum');
    assert.ok(out.l4CsumOk, 'TCP checksum');

    const fwd = maps.nat.lookup({ saddr: POD1.ip, daddr: INET, sport: 40000, dport: 80, proto: PROTO.TCP, dir: NatDir.egress });
    assert.deepEqual([fwd?.to_addr, fwd?.to_port], [NODE_IP, out.sport]);
    const revKey = { saddr: INET, daddr: NODE_IP, sport: 80, dport: out.sport, proto: PROTO.TCP, dir: NatDir.ingress };
    assert.equal(maps.nat.lookup(revKey)?.tcp_state, NatTcpState.SYN);

    // The same flow keeps its port.
    assert.equal(parse(exec('pod', syn).out).sport, out.sport);

    const synack = packet({ src: INET, dst: NODE_IP, proto: PROTO.TCP, sport: 80, dport: out.sport, tcpFlags: 0x12 });
    const back = exec('uplinkIngress', synack);
    assert.equal(back.retval, TC_ACT_REDIRECT);
    const b = parse(back.out);
    assert.deepEqual([b.dst, b.dport, b.src, b.sport], [POD1.ip, 40000, INET, 80]);
    assert.deepEqual([b.dstMac, b.srcMac], [POD1.mac, GW_MAC]);
    assert.ok(b.ipCsumOk && b.l4CsumOk, 'checksums after reverse NAT');
    assert.equal(maps.nat.lookup(revKey)?.tcp_state, NatTcpState.ESTABLISHED);
  });

  test('a changed next hop (the gateway MAC here) is used once the per-CPU route cache expires', async () => {
    const NEW_MAC = '02:00:00:00:00:02';
    const send = () => parse(exec('pod', packet({ src: POD1.ip, dst: INET, proto: PROTO.UDP, sport: 5353, dport: 53 })).out).dstMac;
    const neigh = (mac: string) => run(['ip', 'neigh', 'replace', '192.0.2.1', 'lladdr', mac, 'dev', 'up0', 'nud', 'permanent'], { netns: netnsPath(NS) });
    // The cache is per CPU: every test run on one CPU, so the one holding the old next hop answers each time.
    const affinity = (await run(['taskset', '-p', String(process.pid)])).stdout.trim().split(/\s+/).at(-1)!;
    await run(['taskset', '-pc', '0', String(process.pid)]);
    try {
      assert.equal(send(), ROUTER_MAC);
      await neigh(NEW_MAC);
      // The cache holds a next hop for 10 ms (plus a clock tick): well within the wait.
      await waitFor('the new gateway MAC', () => send() === NEW_MAC, { timeoutMs: 2000, intervalMs: 5 });
      await neigh(ROUTER_MAC);
      await waitFor('the old gateway MAC again', () => send() === ROUTER_MAC, { timeoutMs: 2000, intervalMs: 5 });
    } finally {
      await neigh(ROUTER_MAC);
      await run(['taskset', '-p', affinity, String(process.pid)]);
    }
  });

  test("the host's own traffic at the uplink is left alone", () => {
    const pkt = packet({ src: INET, dst: NODE_IP, proto: PROTO.TCP, sport: 80, dport: 22 });
    const r = exec('uplinkIngress', pkt);
    assert.equal(r.retval, TC_ACT_OK);
    assert.deepEqual(r.out, pkt);
    const unknown = packet({ src: INET, dst: NODE_IP, proto: PROTO.TCP, sport: 81, dport: NAT_MIN });
    assert.equal(exec('uplinkIngress', unknown).retval, TC_ACT_OK, 'in the NAT range but no mapping');
  });

  test('masquerade ICMP echo: the id is the port, both ways', () => {
    const r = exec('pod', packet({ src: POD2.ip, dst: INET, proto: PROTO.ICMP, icmpType: 8, icmpId: 777 }));
    assert.equal(r.retval, TC_ACT_REDIRECT);
    const out = parse(r.out);
    assert.equal(out.src, NODE_IP);
    assert.ok(out.icmpId >= NAT_MIN && out.icmpId <= NAT_MAX);
    assert.ok(out.ipCsumOk && out.l4CsumOk);
    const reply = exec('uplinkIngress', packet({ src: INET, dst: NODE_IP, proto: PROTO.ICMP, icmpType: 0, icmpId: out.icmpId }));
    assert.equal(reply.retval, TC_ACT_REDIRECT);
    const b = parse(reply.out);
    assert.deepEqual([b.dst, b.icmpId, b.icmpType], [POD2.ip, 777, 0]);
    assert.ok(b.ipCsumOk && b.l4CsumOk);
  });

  test('an ICMP port-unreachable quoting a masqueraded UDP packet is translated inside and out', () => {
    const r = exec('pod', packet({ src: POD1.ip, dst: INET, proto: PROTO.UDP, sport: 5353, dport: 53, payload: Buffer.from('query') }));
    assert.equal(r.retval, TC_ACT_REDIRECT);
    const sent = r.out.subarray(14);
    const snat = parseIp(sent);
    assert.equal(snat.src, NODE_IP);
    assert.ok(snat.l4CsumOk, 'UDP checksum after SNAT');
    const err = packet({ src: INET, dst: NODE_IP, proto: PROTO.ICMP, icmpType: 3, icmpCode: 3, payload: Buffer.from(sent) });
    const back = exec('uplinkIngress', err);
    assert.equal(back.retval, TC_ACT_REDIRECT);
    const outer = parse(back.out);
    assert.equal(outer.dst, POD1.ip);
    assert.equal(outer.icmpType, 3);
    assert.ok(outer.ipCsumOk, 'outer IP checksum');
    assert.ok(outer.l4CsumOk, 'ICMP checksum over the rewritten quote');
    const inner = parseIp(outer.icmpBody);
    assert.deepEqual([inner.src, inner.sport, inner.dst, inner.dport], [POD1.ip, 5353, INET, 53]);
    assert.ok(inner.ipCsumOk, 'quoted IP checksum');
    assert.ok(inner.l4CsumOk, 'quoted UDP checksum');
  });

  test('ports are never shared by two flows to the same remote; exhaustion is DROP_NAT_NO_PORT', () => {
    const before = counter('DROP_NAT_NO_PORT');
    const ports = new Set<number>();
    let drops = 0;
    for (let i = 0; i < 40; i++) {
      const src = i % 2 ? POD1.ip : POD2.ip;
      const r = exec('pod', packet({ src, dst: '198.51.100.7', proto: PROTO.UDP, sport: 20000 + i, dport: 443 }));
      if (r.retval === TC_ACT_SHOT) {
        drops++;
        continue;
      }
      const port = parse(r.out).sport;
      assert.ok(!ports.has(port), `port ${port} handed out twice`);
      ports.add(port);
    }
    assert.ok(ports.size <= NAT_MAX - NAT_MIN + 1);
    assert.ok(drops > 0);
    assert.equal(counter('DROP_NAT_NO_PORT'), before + BigInt(drops));
  });

  test('a closed TCP mapping is reused at once only when the remote holds no TIME_WAIT', () => {
    // One port in the range, so the second flow can only get it by reuse.
    const port = 61500;
    const remote = '198.51.100.20';
    maps.config.update(0, config({ nat_port_min: port, nat_port_max: port }));
    const FIN_ACK = 0x11;
    const ACK = 0x10;
    const SYN = 0x02;
    const fromPod = (src: string, sport: number, flags: number) =>
      exec('pod', packet({ src, dst: remote, proto: PROTO.TCP, sport, dport: 80, tcpFlags: flags }));
    const fromRemote = (flags: number) =>
      exec('uplinkIngress', packet({ src: remote, dst: NODE_IP, proto: PROTO.TCP, sport: 80, dport: port, tcpFlags: flags }));
    const state = () =>
      maps.nat.lookup({ saddr: remote, daddr: NODE_IP, sport: 80, dport: port, proto: PROTO.TCP, dir: NatDir.ingress })?.tcp_state;
    try {
      // Flow A: the remote closes first, so it sits in TIME_WAIT: the port must wait.
      assert.equal(parse(fromPod(POD1.ip, 41000, SYN).out).sport, port);
      fromRemote(0x12);
      fromRemote(FIN_ACK);
      assert.equal(state(), NatTcpState.FIN);
      fromPod(POD1.ip, 41000, FIN_ACK);
      assert.equal(state(), NatTcpState.TIME_WAIT);
      const blocked = counter('DROP_NAT_NO_PORT');
      assert.equal(fromPod(POD2.ip, 42000, SYN).retval, TC_ACT_SHOT, 'remote in TIME_WAIT: no reuse');
      assert.equal(counter('DROP_NAT_NO_PORT'), blocked + 1n);

      // Flow B (after A is reset): the pod closes first and sends the last ACK: reusable at once.
      fromRemote(0x04); // RST
      assert.equal(state(), NatTcpState.CLOSED);
      assert.equal(parse(fromPod(POD2.ip, 42000, SYN).out).sport, port, 'RST frees the port');
      fromRemote(0x12);
      assert.equal(state(), NatTcpState.ESTABLISHED);
      fromPod(POD2.ip, 42000, FIN_ACK);
      assert.equal(state(), NatTcpState.FIN_POD);
      assert.equal(fromPod(POD1.ip, 41001, SYN).retval, TC_ACT_SHOT, 'half-closed: still in use');
      fromRemote(FIN_ACK);
      assert.equal(state(), NatTcpState.LAST_ACK);
      assert.equal(fromPod(POD1.ip, 41001, SYN).retval, TC_ACT_SHOT, 'last ACK not yet sent: still in use');
      fromPod(POD2.ip, 42000, ACK);
      assert.equal(state(), NatTcpState.CLOSED);
      const c = parse(fromPod(POD1.ip, 41001, SYN).out);
      assert.deepEqual([c.src, c.sport], [NODE_IP, port], 'closed by the pod first: reused at once');
      const reply = parse(fromRemote(0x12).out);
      assert.deepEqual([reply.dst, reply.dport], [POD1.ip, 41001], 'replies now reach the new owner');
    } finally {
      maps.config.update(0, config());
      for (const k of [...maps.nat.keys()]) if (k.saddr === remote || k.daddr === remote) maps.nat.delete(k);
    }
  });

  test("a flow gets its first hashed candidate port when free, never a live flow's, and keeps its port and EGRESS entry", () => {
    const remote = '198.51.100.21';
    const SYN = 0x02;
    const fromPod = (src: string, sport: number, flags: number) =>
      exec('pod', packet({ src, dst: remote, proto: PROTO.TCP, sport, dport: 80, tcpFlags: flags }));
    const fromRemote = (dport: number, flags: number) =>
      exec('uplinkIngress', packet({ src: remote, dst: NODE_IP, proto: PROTO.TCP, sport: 80, dport, tcpFlags: flags }));
    const owner = (p: number) => {
      const e = maps.nat.lookup({ saddr: remote, daddr: NODE_IP, sport: 80, dport: p, proto: PROTO.TCP, dir: NatDir.ingress });
      return [e?.to_addr, e?.to_port, e?.tcp_state];
    };
    const egressPort = (src: string, sport: number) =>
      maps.nat.lookup({ saddr: src, daddr: remote, sport, dport: 80, proto: PROTO.TCP, dir: NatDir.egress })?.to_port;
    // A connection that the pod closes first: its reservation ends CLOSED, reusable at once.
    const closeFromPod = (src: string, sport: number, p: number) => {
      fromRemote(p, 0x12);
      fromPod(src, sport, 0x11);
      fromRemote(p, 0x11);
      fromPod(src, sport, 0x10);
      assert.equal(owner(p)[2], NatTcpState.CLOSED);
    };
    try {
      // The same flow twice, with the whole range open: the same (first) candidate both times.
      const first = parse(fromPod(POD1.ip, 43000, SYN).out).sport;
      closeFromPod(POD1.ip, 43000, first);
      assert.equal(parse(fromPod(POD1.ip, 43000, SYN).out).sport, first);
      closeFromPod(POD1.ip, 43000, first);
      // POD2 takes that reservation over while it is closed (a one-port range leaves it no other).
      maps.config.update(0, config({ nat_port_min: first, nat_port_max: first }));
      assert.equal(parse(fromPod(POD2.ip, 43000, SYN).out).sport, first);
      // Live: POD1's first candidate is busy, so it may not have it, in a one-port range...
      assert.equal(fromPod(POD1.ip, 43000, SYN).retval, TC_ACT_SHOT);
      assert.deepEqual(owner(first), [POD2.ip, 43000, NatTcpState.SYN]);
      // ...and in the whole range it goes on to another port, which its later packets keep.
      maps.config.update(0, config());
      const other = parse(fromPod(POD1.ip, 43000, SYN).out).sport;
      assert.notEqual(other, first);
      assert.equal(egressPort(POD1.ip, 43000), other, 'the EGRESS entry leads its packets to their port');
      assert.equal(parse(fromPod(POD1.ip, 43000, 0x10).out).sport, other);
      assert.deepEqual(owner(other), [POD1.ip, 43000, NatTcpState.SYN]);
      assert.deepEqual(owner(first), [POD2.ip, 43000, NatTcpState.SYN], "POD2's reservation untouched");
      const reply = parse(fromRemote(other, 0x12).out);
      assert.deepEqual([reply.dst, reply.dport], [POD1.ip, 43000]);
    } finally {
      maps.config.update(0, config());
      for (const k of [...maps.nat.keys()]) if (k.saddr === remote || k.daddr === remote) maps.nat.delete(k);
    }
  });

  test('stale NAT entries are ignored by the programs and collected by collectNat; live ones stay', () => {
    const stalePort = 61999; // outside the range the programs allocate from: no collision with live flows
    const old = { created_ns: 1n, last_seen_ns: 1n, to_port: 0, tcp_state: NatTcpState.NONE, flags: 0 };
    maps.nat.update(
      { saddr: POD1.ip, daddr: '198.51.100.9', sport: 3000, dport: 53, proto: PROTO.UDP, dir: NatDir.egress },
      { ...old, to_addr: NODE_IP, to_port: stalePort },
    );
    const staleRev = { saddr: '198.51.100.9', daddr: NODE_IP, sport: 53, dport: stalePort, proto: PROTO.UDP, dir: NatDir.ingress };
    maps.nat.update(staleRev, { ...old, to_addr: POD1.ip, to_port: 3000 });
    // A live flow whose EGRESS entry the programs have not refreshed (they read it only for flows
    // off their first candidate port): live by its fresh reservation.
    const quietFwd = { saddr: POD2.ip, daddr: '198.51.100.9', sport: 3001, dport: 53, proto: PROTO.UDP, dir: NatDir.egress };
    maps.nat.update(quietFwd, { ...old, to_addr: NODE_IP, to_port: stalePort - 1 });
    const liveRev = { saddr: '198.51.100.9', daddr: NODE_IP, sport: 53, dport: stalePort - 1, proto: PROTO.UDP, dir: NatDir.ingress };
    maps.nat.update(liveRev, { ...old, last_seen_ns: monotonicNs(), to_addr: POD2.ip, to_port: 3001 });
    maps.config.update(0, config({ nat_port_max: stalePort }));
    try {
      const reply = packet({ src: '198.51.100.9', dst: NODE_IP, proto: PROTO.UDP, sport: 53, dport: stalePort });
      assert.equal(exec('uplinkIngress', reply).retval, TC_ACT_OK, 'a stale mapping is treated as absent');
    } finally {
      maps.config.update(0, config());
    }
    const live = listNat(PIN).filter((f) => !f.stale).length;
    assert.ok(live > 0);
    assert.equal(listNat(PIN, { podIp: POD1.ip }).filter((f) => f.stale).length, 2);
    assert.equal(collectNat(PIN, monotonicNs()), 2);
    assert.equal(maps.nat.lookup(staleRev), undefined);
    assert.equal(listNat(PIN).length, live, 'live flows survive GC');
    assert.ok(maps.nat.lookup(quietFwd) && maps.nat.lookup(liveRev), 'a live flow with a quiet EGRESS entry survives GC');
    maps.nat.delete(quietFwd);
    maps.nat.delete(liveRev);
  });

  test('traffic to outside the cluster passes to the host stack when masquerade is off', () => {
    maps.config.update(0, config({ flags: ConfigFlags.ready }));
    try {
      const pkt = packet({ src: POD1.ip, dst: '203.0.113.9', proto: PROTO.UDP, sport: 1, dport: 2 });
      const r = exec('pod', pkt);
      assert.equal(r.retval, TC_ACT_OK);
      assert.deepEqual(r.out, pkt);
    } finally {
      maps.config.update(0, config());
    }
  });
  test("a pod's UDP to the VXLAN port of anything but a pod is dropped as DROP_POD_VXLAN, however it is addressed", () => {
    const vx = (dst: string, extra: Partial<PacketSpec> = {}) =>
      packet({ src: POD1.ip, dst, proto: PROTO.UDP, sport: 40000, dport: 8472, ...extra });
    const dropped: Record<string, Buffer> = {
      "this node's IP": vx(NODE_IP),
      'its gateway (the bridge address)': vx('10.244.1.1'),
      'the podCIDR broadcast': vx('10.244.1.255'),
      'the limited broadcast': vx('255.255.255.255'),
      'a multicast group': vx('239.1.2.3'),
      "another node's IP (bpf_pod would tunnel it to that node)": vx('192.0.2.12'),
      'a ClusterIP (kube-proxy may DNAT it to a node)': vx('10.96.0.10'),
      'an address outside the cluster (masqueraded; it may be another address of a node)': vx(INET),
      'this node, with IP options (NOP NOP NOP EOL)': vx(NODE_IP, { ipOptions: Buffer.from([1, 1, 1, 0]) }),
      'another node, as a first fragment': vx('192.0.2.12', { frag: { offset: 0, more: true } }),
    };
    for (const [what, pkt] of Object.entries(dropped)) {
      const before = counter('DROP_POD_VXLAN');
      assert.equal(exec('pod', pkt).retval, TC_ACT_SHOT, what);
      assert.equal(counter('DROP_POD_VXLAN'), before + 1n, what);
    }
    // A first fragment too short for a UDP header hides its port: dropped, even with padding behind it in the frame.
    const shortL4 = Buffer.from([0x9c, 0x40, 0x21, 0x18]); // source port 40000, destination port 8472, then nothing
    const short = packet({ src: POD1.ip, dst: NODE_IP, proto: PROTO.UDP, frag: { offset: 0, more: true }, rawL4: shortL4 });
    for (const pkt of [short, Buffer.concat([short, Buffer.alloc(16)])]) {
      const before = counter('DROP_INVALID');
      assert.equal(exec('pod', pkt).retval, TC_ACT_SHOT);
      assert.equal(counter('DROP_INVALID'), before + 1n);
    }
    // Controls: the same datagrams where the rule allows them, and other ports.
    const remotePod = vx('10.244.2.2');
    const enc = exec('pod', remotePod);
    assert.equal(enc.retval, TC_ACT_REDIRECT, 'to a pod of another node: encapsulated');
    assert.deepEqual(parseVxlan(enc.out).inner, remotePod);
    assert.equal(exec('pod', vx(POD2.ip)).retval, TC_ACT_REDIRECT, 'to a pod of this node: delivered');
    const otherPort = packet({ src: POD1.ip, dst: NODE_IP, proto: PROTO.UDP, sport: 40000, dport: 8473 });
    assert.equal(exec('pod', otherPort).retval, TC_ACT_OK, 'another port of the node: the host stack');
    assert.equal(exec('pod', vx(NODE_IP, { dport: 8473, ipOptions: Buffer.from([1, 1, 1, 0]) })).retval, TC_ACT_OK, 'with options');
    // A later fragment carries no ports: it never reassembles without its first one, which the rule sees.
    const later = packet({ src: POD1.ip, dst: NODE_IP, proto: PROTO.UDP, frag: { offset: 1480, more: false }, rawL4: Buffer.alloc(64) });
    assert.equal(exec('pod', later).retval, TC_ACT_OK);
  });

  test('VXLAN from a node is decapsulated only with an inner source that node owns; anything else is DROP_VXLAN_SPOOFED', () => {
    maps.tunnel.update({ prefixlen: 24, addr: '10.244.3.0' }, { node_ip: '192.0.2.13', flags: 0 });
    maps.tunnel.update({ prefixlen: 32, addr: '192.0.2.13' }, { node_ip: '192.0.2.13', flags: TunnelFlags.nodeIp });
    try {
      const outer = { src: '192.0.2.12', dst: NODE_IP, vni: 1 };
      const vx = (src: string, dst: string) => vxlanPacket(outer, packet({ src, dst, proto: PROTO.TCP, sport: 80, dport: 1234 }));
      for (const src of ['10.244.2.2', '192.0.2.12'])
        for (const dst of [POD1.ip, NODE_IP]) assert.equal(exec('uplinkIngress', vx(src, dst)).retval, TC_ACT_REDIRECT, `${src} → ${dst}`);
      const spoofed = {
        'a pod of another node': '10.244.3.5',
        'another node': '192.0.2.13',
        'a pod of this node': POD2.ip,
        'this node': NODE_IP,
        'a ClusterIP': '10.96.0.10',
        'an address outside the cluster': INET,
        'an underlay host that is not a node': '192.0.2.99',
      };
      for (const [what, src] of Object.entries(spoofed)) {
        for (const dst of [POD1.ip, NODE_IP]) {
          const before = counter('DROP_VXLAN_SPOOFED');
          assert.equal(exec('uplinkIngress', vx(src, dst)).retval, TC_ACT_SHOT, `${what} → ${dst}`);
          assert.equal(counter('DROP_VXLAN_SPOOFED'), before + 1n, `${what} → ${dst}`);
        }
      }
    } finally {
      maps.tunnel.delete({ prefixlen: 24, addr: '10.244.3.0' });
      maps.tunnel.delete({ prefixlen: 32, addr: '192.0.2.13' });
    }
  });

  test('a decapsulated packet for the node that is UDP to the VXLAN port again is DROP_POD_VXLAN, at the uplink and on the device', () => {
    const outer = { src: '192.0.2.12', dst: NODE_IP, vni: 1 };
    const inner = (dst: string, dport: number) => packet({ src: '10.244.2.2', dst, proto: PROTO.UDP, sport: 40000, dport });
    for (const [slot, wrap] of [
      ['uplinkIngress', (p: Buffer) => vxlanPacket(outer, p)],
      ['overlayIngress', (p: Buffer) => p],
    ] as const) {
      const before = counter('DROP_POD_VXLAN');
      assert.equal(exec(slot, wrap(inner(NODE_IP, 8472))).retval, TC_ACT_SHOT, slot);
      assert.equal(counter('DROP_POD_VXLAN'), before + 1n, slot);
      // Controls: another port of the node, and the VXLAN port of a pod.
      assert.notEqual(exec(slot, wrap(inner(NODE_IP, 8473))).retval, TC_ACT_SHOT, `${slot}: another port`);
      assert.equal(exec(slot, wrap(inner(POD1.ip, 8472))).retval, TC_ACT_REDIRECT, `${slot}: a pod's port 8472`);
    }
  });

  test('the VXLAN device refuses decapsulated frames that are not IPv4 (DROP_ETHERTYPE)', () => {
    const arp = Buffer.alloc(42);
    arp.fill(0xff, 0, 6);
    arp.writeUInt16BE(0x0806, 12);
    const ipv6 = Buffer.alloc(54);
    ipv6.writeUInt16BE(0x86dd, 12);
    ipv6[14] = 0x60;
    for (const [what, frame] of [['ARP', arp], ['IPv6', ipv6]] as const) {
      const before = counter('DROP_ETHERTYPE');
      assert.equal(exec('overlayIngress', frame).retval, TC_ACT_SHOT, what);
      assert.equal(counter('DROP_ETHERTYPE'), before + 1n, what);
    }
  });

  test(`IP fragments for a local pod ${set === 'conntrack' ? 'go up the host stack (where conntrack reassembles and un-translates them)' : 'are delivered like whole datagrams (no conntrack to hand them to)'} on every path`, () => {
    const frag = { offset: 0, more: true };
    const remote = { src: '10.244.2.2', dst: POD1.ip, proto: PROTO.UDP, sport: 53, dport: 40000 } as const;
    const local = { ...remote, src: POD2.ip };
    const later = (spec: PacketSpec) => packet({ ...spec, frag: { offset: 1480, more: false }, rawL4: Buffer.alloc(64) });
    const outer = { src: '192.0.2.12', dst: NODE_IP, vni: 1 };
    const cases: [keyof typeof Programs, (p: Buffer) => Buffer, PacketSpec][] = [
      ['uplinkIngress', (p) => vxlanPacket(outer, p), remote],
      ['overlayIngress', (p) => p, remote],
      ['pod', (p) => p, local],
    ];
    for (const [slot, wrap, spec] of cases) {
      // Control: the whole datagram goes straight to the pod.
      assert.equal(exec(slot, wrap(packet(spec))).retval, TC_ACT_REDIRECT, `${slot}: unfragmented`);
      for (const [what, pkt] of [['first fragment', wrap(packet({ ...spec, frag }))], ['later fragment', wrap(later(spec))]] as const) {
        const r = exec(slot, pkt);
        if (set === 'conntrack') {
          assert.equal(r.retval, TC_ACT_OK, `${slot}: ${what}`);
          assert.deepEqual(r.out, pkt, `${slot}: ${what} unchanged`);
        } else {
          // Proves this build asks no conntrack (the conntrack set hands these up): and loads without it.
          assert.equal(r.retval, TC_ACT_REDIRECT, `${slot}: ${what}`);
        }
      }
    }
    // Only fragments for a pod: the host must not reassemble one for its gateway (it could be VXLAN for its socket).
    const before = counter('DROP_NO_ENDPOINT');
    const toGateway = packet({ ...remote, dst: '10.244.1.1', dport: 8472, frag });
    assert.equal(exec('overlayIngress', toGateway).retval, TC_ACT_SHOT);
    assert.equal(counter('DROP_NO_ENDPOINT'), before + 1n);
  });

  test(`SCTP for a local pod ${set === 'conntrack' ? 'goes up the host stack (conntrack may have translated it: a ClusterIP Service; the kfunc cannot be asked about SCTP)' : 'is delivered (no conntrack to hand it to)'} on every path; SCTP for the gateway is still DROP_NO_ENDPOINT`, () => {
    // Common header (ports, verification tag, checksum) and an INIT chunk's first bytes: the programs read the ports only.
    const sctp = Buffer.from([0x9c, 0x40, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 20, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1]);
    const remote = { src: '10.244.2.2', dst: POD1.ip, proto: 132, rawL4: sctp } as const;
    const local = { ...remote, src: POD2.ip };
    const outer = { src: '192.0.2.12', dst: NODE_IP, vni: 1 };
    const cases: [keyof typeof Programs, (p: Buffer) => Buffer, PacketSpec][] = [
      ['uplinkIngress', (p) => vxlanPacket(outer, p), remote],
      ['overlayIngress', (p) => p, remote],
      ['pod', (p) => p, local],
    ];
    for (const [slot, wrap, spec] of cases) {
      // Control: TCP between the same addresses goes straight to the pod on this path.
      assert.equal(exec(slot, wrap(packet({ ...spec, proto: PROTO.TCP, rawL4: undefined, sport: 40000, dport: 80 }))).retval, TC_ACT_REDIRECT, `${slot}: TCP`);
      const pkt = wrap(packet(spec));
      const r = exec(slot, pkt);
      if (set === 'conntrack') {
        assert.equal(r.retval, TC_ACT_OK, `${slot}: SCTP up the stack`);
        assert.deepEqual(r.out, pkt, `${slot}: SCTP unchanged`);
      } else assert.equal(r.retval, TC_ACT_REDIRECT, `${slot}: SCTP delivered`);
    }
    const before = counter('DROP_NO_ENDPOINT');
    assert.equal(exec('overlayIngress', packet({ ...remote, dst: '10.244.1.1' })).retval, TC_ACT_SHOT);
    assert.equal(counter('DROP_NO_ENDPOINT'), before + 1n);
  });

  test('hostPort: the uplink DNATs a mapped node port to the pod (client source kept, checksums valid); the reply leaves from the hostPort; an unmapped port passes untouched', () => {
    using hp = openHostportMap(PIN);
    const key = { host_ip: '0.0.0.0', port: 8080, proto: PROTO.TCP };
    hp.update(key, { pod_ip: POD1.ip, pod_port: 80, owner: 1n });
    // Replies are looked at only for pods that own a hostPort.
    setPod1(EndpointFlags.pod | EndpointFlags.hostport);
    try {
      const syn = packet({ src: INET, dst: NODE_IP, proto: PROTO.TCP, sport: 40100, dport: 8080, tcpFlags: 0x02, ttl: 64 });
      const r = exec('uplinkIngress', syn);
      assert.equal(r.retval, TC_ACT_REDIRECT);
      const d = parse(r.out);
      assert.deepEqual([d.src, d.sport, d.dst, d.dport, d.ttl], [INET, 40100, POD1.ip, 80, 63]);
      assert.deepEqual([d.dstMac, d.srcMac], [POD1.mac, GW_MAC]);
      assert.ok(d.ipCsumOk && d.l4CsumOk, 'checksums after DNAT');

      const synack = packet({ src: POD1.ip, dst: INET, proto: PROTO.TCP, sport: 80, dport: 40100, tcpFlags: 0x12, ttl: 64 });
      const back = exec('pod', synack);
      assert.equal(back.retval, TC_ACT_REDIRECT);
      const b = parse(back.out);
      assert.deepEqual([b.src, b.sport, b.dst, b.dport], [NODE_IP, 8080, INET, 40100], 'from the hostPort, not masqueraded');
      assert.equal(b.dstMac, ROUTER_MAC);
      assert.ok(b.ipCsumOk && b.l4CsumOk, 'checksums after the reverse translation');

      // The same port answering a client that came to the pod directly (no flow) is masqueraded as any pod traffic.
      const other = parse(exec('pod', packet({ src: POD1.ip, dst: INET, proto: PROTO.TCP, sport: 80, dport: 40101, tcpFlags: 0x12 })).out);
      assert.equal(other.src, NODE_IP);
      assert.ok(other.sport >= NAT_MIN && other.sport <= NAT_MAX, `masqueraded port ${other.sport}`);

      // UDP too, with its checksum.
      hp.update({ ...key, proto: PROTO.UDP }, { pod_ip: POD1.ip, pod_port: 53, owner: 1n });
      const u = parse(exec('uplinkIngress', packet({ src: INET, dst: NODE_IP, proto: PROTO.UDP, sport: 5000, dport: 8080 })).out);
      assert.deepEqual([u.dst, u.dport, u.src, u.sport], [POD1.ip, 53, INET, 5000]);
      assert.ok(u.l4CsumOk, 'UDP checksum after DNAT');
      const ur = parse(exec('pod', packet({ src: POD1.ip, dst: INET, proto: PROTO.UDP, sport: 53, dport: 5000 })).out);
      assert.deepEqual([ur.src, ur.sport], [NODE_IP, 8080]);
      assert.ok(ur.l4CsumOk, 'UDP checksum after the reverse translation');

      // Unmapped: another port, another protocol, another address: the host's.
      for (const pkt of [
        packet({ src: INET, dst: NODE_IP, proto: PROTO.TCP, sport: 40100, dport: 8081 }),
        packet({ src: INET, dst: '192.0.2.99', proto: PROTO.TCP, sport: 40100, dport: 8080 }),
      ]) {
        const x = exec('uplinkIngress', pkt);
        assert.equal(x.retval, TC_ACT_OK);
        assert.deepEqual(x.out, pkt);
      }

      // Once the mapping is gone (DEL), neither direction is translated.
      hp.delete(key);
      const gone = exec('uplinkIngress', syn);
      assert.equal(gone.retval, TC_ACT_OK);
      assert.deepEqual(gone.out, syn);
      const late = parse(exec('pod', synack).out);
      assert.notEqual(late.sport, 8080, 'a stale flow entry translates nothing');
    } finally {
      hp.delete(key);
      hp.delete({ ...key, proto: PROTO.UDP });
      setPod1(EndpointFlags.pod);
    }
  });

  test('hostPort: a SYN-ACK to a client outside the cluster offers the uplink\'s MSS (pod MTU − 40 + the VXLAN overhead), checksum valid; a lowered MSS, a pod client and a masqueraded flow keep theirs', () => {
    using hp = openHostportMap(PIN);
    const key = { host_ip: '0.0.0.0', port: 8083, proto: PROTO.TCP };
    hp.update(key, { pod_ip: POD1.ip, pod_port: 80, owner: 1n });
    setPod1(EndpointFlags.pod | EndpointFlags.hostport);
    const podMss = 1450 - 40; // the config's pod MTU
    try {
      for (const sport of [40200, 40201]) {
        const syn = exec('uplinkIngress', packet({ src: INET, dst: NODE_IP, proto: PROTO.TCP, sport, dport: 8083, tcpFlags: 0x02, tcpMss: 1460 }));
        assert.equal(syn.retval, TC_ACT_REDIRECT);
        assert.equal(parse(syn.out).tcpMss, 1460, "the client's SYN is not touched");
      }
      const synack = (dport: number, tcpMss: number, dst = INET) =>
        parse(exec('pod', packet({ src: POD1.ip, dst, proto: PROTO.TCP, sport: 80, dport, tcpFlags: 0x12, tcpMss })).out);

      const b = synack(40200, podMss);
      assert.deepEqual([b.src, b.sport, b.dst, b.dport], [NODE_IP, 8083, INET, 40200], 'the hostPort reply');
      assert.equal(b.tcpMss, podMss + 50);
      assert.ok(b.ipCsumOk && b.l4CsumOk, 'checksums after the MSS and the translation');

      // Controls, each through the path it names (the translation shows it got there):
      // an MSS the application lowered,
      const low = synack(40201, 1200);
      assert.deepEqual([low.src, low.sport, low.tcpMss], [NODE_IP, 8083, 1200]);
      assert.ok(low.l4CsumOk);
      // a flow the hostPort does not know (masqueraded as any pod traffic),
      const m = synack(40202, podMss);
      assert.equal(m.src, NODE_IP);
      assert.ok(m.sport >= NAT_MIN && m.sport <= NAT_MAX, `masqueraded port ${m.sport}`);
      assert.equal(m.tcpMss, podMss);
      // and a pod client (its segments may come through the overlay).
      assert.equal(exec('pod', packet({ src: POD2.ip, dst: NODE_IP, proto: PROTO.TCP, sport: 40300, dport: 8083, tcpFlags: 0x02, tcpMss: podMss })).retval, TC_ACT_REDIRECT);
      const p = synack(40300, podMss, POD2.ip);
      assert.deepEqual([p.src, p.sport, p.tcpMss], [NODE_IP, 8083, podMss]);
      assert.ok(p.l4CsumOk);
    } finally {
      hp.delete(key);
      setPod1(EndpointFlags.pod);
    }
  });

  test('hostPort and the masquerade rewrite packets with IP options too (their port outside the fixed header window), and what would expire is DROP_TTL', () => {
    using hp = openHostportMap(PIN);
    const key = { host_ip: '0.0.0.0', port: 8082, proto: PROTO.TCP };
    hp.update(key, { pod_ip: POD1.ip, pod_port: 82, owner: 3n });
    setPod1(EndpointFlags.pod | EndpointFlags.hostport);
    const ipOptions = Buffer.from([1, 1, 1, 0]); // NOP NOP NOP EOL: the ports move 4 bytes
    try {
      for (const opts of [{}, { ipOptions }]) {
        const what = 'ipOptions' in opts ? 'with IP options' : 'without';
        const inb = exec('uplinkIngress', packet({ src: INET, dst: NODE_IP, proto: PROTO.TCP, sport: 40200, dport: 8082, tcpFlags: 0x02, ttl: 64, ...opts }));
        assert.equal(inb.retval, TC_ACT_REDIRECT, what);
        const d = parse(inb.out);
        assert.deepEqual([d.src, d.sport, d.dst, d.dport, d.ttl], [INET, 40200, POD1.ip, 82, 63], what);
        assert.ok(d.ipCsumOk && d.l4CsumOk, `checksums after DNAT, ${what}`);
        const back = exec('pod', packet({ src: POD1.ip, dst: INET, proto: PROTO.TCP, sport: 82, dport: 40200, tcpFlags: 0x12, ttl: 64, ...opts }));
        assert.equal(back.retval, TC_ACT_REDIRECT, what);
        const b = parse(back.out);
        assert.deepEqual([b.src, b.sport, b.dst, b.dport, b.ttl], [NODE_IP, 8082, INET, 40200, 63], what);
        assert.ok(b.ipCsumOk && b.l4CsumOk, `checksums after the reverse translation, ${what}`);
        const masq = exec('pod', packet({ src: POD2.ip, dst: INET, proto: PROTO.UDP, sport: 5353, dport: 53, ttl: 64, ...opts }));
        assert.equal(masq.retval, TC_ACT_REDIRECT, what);
        const m = parse(masq.out);
        assert.equal(m.src, NODE_IP, what);
        assert.ok(m.sport >= NAT_MIN && m.sport <= NAT_MAX, `masqueraded port ${m.sport}, ${what}`);
        assert.ok(m.ipCsumOk && m.l4CsumOk, `checksums after the masquerade, ${what}`);
      }
      // TTL: routed on with 1 left, dropped with 1 (the control proves the first passes the same path).
      const before = counter('DROP_TTL');
      const two = exec('uplinkIngress', packet({ src: INET, dst: NODE_IP, proto: PROTO.TCP, sport: 40201, dport: 8082, tcpFlags: 0x02, ttl: 2 }));
      assert.equal(two.retval, TC_ACT_REDIRECT);
      assert.equal(parse(two.out).ttl, 1);
      assert.equal(exec('uplinkIngress', packet({ src: INET, dst: NODE_IP, proto: PROTO.TCP, sport: 40201, dport: 8082, tcpFlags: 0x02, ttl: 1 })).retval, TC_ACT_SHOT);
      assert.equal(exec('pod', packet({ src: POD1.ip, dst: INET, proto: PROTO.TCP, sport: 82, dport: 40201, tcpFlags: 0x12, ttl: 1 })).retval, TC_ACT_SHOT);
      assert.equal(counter('DROP_TTL'), before + 2n);
    } finally {
      hp.delete(key);
      setPod1(EndpointFlags.pod);
    }
  });

  test('hostPort: a mapping whose pod has no endpoint is DROP_HOSTPORT_NO_POD; a first fragment for a mapped port is DROP_HOSTPORT_FAILED', () => {
    using hp = openHostportMap(PIN);
    const key = { host_ip: NODE_IP, port: 8090, proto: PROTO.TCP };
    hp.update(key, { pod_ip: '10.244.1.77', pod_port: 80, owner: 2n });
    try {
      const before = counter('DROP_HOSTPORT_NO_POD');
      assert.equal(exec('uplinkIngress', packet({ src: INET, dst: NODE_IP, proto: PROTO.TCP, sport: 1, dport: 8090 })).retval, TC_ACT_SHOT);
      assert.equal(counter('DROP_HOSTPORT_NO_POD'), before + 1n);
      hp.update(key, { pod_ip: POD1.ip, pod_port: 80, owner: 2n });
      // The control: with the pod's endpoint the same packet is delivered (an exact host IP mapping).
      assert.equal(exec('uplinkIngress', packet({ src: INET, dst: NODE_IP, proto: PROTO.TCP, sport: 1, dport: 8090 })).retval, TC_ACT_REDIRECT);
      const failed = counter('DROP_HOSTPORT_FAILED');
      const frag = packet({ src: INET, dst: NODE_IP, proto: PROTO.TCP, sport: 1, dport: 8090, frag: { offset: 0, more: true } });
      assert.equal(exec('uplinkIngress', frag).retval, TC_ACT_SHOT);
      assert.equal(counter('DROP_HOSTPORT_FAILED'), failed + 1n);
    } finally {
      hp.delete(key);
    }
  });
});
