// Link, address and route operations over one NetlinkSocket.
import { bufferToMac, intToIpv4, ipv4ToInt, macToBuffer } from '../../loader/codec.js';
import {
  AF_BRIDGE,
  AF_INET,
  AF_INET6,
  IFLA_INET6_ADDR_GEN_MODE,
  IN6_ADDR_GEN_MODE_NONE,
  IFA_ADDRESS,
  IFA_FLAGS,
  IFA_F_NOPREFIXROUTE,
  IFA_LOCAL,
  IFF_NOARP,
  IFF_UP,
  IFLA,
  IFLA_VXLAN,
  IFLA_INFO_DATA,
  IFLA_BRPORT,
  IFLA_INFO_KIND,
  IFLA_INFO_SLAVE_DATA,
  IFLA_INFO_SLAVE_KIND,
  IFLA_INET_CONF,
  IPV4_DEVCONF_PROXY_ARP,
  IFLA_NETKIT,
  NDA_LLADDR,
  NETKIT_DROP,
  NETKIT_L2,
  NETKIT_PASS,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  NTF_MASTER,
  NTF_STICKY,
  NUD_NOARP,
  RT_SCOPE_LINK,
  RT_SCOPE_UNIVERSE,
  RT_TABLE_MAIN,
  RTPROT_BOOT,
  RTA,
  RTAX_MTU,
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
  /** When the link is a netkit device: which end, its mode and what each end does without a program. */
  netkit?: { primary: boolean; mode?: number; policy?: number; peerPolicy?: number };
  /** When the link is a VXLAN device: collect_md ("external"), its UDP port, whether it learns, and its VNI (0 when external: the kernel refuses both). */
  vxlan?: { external: boolean; port: number; learning: boolean; vni: number };
  /** IFF_NOARP: the link resolves no neighbours. */
  noarp?: boolean;
  /** RFC 2863 operational state as iproute2 prints it (UP, DOWN, UNKNOWN, LOWERLAYERDOWN, …). */
  operstate?: string;
}

const OPERSTATES = ['UNKNOWN', 'NOTPRESENT', 'DOWN', 'LOWERLAYERDOWN', 'TESTING', 'DORMANT', 'UP'] as const;

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
  prefsrc?: string;
  protocol: number;
  scope: number;
  /** The route's own MTU (RTAX_MTU), when it has one. */
  mtu?: number;
}

const { ENODEV, ESRCH, ENOENT, EAFNOSUPPORT, EOPNOTSUPP, EADDRNOTAVAIL } = Errno;

function parseLink(body: Buffer): Link {
  const a = decodeAttrs(body, 16);
  const str = (t: number): string => (a.get(t)?.toString('utf8') ?? '').replace(/\0.*$/s, '');
  let kind: string | undefined;
  let bridgePort: Link['bridgePort'];
  let netkit: Link['netkit'];
  let vxlan: Link['vxlan'];
  const info = a.get(IFLA.LINKINFO);
  if (info) {
    const li = decodeAttrs(info);
    kind = li.get(IFLA_INFO_KIND)?.toString('utf8').replace(/\0.*$/s, '');
    const data = li.get(IFLA_INFO_DATA);
    if (kind === 'netkit' && data) {
      const d = decodeAttrs(data);
      const u32 = (t: number): number | undefined => (d.get(t)?.length ?? 0) >= 4 ? d.get(t)!.readUInt32LE(0) : undefined;
      netkit = { primary: d.get(IFLA_NETKIT.PRIMARY)?.[0] === 1, mode: u32(IFLA_NETKIT.MODE), policy: u32(IFLA_NETKIT.POLICY), peerPolicy: u32(IFLA_NETKIT.PEER_POLICY) };
    } else if (kind === 'vxlan' && data) {
      const v = decodeAttrs(data);
      vxlan = {
        external: v.get(IFLA_VXLAN.COLLECT_METADATA)?.[0] === 1,
        port: v.get(IFLA_VXLAN.PORT)?.readUInt16BE(0) ?? 0,
        learning: v.get(IFLA_VXLAN.LEARNING)?.[0] === 1,
        vni: (v.get(IFLA_VXLAN.ID)?.length ?? 0) >= 4 ? v.get(IFLA_VXLAN.ID)!.readUInt32LE(0) : 0,
      };
    }
    const slaveData = li.get(IFLA_INFO_SLAVE_DATA);
    if (slaveData && li.get(IFLA_INFO_SLAVE_KIND)?.toString('utf8').replace(/\0.*$/s, '') === 'bridge') {
      const bp = decodeAttrs(slaveData);
      bridgePort = { learning: bp.get(IFLA_BRPORT.LEARNING)?.[0] === 1, unicastFlood: bp.get(IFLA_BRPORT.UNICAST_FLOOD)?.[0] === 1 };
    }
  }
  const mac = a.get(IFLA.ADDRESS);
  const flags = body.readUInt32LE(8);
  return {
    index: body.readInt32LE(4),
    name: str(IFLA.IFNAME),
    mtu: a.get(IFLA.MTU)?.readUInt32LE(0) ?? 0,
    mac: mac && mac.length === 6 ? bufferToMac(mac) : '',
    up: (flags & IFF_UP) !== 0,
    master: a.get(IFLA.MASTER)?.readUInt32LE(0) ?? 0,
    kind,
    ...(bridgePort ? { bridgePort } : {}),
    ...(netkit ? { netkit } : {}),
    ...(vxlan ? { vxlan } : {}),
    ...((flags & IFF_NOARP) !== 0 ? { noarp: true } : {}),
    ...(a.get(IFLA.OPERSTATE) ? { operstate: OPERSTATES[a.get(IFLA.OPERSTATE)![0]!] ?? 'UNKNOWN' } : {}),
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

/**
 * Creates a bridge, up, with a fixed MAC (a bridge otherwise takes the lowest
 * port's MAC, which changes as pods come and go and would stale the gateway
 * MAC pods cached). No MTU here: see ensureBridge (bridge.ts).
 */
export function createBridge(s: NetlinkSocket, o: { name: string; mac: string }): void {
  const attrs: Attr[] = [
    attr.str(IFLA.IFNAME, o.name),
    attr.bytes(IFLA.ADDRESS, macToBuffer(o.mac)),
    attr.nested(IFLA.LINKINFO, [attr.str(IFLA_INFO_KIND, 'bridge')]),
  ];
  s.request(`create bridge ${o.name}`, RTM.NEWLINK, NLM_F_CREATE | NLM_F_EXCL, Buffer.concat([ifinfomsg({ flags: IFF_UP, change: IFF_UP }), encode(attrs)]));
}

/**
 * A VXLAN device in external (collect_md) mode on a UDP port: the programs set
 * each packet's tunnel key, so it has no VNI, remote or FDB of its own, and
 * learns nothing from what it decapsulates.
 */
export function createVxlan(s: NetlinkSocket, o: { name: string; port: number; mtu?: number }): void {
  const port = Buffer.alloc(2);
  port.writeUInt16BE(o.port, 0);
  const data: Attr[] = [
    { type: IFLA_VXLAN.COLLECT_METADATA, data: Buffer.from([1]) },
    { type: IFLA_VXLAN.LEARNING, data: Buffer.from([0]) },
    attr.bytes(IFLA_VXLAN.PORT, port),
  ];
  const attrs: Attr[] = [
    attr.str(IFLA.IFNAME, o.name),
    ...(o.mtu ? [attr.u32(IFLA.MTU, o.mtu)] : []),
    attr.nested(IFLA.LINKINFO, [attr.str(IFLA_INFO_KIND, 'vxlan'), attr.nested(IFLA_INFO_DATA, data)]),
  ];
  s.request(`create vxlan ${o.name}`, RTM.NEWLINK, NLM_F_CREATE | NLM_F_EXCL, Buffer.concat([ifinfomsg(), encode(attrs)]));
}

export interface LinkChange {
  mtu?: number;
  mac?: string;
  up?: boolean;
  /** IFF_NOARP on (true) or off (false). */
  noarp?: boolean;
}

/** Changes what is given in one message; what is not given stays as it is. */
export function setLink(s: NetlinkSocket, index: number, c: LinkChange): void {
  let flags = 0;
  let change = 0;
  if (c.up !== undefined) {
    change |= IFF_UP;
    if (c.up) flags |= IFF_UP;
  }
  if (c.noarp !== undefined) {
    change |= IFF_NOARP;
    if (c.noarp) flags |= IFF_NOARP;
  }
  const attrs: Attr[] = [];
  if (c.mtu !== undefined) attrs.push(attr.u32(IFLA.MTU, c.mtu));
  if (c.mac !== undefined) attrs.push(attr.bytes(IFLA.ADDRESS, macToBuffer(c.mac)));
  const what = [
    c.mtu !== undefined ? `mtu ${c.mtu}` : '',
    c.mac !== undefined ? `address ${c.mac}` : '',
    c.noarp !== undefined ? `arp ${c.noarp ? 'off' : 'on'}` : '',
    c.up !== undefined ? (c.up ? 'up' : 'down') : '',
  ].filter(Boolean);
  s.request(`set link #${index} ${what.join(' ')}`, RTM.NEWLINK, 0, Buffer.concat([ifinfomsg({ index, flags, change }), encode(attrs)]));
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

/** The pod end of a pair (veth or netkit), as the nested peer ifinfomsg: its name, MTU and MAC, and the namespace it is created in. */
function podPeerInfo(v: { podName: string; mtu: number; podMac: string; podNsFd?: number }): Buffer {
  return Buffer.concat([
    ifinfomsg(),
    encode([
      attr.str(IFLA.IFNAME, v.podName),
      attr.u32(IFLA.MTU, v.mtu),
      attr.bytes(IFLA.ADDRESS, macToBuffer(v.podMac)),
      ...(v.podNsFd !== undefined ? [attr.u32(IFLA.NET_NS_FD, v.podNsFd)] : []),
    ]),
  ]);
}

/** Creates both ends in one message, so a crash cannot leave half a pair. */
export function createVeth(s: NetlinkSocket, v: VethSpec): void {
  // The peer cannot be brought up in this message: it is configured before
  // the pair is linked, and opening a veth without its peer fails (ENOTCONN).
  const peer = podPeerInfo(v);
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

export interface NetkitSpec {
  hostName: string;
  podName: string;
  /** fd of the pod's network namespace: the peer is created directly inside it (default: beside the primary). */
  podNsFd?: number;
  podMac: string;
  /** The host end's MAC: what the pod learns for its gateway (the host answers its ARP there). */
  hostMac: string;
  mtu: number;
}

/**
 * Creates a netkit pair in one message (Linux 6.7; iproute2 before 6.7 cannot):
 * the primary (host end, up) here, the peer (the pod's interface) in the pod's
 * namespace. Layer 2 mode: the pod keeps a MAC and ARP, so the programs, the
 * endpoint map and the L2 checks are the veth path's (layer 3 mode has no
 * ARP, an all-zero MAC and frames the pod's stack addresses to itself).
 * Policies: the host end forwards (no program runs when the node sends to
 * the pod, as on a veth's pod side); the peer, what the pod sends, drops
 * whenever no program is attached: between creation and the attach, and if
 * the program were ever detached, the pod sends nothing unchecked.
 */
export function createNetkit(s: NetlinkSocket, v: NetkitSpec): void {
  const peer = podPeerInfo(v);
  const data: Attr[] = [
    attr.u32(IFLA_NETKIT.MODE, NETKIT_L2),
    attr.u32(IFLA_NETKIT.POLICY, NETKIT_PASS),
    attr.u32(IFLA_NETKIT.PEER_POLICY, NETKIT_DROP),
    attr.bytes(IFLA_NETKIT.PEER_INFO, peer),
  ];
  const attrs: Attr[] = [
    attr.str(IFLA.IFNAME, v.hostName),
    attr.u32(IFLA.MTU, v.mtu),
    attr.bytes(IFLA.ADDRESS, macToBuffer(v.hostMac)),
    attr.nested(IFLA.LINKINFO, [attr.str(IFLA_INFO_KIND, 'netkit'), attr.nested(IFLA_INFO_DATA, data)]),
  ];
  s.request(
    `create netkit ${v.hostName}`,
    RTM.NEWLINK,
    NLM_F_CREATE | NLM_F_EXCL,
    Buffer.concat([ifinfomsg({ flags: IFF_UP, change: IFF_UP }), encode(attrs)]),
  );
}

/**
 * net.ipv4.conf.<link>.proxy_arp, set through rtnetlink: it needs only
 * CAP_NET_ADMIN, not a writable /proc/sys (read-only in bvcnid's container).
 */
export function setProxyArp(s: NetlinkSocket, index: number, on: boolean): void {
  const conf = attr.nested(IFLA_INET_CONF, [attr.u32(IPV4_DEVCONF_PROXY_ARP, on ? 1 : 0)]);
  s.request(`set link #${index} proxy_arp`, RTM.NEWLINK, 0, Buffer.concat([ifinfomsg({ index }), encode([attr.nested(IFLA.AF_SPEC, [attr.nested(AF_INET, [conf])])])]));
}

/** A host route to one address on a link (scope link), with the source address the node uses towards it. */
export function addLinkRoute(s: NetlinkSocket, r: { dst: string; oif: number; src?: string }): void {
  const attrs: Attr[] = [attr.u32(RTA.OIF, r.oif), attr.bytes(RTA.DST, ipBytes(ipv4ToInt(r.dst)))];
  if (r.src) attrs.push(attr.bytes(RTA.PREFSRC, ipBytes(ipv4ToInt(r.src))));
  s.request(
    `add route ${r.dst}/32`,
    RTM.NEWROUTE,
    NLM_F_CREATE | NLM_F_REPLACE,
    Buffer.concat([rtmsg({ dstLen: 32, scope: RT_SCOPE_LINK }), encode(attrs)]),
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


/** noPrefixRoute: no connected route for the prefix (IFA_F_NOPREFIXROUTE): the caller routes it. */
export function addAddr(s: NetlinkSocket, index: number, ip: string, prefix: number, opts: { noPrefixRoute?: boolean } = {}): void {
  const a = ipBytes(ipv4ToInt(ip));
  const attrs = [attr.bytes(IFA_LOCAL, a), attr.bytes(IFA_ADDRESS, a)];
  if (opts.noPrefixRoute) attrs.push(attr.u32(IFA_FLAGS, IFA_F_NOPREFIXROUTE));
  s.request(`add address ${ip}/${prefix}`, RTM.NEWADDR, NLM_F_CREATE | NLM_F_EXCL, Buffer.concat([ifaddrmsg(prefix, index), encode(attrs)]));
}

/** Adds the address, or updates it when the link has it already (`ip addr replace`). */
export function replaceAddr(s: NetlinkSocket, index: number, ip: string, prefix: number): void {
  const a = ipBytes(ipv4ToInt(ip));
  const attrs = [attr.bytes(IFA_LOCAL, a), attr.bytes(IFA_ADDRESS, a)];
  s.request(`replace address ${ip}/${prefix}`, RTM.NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, Buffer.concat([ifaddrmsg(prefix, index), encode(attrs)]));
}

/** Deletes every address of a family (AF_INET or AF_INET6) from a link (`ip -6 addr flush dev`); returns how many. */
export function flushAddrs(s: NetlinkSocket, index: number, family: typeof AF_INET | typeof AF_INET6): number {
  let n = 0;
  for (const m of s.get('list addresses', RTM.GETADDR, ifaddrmsg(0, 0, RT_SCOPE_UNIVERSE, family), true)) {
    if (m.body.readUInt8(0) !== family || m.body.readUInt32LE(4) !== index) continue;
    const a = decodeAttrs(m.body, 8);
    const local = a.get(IFA_LOCAL);
    const address = a.get(IFA_ADDRESS);
    const attrs = [...(local ? [attr.bytes(IFA_LOCAL, local)] : []), ...(address ? [attr.bytes(IFA_ADDRESS, address)] : [])];
    try {
      s.request(`delete address on #${index}`, RTM.DELADDR, 0, Buffer.concat([m.body.subarray(0, 8), encode(attrs)]));
      n++;
    } catch (e) {
      // Gone meanwhile (DAD failure, the link going down).
      if (!(e instanceof NetlinkError && (e.errno === EADDRNOTAVAIL || isGone(e)))) throw e;
    }
  }
  return n;
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

/** `mtu`: the route's own (`ip route add ... mtu N`), below the device's; the TCP MSS it offers follows it. */
export function addRoute(s: NetlinkSocket, r: { dst: string; dstLen: number; gw?: string; oif: number; mtu?: number }): void {
  const attrs: Attr[] = [attr.u32(RTA.OIF, r.oif)];
  if (r.dstLen > 0) attrs.push(attr.bytes(RTA.DST, ipBytes(ipv4ToInt(r.dst))));
  if (r.gw) attrs.push(attr.bytes(RTA.GATEWAY, ipBytes(ipv4ToInt(r.gw))));
  if (r.mtu !== undefined) attrs.push(attr.nested(RTA.METRICS, [attr.u32(RTAX_MTU, r.mtu)]));
  s.request(
    `add route ${r.dst}/${r.dstLen}`,
    RTM.NEWROUTE,
    NLM_F_CREATE | NLM_F_EXCL,
    Buffer.concat([rtmsg({ dstLen: r.dstLen, scope: RT_SCOPE_UNIVERSE }), encode(attrs)]),
  );
}

export interface RouteSpec {
  dst: string;
  dstLen: number;
  oif: number;
  /** The source address the node picks for this route (`src`). */
  prefsrc?: string;
  /** Default RTPROT_BOOT, as `ip route` gives. */
  protocol?: number;
}

/**
 * Adds or replaces a direct route (no gateway: scope link, as `ip route
 * replace DST dev DEV` makes it). Replacing matches the kernel's own connected
 * route for the same prefix too, which is how the node's source for its pods is set.
 */
export function replaceRoute(s: NetlinkSocket, r: RouteSpec): void {
  const attrs: Attr[] = [attr.u32(RTA.OIF, r.oif)];
  if (r.dstLen > 0) attrs.push(attr.bytes(RTA.DST, ipBytes(ipv4ToInt(r.dst))));
  if (r.prefsrc) attrs.push(attr.bytes(RTA.PREFSRC, ipBytes(ipv4ToInt(r.prefsrc))));
  s.request(
    `replace route ${r.dst}/${r.dstLen}`,
    RTM.NEWROUTE,
    NLM_F_CREATE | NLM_F_REPLACE,
    Buffer.concat([rtmsg({ dstLen: r.dstLen, scope: RT_SCOPE_LINK, protocol: r.protocol ?? RTPROT_BOOT }), encode(attrs)]),
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
    const prefsrc = a.get(RTA.PREFSRC);
    const metrics = a.get(RTA.METRICS);
    const mtu = metrics ? decodeAttrs(metrics).get(RTAX_MTU)?.readUInt32LE(0) : undefined;
    out.push({
      dst: dst ? intToIpv4(dst.readUInt32BE(0)) : '0.0.0.0',
      dstLen: b.readUInt8(1),
      gw: gw ? intToIpv4(gw.readUInt32BE(0)) : undefined,
      oif: oif?.readUInt32LE(0),
      table,
      ...(prefsrc ? { prefsrc: intToIpv4(prefsrc.readUInt32BE(0)) } : {}),
      ...(mtu !== undefined ? { mtu } : {}),
      protocol: b.readUInt8(5),
      scope: b.readUInt8(6),
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
