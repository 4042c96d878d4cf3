// Link, address and route operations over one NetlinkSocket.
import { bufferToMac, intToIpv4, ipv4ToInt, macToBuffer } from '../../loader/codec.js';
import {
  AF_BRIDGE,
  AF_INET,
  AF_INET6,
  IFLA_INET6_ADDR_GEN_MODE,
  IN6_ADDR_GEN_MODE_NONE,
  IFA_ADDRESS,
  IFA_LOCAL,
  IFF_UP,
  IFLA,
  IFLA_INFO_DATA,
  IFLA_BRPORT,
  IFLA_INFO_KIND,
  IFLA_INFO_SLAVE_DATA,
  IFLA_INFO_SLAVE_KIND,
  NDA_LLADDR,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  NTF_MASTER,
  NTF_STICKY,
  NUD_NOARP,
  RT_SCOPE_UNIVERSE,
  RT_TABLE_MAIN,
  RTA,
  RTM,
  VETH_INFO_PEER,
  attr,
  decodeAttrs,
  encodeAttrs,
  ifaddrmsg,
  ifinfomsg,
  ipBytes,
  ndmsg,
  rtmsg,
  type Attr,
} from './message.js';
import { NetlinkError, NetlinkSocket } from './socket.js';
import { Errno } from '../../loader/errors.js';

export interface Link {
  index: number;
  name: string;
  mtu: number;
  mac: string;
  up: boolean;
  master: number;
  kind?: string;
  /** When the link is a bridge port: its learning and unicast flooding. */
  bridgePort?: { learning: boolean; unicastFlood: boolean };
}

export interface Addr {
  index: number;
  ip: string;
  prefix: number;
}

export interface Route {
  dst: string;
  dstLen: number;
  gw?: string;
  oif?: number;
  table: number;
}

const { ENODEV, ESRCH, ENOENT, EAFNOSUPPORT, EOPNOTSUPP } = Errno;

function parseLink(body: Buffer): Link {
  const a = decodeAttrs(body, 16);
  const str = (t: number): string => (a.get(t)?.toString('utf8') ?? '').replace(/\0.*$/s, '');
  let kind: string | undefined;
  let bridgePort: Link['bridgePort'];
  const info = a.get(IFLA.LINKINFO);
  if (info) {
    const li = decodeAttrs(info);
    kind = li.get(IFLA_INFO_KIND)?.toString('utf8').replace(/\0.*$/s, '');
    const slaveData = li.get(IFLA_INFO_SLAVE_DATA);
    if (slaveData && li.get(IFLA_INFO_SLAVE_KIND)?.toString('utf8').replace(/\0.*$/s, '') === 'bridge') {
      const bp = decodeAttrs(slaveData);
      bridgePort = { learning: bp.get(IFLA_BRPORT.LEARNING)?.[0] === 1, unicastFlood: bp.get(IFLA_BRPORT.UNICAST_FLOOD)?.[0] === 1 };
    }
  }
  const mac = a.get(IFLA.ADDRESS);
  return {
    index: body.readInt32LE(4),
    name: str(IFLA.IFNAME),
    mtu: a.get(IFLA.MTU)?.readUInt32LE(0) ?? 0,
    mac: mac && mac.length === 6 ? bufferToMac(mac) : '',
    up: (body.readUInt32LE(8) & IFF_UP) !== 0,
    master: a.get(IFLA.MASTER)?.readUInt32LE(0) ?? 0,
    kind,
    ...(bridgePort ? { bridgePort } : {}),
  };
}

function isGone(e: unknown): boolean {
  return e instanceof NetlinkError && (e.errno === ENODEV || e.errno === ENOENT || e.errno === ESRCH);
}

export function getLink(s: NetlinkSocket, name: string): Link | undefined {
  try {
    const r = s.get(`get link ${name}`, RTM.GETLINK, Buffer.concat([ifinfomsg(), encode([attr.str(IFLA.IFNAME, name)])]), false);
    return r[0] ? parseLink(r[0].body) : undefined;
  } catch (e) {
    if (isGone(e)) return undefined;
    throw e;
  }
}

export function getLinkByIndex(s: NetlinkSocket, index: number): Link | undefined {
  try {
    const r = s.get(`get link #${index}`, RTM.GETLINK, ifinfomsg({ index }), false);
    return r[0] ? parseLink(r[0].body) : undefined;
  } catch (e) {
    if (isGone(e)) return undefined;
    throw e;
  }
}

export function listLinks(s: NetlinkSocket): Link[] {
  return s.get('list links', RTM.GETLINK, ifinfomsg(), true).map((m) => parseLink(m.body));
}

const encode = (attrs: Attr[]): Buffer => encodeAttrs(attrs);

export function createBridge(s: NetlinkSocket, o: { name: string; mtu: number; mac: string }): void {
  const attrs: Attr[] = [
    attr.str(IFLA.IFNAME, o.name),
    attr.u32(IFLA.MTU, o.mtu),
    // A fixed address: a bridge otherwise takes the lowest port's MAC, which
    // changes as pods come and go and would stale the gateway MAC pods cached.
    attr.bytes(IFLA.ADDRESS, macToBuffer(o.mac)),
    attr.nested(IFLA.LINKINFO, [attr.str(IFLA_INFO_KIND, 'bridge')]),
  ];
  s.request(`create bridge ${o.name}`, RTM.NEWLINK, NLM_F_CREATE | NLM_F_EXCL, Buffer.concat([ifinfomsg({ flags: IFF_UP, change: IFF_UP }), encode(attrs)]));
}

export interface VethSpec {
  hostName: string;
  podName: string;
  /** fd of the pod's network namespace: the peer is created directly inside it. */
  podNsFd: number;
  podMac: string;
  mtu: number;
  master: number;
}

/** Creates both ends in one message, so a crash cannot leave half a pair. */
export function createVeth(s: NetlinkSocket, v: VethSpec): void {
  // The peer cannot be brought up in this message: it is configured before
  // the pair is linked, and opening a veth without its peer fails (ENOTCONN).
  const peer = Buffer.concat([
    ifinfomsg(),
    encode([
      attr.str(IFLA.IFNAME, v.podName),
      attr.u32(IFLA.MTU, v.mtu),
      attr.bytes(IFLA.ADDRESS, macToBuffer(v.podMac)),
      attr.u32(IFLA.NET_NS_FD, v.podNsFd),
    ]),
  ]);
  const attrs: Attr[] = [
    attr.str(IFLA.IFNAME, v.hostName),
    attr.u32(IFLA.MTU, v.mtu),
    attr.u32(IFLA.MASTER, v.master),
    attr.nested(IFLA.LINKINFO, [attr.str(IFLA_INFO_KIND, 'veth'), attr.nested(IFLA_INFO_DATA, [attr.bytes(VETH_INFO_PEER, peer)])]),
  ];
  s.request(
    `create veth ${v.hostName}`,
    RTM.NEWLINK,
    NLM_F_CREATE | NLM_F_EXCL,
    Buffer.concat([ifinfomsg({ flags: IFF_UP, change: IFF_UP }), encode(attrs)]),
  );
}

/** Deletes a link by name; false when it does not exist. */
export function deleteLink(s: NetlinkSocket, name: string): boolean {
  try {
    s.request(`delete link ${name}`, RTM.DELLINK, 0, Buffer.concat([ifinfomsg(), encode([attr.str(IFLA.IFNAME, name)])]));
    return true;
  } catch (e) {
    if (isGone(e)) return false;
    throw e;
  }
}

/**
 * Deletes a link by index with the kernel's slow part (deleting a veth waits
 * for RCU, 15-25 ms here) off the event loop. By index, not name: a link
 * created later under the same name is never the one deleted. Resolves false
 * when it was already gone.
 */
export async function deleteLinkIndexAsync(index: number): Promise<boolean> {
  const s = new NetlinkSocket();
  try {
    await s.requestAsync(`delete link #${index}`, RTM.DELLINK, 0, ifinfomsg({ index }));
    return true;
  } catch (e) {
    if (isGone(e)) return false;
    throw e;
  } finally {
    s.close();
  }
}

export function setLinkUp(s: NetlinkSocket, index: number): void {
  s.request(`set link #${index} up`, RTM.NEWLINK, 0, ifinfomsg({ index, flags: IFF_UP, change: IFF_UP }));
}

/**
 * No IPv6 address on the link, not even a link-local one, so it sends no
 * router solicitation, duplicate address detection or MLD report: a pod's
 * IPv6 is dropped at its veth until the cluster is dual-stack (bpf/lib/l2.h),
 * and would only be noise under DROP_ETHERTYPE. Before the link goes up (the
 * link-local address is made then). A kernel without IPv6 has nothing to stop.
 */
export function disableIpv6Addresses(s: NetlinkSocket, index: number): void {
  const mode = { type: IFLA_INET6_ADDR_GEN_MODE, data: Buffer.from([IN6_ADDR_GEN_MODE_NONE]) };
  try {
    s.request(`set link #${index} addrgenmode none`, RTM.NEWLINK, 0, Buffer.concat([ifinfomsg({ index }), encode([attr.nested(IFLA.AF_SPEC, [attr.nested(AF_INET6, [mode])])])]));
  } catch (e) {
    if (!(e instanceof NetlinkError && (e.errno === EAFNOSUPPORT || e.errno === EOPNOTSUPP))) throw e;
  }
}

export function setLinkMtu(s: NetlinkSocket, index: number, mtu: number): void {
  s.request(`set link #${index} mtu ${mtu}`, RTM.NEWLINK, 0, Buffer.concat([ifinfomsg({ index }), encode([attr.u32(IFLA.MTU, mtu)])]));
}

export function addAddr(s: NetlinkSocket, index: number, ip: string, prefix: number): void {
  const a = ipBytes(ipv4ToInt(ip));
  const attrs = [attr.bytes(IFA_LOCAL, a), attr.bytes(IFA_ADDRESS, a)];
  s.request(`add address ${ip}/${prefix}`, RTM.NEWADDR, NLM_F_CREATE | NLM_F_EXCL, Buffer.concat([ifaddrmsg(prefix, index), encode(attrs)]));
}

export function listAddrs(s: NetlinkSocket, index?: number): Addr[] {
  const out: Addr[] = [];
  for (const m of s.get('list addresses', RTM.GETADDR, ifaddrmsg(0, 0), true)) {
    if (m.body.readUInt8(0) !== AF_INET) continue;
    const idx = m.body.readUInt32LE(4);
    if (index !== undefined && idx !== index) continue;
    const a = decodeAttrs(m.body, 8);
    const raw = a.get(IFA_LOCAL) ?? a.get(IFA_ADDRESS);
    if (!raw || raw.length !== 4) continue;
    out.push({ index: idx, ip: intToIpv4(raw.readUInt32BE(0)), prefix: m.body.readUInt8(1) });
  }
  return out;
}

export function addRoute(s: NetlinkSocket, r: { dst: string; dstLen: number; gw?: string; oif: number }): void {
  const attrs: Attr[] = [attr.u32(RTA.OIF, r.oif)];
  if (r.dstLen > 0) attrs.push(attr.bytes(RTA.DST, ipBytes(ipv4ToInt(r.dst))));
  if (r.gw) attrs.push(attr.bytes(RTA.GATEWAY, ipBytes(ipv4ToInt(r.gw))));
  s.request(
    `add route ${r.dst}/${r.dstLen}`,
    RTM.NEWROUTE,
    NLM_F_CREATE | NLM_F_EXCL,
    Buffer.concat([rtmsg({ dstLen: r.dstLen, scope: RT_SCOPE_UNIVERSE }), encode(attrs)]),
  );
}

export function listRoutes(s: NetlinkSocket): Route[] {
  const out: Route[] = [];
  for (const m of s.get('list routes', RTM.GETROUTE, rtmsg({ dstLen: 0, table: 0, protocol: 0, type: 0 }), true)) {
    const b = m.body;
    if (b.readUInt8(0) !== AF_INET) continue;
    const a = decodeAttrs(b, 12);
    const table = a.get(RTA.TABLE)?.readUInt32LE(0) ?? b.readUInt8(4);
    const dst = a.get(RTA.DST);
    const gw = a.get(RTA.GATEWAY);
    const oif = a.get(RTA.OIF);
    out.push({
      dst: dst ? intToIpv4(dst.readUInt32BE(0)) : '0.0.0.0',
      dstLen: b.readUInt8(1),
      gw: gw ? intToIpv4(gw.readUInt32BE(0)) : undefined,
      oif: oif?.readUInt32LE(0),
      table,
    });
  }
  return out;
}

/** The interface holding the main table's default route, if any. */
export function defaultRouteLink(s: NetlinkSocket): Link | undefined {
  const r = listRoutes(s).find((x) => x.table === RT_TABLE_MAIN && x.dstLen === 0 && x.oif);
  return r?.oif ? getLinkByIndex(s, r.oif) : undefined;
}

/**
 * Pins a pod's MAC to its bridge port, the only place the bridge can learn it:
 * a static FDB entry (NUD_NOARP: never ages out) that is sticky (a frame with
 * that source arriving on another port does not move it), then learning and
 * unicast flooding off on the port, so the bridge learns nothing from the pod
 * and sends the pod no frame meant for an unknown MAC. Broadcast and
 * multicast (ARP requests) still reach it. The entry goes with the port.
 */
export function isolateBridgePort(s: NetlinkSocket, port: { index: number; mac: string }): void {
  s.request(
    `add fdb ${port.mac} on #${port.index}`,
    RTM.NEWNEIGH,
    NLM_F_CREATE | NLM_F_REPLACE,
    Buffer.concat([
      ndmsg({ family: AF_BRIDGE, ifindex: port.index, state: NUD_NOARP, flags: NTF_MASTER | NTF_STICKY }),
      encode([attr.bytes(NDA_LLADDR, macToBuffer(port.mac))]),
    ]),
  );
  const off = (type: number): Attr => ({ type, data: Buffer.from([0]) });
  s.request(
    `set bridge port #${port.index} learning off, unicast flood off`,
    RTM.SETLINK,
    0,
    Buffer.concat([ifinfomsg({ family: AF_BRIDGE, index: port.index }), encode([attr.nested(IFLA.PROTINFO, [off(IFLA_BRPORT.LEARNING), off(IFLA_BRPORT.UNICAST_FLOOD)])])]),
  );
}

export interface FdbEntry {
  /** The port the entry points at. */
  index: number;
  mac: string;
  /** NUD_* bits: NUD_NOARP for static, NUD_PERMANENT for the bridge's own addresses. */
  state: number;
  /** NTF_* bits (NTF_STICKY among them). */
  flags: number;
}

/** The bridge FDB entry for a MAC on a port (the bridge the port belongs to), if any. */
export function getBridgeFdb(s: NetlinkSocket, port: { index: number; mac: string }): FdbEntry | undefined {
  try {
    const r = s.get(
      `get fdb ${port.mac} on #${port.index}`,
      RTM.GETNEIGH,
      Buffer.concat([ndmsg({ family: AF_BRIDGE, ifindex: port.index, flags: NTF_MASTER }), encode([attr.bytes(NDA_LLADDR, macToBuffer(port.mac))])]),
      false,
    );
    const m = r[0];
    if (!m) return undefined;
    const lladdr = decodeAttrs(m.body, 12).get(NDA_LLADDR);
    return {
      index: m.body.readInt32LE(4),
      mac: lladdr && lladdr.length === 6 ? bufferToMac(lladdr) : '',
      state: m.body.readUInt16LE(8),
      flags: m.body.readUInt8(10),
    };
  } catch (e) {
    if (isGone(e)) return undefined;
    throw e;
  }
}
