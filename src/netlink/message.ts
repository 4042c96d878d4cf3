// rtnetlink wire format: headers and (nested) attributes, encoded into and
// decoded from plain Buffers. Only what the plugin needs.

export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP = 0x300;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
export const NLM_F_REPLACE = 0x100;

export const RTM = {
  NEWLINK: 16, DELLINK: 17, GETLINK: 18, SETLINK: 19,
  NEWADDR: 20, DELADDR: 21, GETADDR: 22,
  NEWROUTE: 24, DELROUTE: 25, GETROUTE: 26,
  NEWNEIGH: 28, DELNEIGH: 29, GETNEIGH: 30,
} as const;

export const IFLA = {
  ADDRESS: 1, IFNAME: 3, MTU: 4, LINK: 5, MASTER: 10, PROTINFO: 12, OPERSTATE: 16, LINKINFO: 18, AF_SPEC: 26, NET_NS_FD: 28,
} as const;
export const IFLA_INFO_KIND = 1;
export const IFLA_INFO_DATA = 2;
export const IFLA_INFO_SLAVE_KIND = 4;
export const IFLA_INFO_SLAVE_DATA = 5;
/** Bridge port attributes (in IFLA_PROTINFO of an AF_BRIDGE SETLINK, and in IFLA_INFO_SLAVE_DATA). */
export const IFLA_BRPORT = { LEARNING: 8, UNICAST_FLOOD: 9 } as const;
/** Neighbour (and bridge FDB) messages. */
export const NDA_LLADDR = 2;
export const NUD_NOARP = 0x40;
export const NTF_MASTER = 0x04;
export const NTF_STICKY = 0x40;
export const VETH_INFO_PEER = 1;
/** netkit's IFLA_INFO_DATA (include/uapi/linux/if_link.h, Linux 6.7). */
export const IFLA_NETKIT = { PEER_INFO: 1, PRIMARY: 2, POLICY: 3, PEER_POLICY: 4, MODE: 5 } as const;
export const NETKIT_L2 = 0;
/** enum netkit_action: what a netkit device does with a packet when no program is attached. */
export const NETKIT_PASS = 0;
export const NETKIT_DROP = 2;
/** VXLAN link attributes (IFLA_INFO_DATA of kind "vxlan"; linux/if_link.h). */
export const IFLA_VXLAN = { ID: 1, LEARNING: 7, PORT: 15, COLLECT_METADATA: 25 } as const;
/** In IFLA_AF_SPEC's AF_INET6 block: how the link's IPv6 addresses are made (IN6_ADDR_GEN_MODE_NONE: none). */
export const IFLA_INET6_ADDR_GEN_MODE = 8;
export const IN6_ADDR_GEN_MODE_NONE = 1;
/** In IFLA_AF_SPEC's AF_INET block: the nested IPV4_DEVCONF_* values (1-based, u32 each). */
export const IFLA_INET_CONF = 1;
export const IPV4_DEVCONF_PROXY_ARP = 3;
export const IFA_ADDRESS = 1;
export const IFA_LOCAL = 2;
export const IFA_FLAGS = 8;
export const IFA_F_NOPREFIXROUTE = 0x200;
export const RTA = { DST: 1, OIF: 4, GATEWAY: 5, PREFSRC: 7, METRICS: 8, TABLE: 15 } as const;
/** In RTA_METRICS: the route's MTU (linux/rtnetlink.h RTAX_MTU). */
export const RTAX_MTU = 2;

export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_BRIDGE = 7;
export const AF_INET6 = 10;
export const IFF_UP = 0x1;
export const IFF_NOARP = 0x80;
export const RT_TABLE_MAIN = 254;
export const RTPROT_KERNEL = 2;
export const RTPROT_BOOT = 3;
export const RT_SCOPE_UNIVERSE = 0;
export const RT_SCOPE_LINK = 253;
export const RTN_UNICAST = 1;

/** An attribute: a payload, or nested attributes. */
export interface Attr {
  type: number;
  data: Buffer | Attr[];
}

const align4 = (n: number): number => (n + 3) & ~3;

export function encodeAttrs(attrs: readonly Attr[]): Buffer {
  const parts: Buffer[] = [];
  for (const a of attrs) {
    const payload = Array.isArray(a.data) ? encodeAttrs(a.data) : a.data;
    const len = 4 + payload.length;
    const b = Buffer.alloc(align4(len));
    b.writeUInt16LE(len, 0);
    b.writeUInt16LE(a.type | (Array.isArray(a.data) ? 0x8000 : 0), 2);
    payload.copy(b, 4);
    parts.push(b);
  }
  return Buffer.concat(parts);
}

export function decodeAttrs(buf: Buffer, start = 0, end = buf.length): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let off = start;
  while (off + 4 <= end) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > end) break;
    const type = buf.readUInt16LE(off + 2) & 0x3fff;
    out.set(type, buf.subarray(off + 4, off + len));
    off += align4(len);
  }
  return out;
}

export const attr = {
  u32(type: number, v: number): Attr {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0, 0);
    return { type, data: b };
  },
  str(type: number, s: string): Attr {
    return { type, data: Buffer.from(`${s}\0`, 'utf8') };
  },
  bytes(type: number, b: Buffer): Attr {
    return { type, data: b };
  },
  nested(type: number, attrs: Attr[]): Attr {
    return { type, data: attrs };
  },
};

export interface IfInfo {
  family?: number;
  type?: number;
  index?: number;
  flags?: number;
  change?: number;
}

export function ifinfomsg(i: IfInfo = {}): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(i.family ?? AF_UNSPEC, 0);
  b.writeUInt16LE(i.type ?? 0, 2);
  b.writeInt32LE(i.index ?? 0, 4);
  b.writeUInt32LE(i.flags ?? 0, 8);
  b.writeUInt32LE(i.change ?? 0, 12);
  return b;
}

export interface NdMsg {
  family: number;
  ifindex: number;
  state?: number;
  flags?: number;
}

/** struct ndmsg: family, 3 bytes of padding, ifindex, state, flags, type. */
export function ndmsg(n: NdMsg): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt8(n.family, 0);
  b.writeInt32LE(n.ifindex, 4);
  b.writeUInt16LE(n.state ?? 0, 8);
  b.writeUInt8(n.flags ?? 0, 10);
  return b;
}

export function ifaddrmsg(prefixlen: number, index: number, scope = RT_SCOPE_UNIVERSE, family = AF_INET): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(family, 0);
  b.writeUInt8(prefixlen, 1);
  b.writeUInt8(0, 2);
  b.writeUInt8(scope, 3);
  b.writeUInt32LE(index, 4);
  return b;
}

export interface RtMsg {
  dstLen: number;
  table?: number;
  protocol?: number;
  scope?: number;
  type?: number;
}

export function rtmsg(r: RtMsg): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt8(AF_INET, 0);
  b.writeUInt8(r.dstLen, 1);
  b.writeUInt8(r.table ?? RT_TABLE_MAIN, 4);
  b.writeUInt8(r.protocol ?? RTPROT_BOOT, 5);
  b.writeUInt8(r.scope ?? RT_SCOPE_UNIVERSE, 6);
  b.writeUInt8(r.type ?? RTN_UNICAST, 7);
  return b;
}

export function ipBytes(ip: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(ip >>> 0, 0);
  return b;
}
