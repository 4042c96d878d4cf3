// Crafting and checking IPv4 packets for BPF_PROG_TEST_RUN tests: Ethernet +
// IPv4 + TCP/UDP/ICMP with correct checksums, and a parser that verifies them.
import { ipv4ToInt, intToIpv4, macToBuffer, bufferToMac } from '../../loader/codec.js';

export const PROTO = { ICMP: 1, TCP: 6, UDP: 17 } as const;
/** The tc verdicts a program returns (linux/pkt_cls.h). */
export const TC_ACT_OK = 0;
export const TC_ACT_SHOT = 2;
export const TC_ACT_REDIRECT = 7;

function sum16(buf: Buffer, initial = 0): number {
  let s = initial;
  for (let i = 0; i + 1 < buf.length; i += 2) s += buf.readUInt16BE(i);
  if (buf.length % 2) s += buf[buf.length - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

export function checksum(buf: Buffer, initial = 0): number {
  return ~sum16(buf, initial) & 0xffff;
}

function pseudo(src: string, dst: string, proto: number, len: number): number {
  const p = Buffer.alloc(12);
  p.writeUInt32BE(ipv4ToInt(src), 0);
  p.writeUInt32BE(ipv4ToInt(dst), 4);
  p[9] = proto;
  p.writeUInt16BE(len, 10);
  return sum16(p);
}

export interface L4 {
  proto: number;
  sport?: number; // TCP/UDP
  dport?: number;
  tcpFlags?: number;
  /** TCP: an MSS option (kind 2), the header's only one, as Linux puts it first. */
  tcpMss?: number;
  icmpType?: number;
  icmpCode?: number;
  icmpId?: number;
  icmpSeq?: number;
  /** ICMP errors: the quoted bytes (an IP header and what follows). */
  payload?: Buffer;
}

export interface PacketSpec extends L4 {
  srcMac?: string;
  dstMac?: string;
  src: string;
  dst: string;
  ttl?: number;
  df?: boolean;
  /** The TOS byte (ECN in its low two bits). */
  tos?: number;
  /** A fragment: its offset in bytes (a multiple of 8) and whether more follow (DF is then clear). */
  frag?: { offset: number; more: boolean };
  /** IP options (a multiple of 4 bytes): the header grows past 20 bytes. */
  ipOptions?: Buffer;
  /** The bytes after the IP header as given, instead of a segment built from the fields above. */
  rawL4?: Buffer;
}

/** The L4 segment with its checksum filled in. */
export function l4Segment(spec: PacketSpec): Buffer {
  const payload = spec.payload ?? Buffer.from('bvcni-test-payload');
  let seg: Buffer;
  if (spec.proto === PROTO.TCP) {
    const hlen = spec.tcpMss === undefined ? 20 : 24;
    seg = Buffer.concat([Buffer.alloc(hlen), payload]);
    seg.writeUInt16BE(spec.sport ?? 0, 0);
    seg.writeUInt16BE(spec.dport ?? 0, 2);
    seg.writeUInt32BE(1000, 4);
    seg[12] = (hlen / 4) << 4;
    if (spec.tcpMss !== undefined) {
      seg[20] = 2;
      seg[21] = 4;
      seg.writeUInt16BE(spec.tcpMss, 22);
    }
    seg[13] = spec.tcpFlags ?? 0x02;
    seg.writeUInt16BE(65535, 14);
    seg.writeUInt16BE(checksum(seg, pseudo(spec.src, spec.dst, PROTO.TCP, seg.length)), 16);
  } else if (spec.proto === PROTO.UDP) {
    seg = Buffer.concat([Buffer.alloc(8), payload]);
    seg.writeUInt16BE(spec.sport ?? 0, 0);
    seg.writeUInt16BE(spec.dport ?? 0, 2);
    seg.writeUInt16BE(seg.length, 4);
    seg.writeUInt16BE(checksum(seg, pseudo(spec.src, spec.dst, PROTO.UDP, seg.length)) || 0xffff, 6);
  } else {
    seg = Buffer.concat([Buffer.alloc(8), payload]);
    seg[0] = spec.icmpType ?? 8;
    seg[1] = spec.icmpCode ?? 0;
    seg.writeUInt16BE(spec.icmpId ?? 0, 4);
    seg.writeUInt16BE(spec.icmpSeq ?? 1, 6);
    seg.writeUInt16BE(checksum(seg), 2);
  }
  return seg;
}

export function ipPacket(spec: PacketSpec): Buffer {
  const seg = spec.rawL4 ?? l4Segment(spec);
  const options = spec.ipOptions ?? Buffer.alloc(0);
  if (options.length % 4) throw new RangeError(`IP options must be a multiple of 4 bytes: ${options.length}`);
  const ip = Buffer.concat([Buffer.alloc(20), options]);
  ip[0] = 0x40 | (ip.length / 4);
  ip[1] = spec.tos ?? 0;
  ip.writeUInt16BE(ip.length + seg.length, 2);
  ip.writeUInt16BE(0x1234, 4);
  if (spec.frag) {
    if (spec.frag.offset % 8) throw new RangeError(`fragment offset must be a multiple of 8: ${spec.frag.offset}`);
    ip.writeUInt16BE((spec.frag.more ? 0x2000 : 0) | (spec.frag.offset / 8), 6);
  } else ip.writeUInt16BE(spec.df === false ? 0 : 0x4000, 6);
  ip[8] = spec.ttl ?? 64;
  ip[9] = spec.proto;
  ip.writeUInt32BE(ipv4ToInt(spec.src), 12);
  ip.writeUInt32BE(ipv4ToInt(spec.dst), 16);
  ip.writeUInt16BE(checksum(ip), 10);
  return Buffer.concat([ip, seg]);
}

/**
 * The MAC a pod with this address has in these tests: 0a:58 and the address, as CNI plugins
 * commonly derive it. A frame from a pod carries it unless the spec says otherwise, so a
 * test registers the pod's endpoint with macOf(ip) and its frames pass the source MAC check.
 */
export function macOf(ip: string): string {
  return ['0a', '58', ...ip.split('.').map((o) => Number(o).toString(16).padStart(2, '0'))].join(':');
}

export const ETH_P = { IP: 0x0800, ARP: 0x0806, RARP: 0x8035, VLAN: 0x8100, QINQ: 0x88a8, IPV6: 0x86dd } as const;

/** An Ethernet frame around any payload. */
export function ethFrame(type: number, payload: Buffer, srcMac: string, dstMac = 'ff:ff:ff:ff:ff:ff'): Buffer {
  const eth = Buffer.alloc(14);
  macToBuffer(dstMac).copy(eth, 0);
  macToBuffer(srcMac).copy(eth, 6);
  eth.writeUInt16BE(type, 12);
  return Buffer.concat([eth, payload]);
}

export function packet(spec: PacketSpec): Buffer {
  return ethFrame(ETH_P.IP, ipPacket(spec), spec.srcMac ?? macOf(spec.src), spec.dstMac ?? '02:00:00:00:00:aa');
}

/** The same frame with an 802.1Q tag (in band) after the MACs. */
export function vlanTagged(frame: Buffer, vid: number, tpid: number = ETH_P.VLAN): Buffer {
  const tag = Buffer.alloc(4);
  tag.writeUInt16BE(tpid, 0);
  tag.writeUInt16BE(vid & 0xfff, 2);
  return Buffer.concat([frame.subarray(0, 12), tag, frame.subarray(12)]);
}

export interface ArpSpec {
  op: 1 | 2 | number;
  /** Sender: the hardware address defaults to the Ethernet source. */
  sip: string;
  sha?: string;
  tip: string;
  tha?: string;
  /** Ethernet source and destination (broadcast by default). */
  srcMac: string;
  dstMac?: string;
  /** Malformations: hardware type, protocol type, address lengths. */
  hrd?: number;
  pro?: number;
  hln?: number;
  pln?: number;
  /** EtherType of the frame (0x0806; 0x8035 makes it RARP). */
  type?: number;
}

/** An Ethernet/IPv4 ARP frame (28-byte body, padded to the 60-byte minimum as a NIC would). */
export function arpFrame(a: ArpSpec): Buffer {
  const body = Buffer.alloc(46);
  body.writeUInt16BE(a.hrd ?? 1, 0);
  body.writeUInt16BE(a.pro ?? ETH_P.IP, 2);
  body[4] = a.hln ?? 6;
  body[5] = a.pln ?? 4;
  body.writeUInt16BE(a.op, 6);
  macToBuffer(a.sha ?? a.srcMac).copy(body, 8);
  body.writeUInt32BE(ipv4ToInt(a.sip), 14);
  macToBuffer(a.tha ?? '00:00:00:00:00:00').copy(body, 18);
  body.writeUInt32BE(ipv4ToInt(a.tip), 24);
  return ethFrame(a.type ?? ETH_P.ARP, body, a.srcMac, a.dstMac);
}

export interface Parsed {
  dstMac: string;
  srcMac: string;
  src: string;
  dst: string;
  ttl: number;
  proto: number;
  sport: number;
  dport: number;
  icmpType: number;
  icmpId: number;
  tcpFlags: number;
  /** TCP: the MSS option's value when it comes first among the options; -1 without one. */
  tcpMss: number;
  ipCsumOk: boolean;
  l4CsumOk: boolean;
  /** ICMP: everything after the 8-byte header. */
  icmpBody: Buffer;
}

/** Parses an IPv4 header at `at` (no Ethernet) and checks its checksums. */
export function parseIp(buf: Buffer, at = 0): Omit<Parsed, 'dstMac' | 'srcMac'> {
  const ihl = (buf[at]! & 0x0f) * 4;
  const total = buf.readUInt16BE(at + 2);
  const ip = buf.subarray(at, at + ihl);
  const seg = buf.subarray(at + ihl, at + total);
  const proto = buf[at + 9]!;
  const src = intToIpv4(buf.readUInt32BE(at + 12));
  const dst = intToIpv4(buf.readUInt32BE(at + 16));
  let l4CsumOk: boolean;
  if (proto === PROTO.ICMP) l4CsumOk = checksum(seg) === 0;
  else if (proto === PROTO.UDP && seg.readUInt16BE(6) === 0) l4CsumOk = true;
  else l4CsumOk = checksum(seg, pseudo(src, dst, proto, seg.length)) === 0;
  return {
    src,
    dst,
    ttl: buf[at + 8]!,
    proto,
    sport: proto === PROTO.ICMP ? 0 : seg.readUInt16BE(0),
    dport: proto === PROTO.ICMP ? 0 : seg.readUInt16BE(2),
    icmpType: proto === PROTO.ICMP ? seg[0]! : -1,
    icmpId: proto === PROTO.ICMP ? seg.readUInt16BE(4) : -1,
    tcpFlags: proto === PROTO.TCP ? seg[13]! : 0,
    tcpMss: proto === PROTO.TCP && seg[12]! >> 4 >= 6 && seg[20] === 2 && seg[21] === 4 ? seg.readUInt16BE(22) : -1,
    ipCsumOk: checksum(ip) === 0,
    l4CsumOk,
    icmpBody: proto === PROTO.ICMP ? seg.subarray(8) : Buffer.alloc(0),
  };
}

export function parse(frame: Buffer): Parsed {
  return {
    dstMac: bufferToMac(frame.subarray(0, 6)),
    srcMac: bufferToMac(frame.subarray(6, 12)),
    ...parseIp(frame, 14),
  };
}

export interface VxlanSpec {
  src: string;
  dst: string;
  vni: number;
  port?: number;
  /** The outer TOS byte (ECN in its low two bits). */
  tos?: number;
}

export interface VxlanParsed {
  outer: Omit<Parsed, 'dstMac' | 'srcMac'>;
  tos: number;
  df: boolean;
  ipTotalLength: number;
  udpLength: number;
  udpChecksum: number;
  vxlanFlags: number;
  vni: number;
  /** The encapsulated Ethernet frame. */
  inner: Buffer;
}

/** Takes a VXLAN frame apart (outer Ethernet + IPv4 without options + UDP + VXLAN). */
export function parseVxlan(frame: Buffer): VxlanParsed {
  return {
    outer: parseIp(frame, 14),
    tos: frame[15]!,
    df: (frame.readUInt16BE(20) & 0x4000) !== 0,
    ipTotalLength: frame.readUInt16BE(16),
    udpLength: frame.readUInt16BE(38),
    udpChecksum: frame.readUInt16BE(40),
    vxlanFlags: frame[42]!,
    vni: frame.readUIntBE(46, 3),
    inner: frame.subarray(50),
  };
}

/** A UDP payload for a VXLAN socket: the VXLAN header (VNI valid) and the encapsulated Ethernet frame. */
export function vxlanPayload(vni: number, inner: Buffer): Buffer {
  const vx = Buffer.alloc(8);
  vx[0] = 0x08;
  vx.writeUIntBE(vni, 4, 3);
  return Buffer.concat([vx, inner]);
}

/** An Ethernet frame wrapped in outer Ethernet + IPv4 + UDP (checksum 0, as VXLAN senders do) + VXLAN. */
export function vxlanPacket(outer: VxlanSpec, inner: Buffer): Buffer {
  const vx = vxlanPayload(outer.vni, Buffer.alloc(0));
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(40000, 0);
  udp.writeUInt16BE(outer.port ?? 8472, 2);
  udp.writeUInt16BE(8 + vx.length + inner.length, 4);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip[1] = outer.tos ?? 0;
  ip.writeUInt16BE(20 + udp.length + vx.length + inner.length, 2);
  ip[8] = 64;
  ip[9] = PROTO.UDP;
  ip.writeUInt32BE(ipv4ToInt(outer.src), 12);
  ip.writeUInt32BE(ipv4ToInt(outer.dst), 16);
  ip.writeUInt16BE(checksum(ip), 10);
  const eth = Buffer.alloc(14);
  eth.writeUInt16BE(0x0800, 12);
  return Buffer.concat([eth, ip, udp, vx, inner]);
}
