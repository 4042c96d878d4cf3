// TypeScript mirror of bpf/lib/abi.h: the one place user space knows the
// layout of the pinned maps. test/unit/abi.test.ts checks every codec here
// against the BTF of the compiled objects.
import { struct, u32, type Codec, type CodecValue } from '../../loader/codec.js';

export type { CodecValue };

export const MapName = {
  tunnel: 'bvcni_tunnel',
  endpoints: 'bvcni_endpoints',
  config: 'bvcni_config',
  nat: 'bvcni_nat',
  stats: 'bvcni_stats',
  hostport: 'bvcni_hostport',
  hostportFlows: 'bvcni_hostport_flows',
  ipcache: 'bvcni_ipcache',
  policy: 'bvcni_policy',
  podCt: 'bvcni_pod_ct',
  events: 'bvcni_events',
  monitor: 'bvcni_monitor',
  monitorBucket: 'bvcni_monitor_bucket',
} as const;
export type MapName = (typeof MapName)[keyof typeof MapName];

export const TUNNEL_MAX = 16384;
export const ENDPOINTS_MAX = 4096;
export const NAT_MAX = 262144;
export const HOSTPORT_MAX = 8192;
export const HOSTPORT_FLOWS_MAX = 65536;
export const IPCACHE_MAX = 262144;
export const POLICY_MAX = 262144;
export const POD_CT_MAX = 131072;
/** BVCNI_EVENTS_BYTES: the drop-event ring buffer's size. */
export const EVENTS_BYTES = 256 * 1024;

export const tunnelKey = struct('tunnel_key', 8, [
  { name: 'prefixlen', kind: 'u32', offset: 0 },
  { name: 'addr', kind: 'ipv4', offset: 4 },
] as const);
export type TunnelKey = CodecValue<typeof tunnelKey>;

export const TunnelFlags = { nodeIp: 1 << 0 } as const;

export const tunnelValue = struct('tunnel_value', 8, [
  { name: 'node_ip', kind: 'ipv4', offset: 0 },
  { name: 'flags', kind: 'u32', offset: 4 },
] as const);
export type TunnelValue = CodecValue<typeof tunnelValue>;

export const endpointKey = struct('endpoint_key', 4, [{ name: 'ip', kind: 'ipv4', offset: 0 }] as const);
export type EndpointKey = CodecValue<typeof endpointKey>;

export const EndpointFlags = {
  pod: 1 << 0,
  netkit: 1 << 1,
  hostport: 1 << 2,
  ingress_isolated: 1 << 3,
  egress_isolated: 1 << 4,
  policy_pending: 1 << 5,
} as const;
/** The NetworkPolicy flags (ABI 2): bvcnid's (src/dataplane/policy.ts), never the plugin's. */
export const POLICY_ENDPOINT_FLAGS = EndpointFlags.ingress_isolated | EndpointFlags.egress_isolated | EndpointFlags.policy_pending;

export const endpointValue = struct('endpoint_value', 24, [
  { name: 'ifindex', kind: 'u32', offset: 0 },
  { name: 'flags', kind: 'u32', offset: 4 },
  { name: 'pod_mac', kind: 'mac', offset: 8 },
  { name: 'gw_mac', kind: 'mac', offset: 14 },
  // ABI 2: NetworkPolicy's security identity of the pod, 0 = not yet known. Nothing reads it yet beyond bvcnictl.
  { name: 'identity', kind: 'u32', offset: 20 },
] as const);
export type EndpointValue = CodecValue<typeof endpointValue>;

/**
 * ABI 1's endpoint_value (v0.1.0): no identity. The plugin writes through it when
 * it finds a map of that layout pinned (an upgrade whose bvcnid has not migrated
 * the node yet), and src/dataplane/migrate.ts converts from and to it.
 */
export const endpointValueV1 = struct('endpoint_value', 20, [
  { name: 'ifindex', kind: 'u32', offset: 0 },
  { name: 'flags', kind: 'u32', offset: 4 },
  { name: 'pod_mac', kind: 'mac', offset: 8 },
  { name: 'gw_mac', kind: 'mac', offset: 14 },
] as const);
export type EndpointValueV1 = CodecValue<typeof endpointValueV1>;

/** Today's EndpointValue read from and written to an ABI 1 entry: identity reads 0 and is not stored. */
export const endpointValueAsV1: Codec<EndpointValue> = {
  size: endpointValueV1.size,
  encode: (v, buf, offset = 0) => endpointValueV1.encode({ ifindex: v.ifindex, flags: v.flags, pod_mac: v.pod_mac, gw_mac: v.gw_mac }, buf, offset),
  decode: (buf, offset = 0) => ({ ...endpointValueV1.decode(buf, offset), identity: 0 }),
};

export const ConfigFlags = { ready: 1 << 0, masquerade: 1 << 1 } as const;

export const configValue = struct('bvcni_config', 72, [
  { name: 'node_ip', kind: 'ipv4', offset: 0 },
  { name: 'pod_cidr', kind: 'ipv4', offset: 4 },
  { name: 'pod_prefix', kind: 'u32', offset: 8 },
  { name: 'cluster_cidr', kind: 'ipv4', offset: 12 },
  { name: 'cluster_prefix', kind: 'u32', offset: 16 },
  { name: 'vxlan_ifindex', kind: 'u32', offset: 20 },
  { name: 'uplink_ifindex', kind: 'u32', offset: 24 },
  { name: 'bridge_ifindex', kind: 'u32', offset: 28 },
  { name: 'vni', kind: 'u32', offset: 32 },
  { name: 'nat_port_min', kind: 'u16', offset: 36 },
  { name: 'nat_port_max', kind: 'u16', offset: 38 },
  { name: 'bridge_mac', kind: 'mac', offset: 40 },
  { name: 'uplink_mac', kind: 'mac', offset: 46 },
  { name: 'mtu', kind: 'u32', offset: 52 },
  { name: 'flags', kind: 'u32', offset: 56 },
  { name: 'service_cidr', kind: 'ipv4', offset: 60 },
  { name: 'service_prefix', kind: 'u32', offset: 64 },
  { name: 'vxlan_port', kind: 'u16', offset: 68 },
  { name: 'pad', kind: 'pad', offset: 70, length: 2 },
] as const);
export type ConfigValue = CodecValue<typeof configValue>;

export const configKey: Codec<number> = u32;
export const statsKey: Codec<number> = u32;

export const statsValue = struct('stats_value', 16, [
  { name: 'packets', kind: 'u64', offset: 0 },
  { name: 'bytes', kind: 'u64', offset: 8 },
] as const);
export type StatsValue = CodecValue<typeof statsValue>;

/** BVCNI_ABI_VERSION: the pinned maps' layout and the programs' contract with them. */
export const ABI_VERSION = 2;

/** enum bvcni_reason: stable numbers, never renumbered. */
export const Reason = {
  FORWARD: 0,
  DROP_INVALID: 1,
  DROP_SPOOFED: 2,
  DROP_NO_TUNNEL: 3,
  DROP_NO_ENDPOINT: 4,
  DROP_NO_CONFIG: 5,
  DROP_NAT_NO_PORT: 6,
  DROP_NAT_FAILED: 7,
  DROP_FIB: 8,
  DROP_REDIRECT: 9,
  DROP_TTL: 10,
  DROP_FRAG_NEEDED: 11,
  DROP_UNSUPPORTED: 12,
  DROP_POD_VXLAN: 13,
  DROP_VXLAN_NOT_NODE: 14,
  DROP_VXLAN_SPOOFED: 15,
  DROP_SPOOFED_MAC: 16,
  DROP_ETHERTYPE: 17,
  DROP_ARP_SPOOFED: 18,
  DROP_HOSTPORT_NO_POD: 19,
  DROP_HOSTPORT_FAILED: 20,
  DROP_POLICY_INGRESS: 21,
  DROP_POLICY_EGRESS: 22,
  DROP_POLICY_PENDING: 23,
  DROP_POLICY_FRAGMENT: 24,
  DROP_POLICY_CT: 25,
  DROP_VXLAN_VNI: 26,
  // Not drops: what became of a drop's event while a monitor listened (lib/monitor.h).
  MONITOR_SUPPRESSED: 27,
  MONITOR_LOST: 28,
} as const;

/** Reasons that count something other than dropped packets (FORWARD, the monitor's). */
const NOT_DROPS = new Set<number>([Reason.FORWARD, Reason.MONITOR_SUPPRESSED, Reason.MONITOR_LOST]);
export function isDropReason(code: number): boolean {
  return !NOT_DROPS.has(code);
}
export const REASON_MAX = 64;
/** ABI 1's REASON_MAX (v0.1.0): its stats map has REASON_MAX_V1 * 2 slots. */
export const REASON_MAX_V1 = 32;
export const Direction = { ingress: 0, egress: 1 } as const;

export function reasonName(code: number): string {
  for (const [name, value] of Object.entries(Reason)) if (value === code) return name;
  return `REASON_${code}`;
}

/** The reason's number from its name (DROP_SPOOFED, or REASON_N for an unnamed one); undefined when unknown. */
export function reasonCode(name: string): number | undefined {
  const n = name.toUpperCase().replace(/^REASON_(?=DROP_|MONITOR_|FORWARD)/, '');
  if (n in Reason) return Reason[n as keyof typeof Reason];
  const m = /^REASON_(\d+)$/.exec(n);
  return m && Number(m[1]) < REASON_MAX ? Number(m[1]) : undefined;
}

/** Index into the stats map for a reason and direction. */
export function statsIndex(reason: number, dir: number): number {
  return reason * 2 + dir;
}

/** enum nat_dir */
export const NatDir = { egress: 0, ingress: 1 } as const;

export const natKey = struct('nat_key', 16, [
  { name: 'saddr', kind: 'ipv4', offset: 0 },
  { name: 'daddr', kind: 'ipv4', offset: 4 },
  { name: 'sport', kind: 'be16', offset: 8 },
  { name: 'dport', kind: 'be16', offset: 10 },
  { name: 'proto', kind: 'u8', offset: 12 },
  { name: 'dir', kind: 'u8', offset: 13 },
  { name: 'pad', kind: 'pad', offset: 14, length: 2 },
] as const);
export type NatKey = CodecValue<typeof natKey>;

export const natEntry = struct('nat_entry', 24, [
  { name: 'created_ns', kind: 'u64', offset: 0 },
  { name: 'last_seen_ns', kind: 'u64', offset: 8 },
  { name: 'to_addr', kind: 'ipv4', offset: 16 },
  { name: 'to_port', kind: 'be16', offset: 20 },
  { name: 'tcp_state', kind: 'u8', offset: 22 },
  { name: 'flags', kind: 'u8', offset: 23 },
] as const);
export type NatEntry = CodecValue<typeof natEntry>;

/** enum nat_tcp_state */
export const NatTcpState = {
  NONE: 0,
  SYN: 1,
  ESTABLISHED: 2,
  FIN: 3,
  CLOSED: 4,
  FIN_POD: 5,
  LAST_ACK: 6,
  TIME_WAIT: 7,
} as const;

const SEC = 1_000_000_000n;
/** Idle timeouts (ns) after which a NAT entry is stale, as in abi.h's NAT_TIMEOUT_*. */
export const NatTimeout = {
  TCP_SYN: 60n * SEC,
  TCP_EST: 7440n * SEC,
  TCP_FIN: 120n * SEC,
  TCP_CLOSED: 10n * SEC,
  TCP_TIME_WAIT: 60n * SEC,
  UDP: 60n * SEC,
  ICMP: 30n * SEC,
} as const;
export const NAT_PORT_PROBES = 8;
export const NAT_PORT_RUN = 16;

export const IPPROTO = { ICMP: 1, TCP: 6, UDP: 17, SCTP: 132 } as const;

export const hostportKey = struct('hostport_key', 8, [
  { name: 'host_ip', kind: 'ipv4', offset: 0 },
  { name: 'port', kind: 'be16', offset: 4 },
  { name: 'proto', kind: 'u8', offset: 6 },
  { name: 'pad', kind: 'pad', offset: 7, length: 1 },
] as const);
export type HostportKey = CodecValue<typeof hostportKey>;

export const hostportValue = struct('hostport_value', 16, [
  { name: 'pod_ip', kind: 'ipv4', offset: 0 },
  { name: 'pod_port', kind: 'be16', offset: 4 },
  { name: 'pad', kind: 'pad', offset: 6, length: 2 },
  { name: 'owner', kind: 'u64', offset: 8 },
] as const);
export type HostportValue = CodecValue<typeof hostportValue>;

export const hostportFlowKey = struct('hostport_flow_key', 16, [
  { name: 'pod_ip', kind: 'ipv4', offset: 0 },
  { name: 'client_ip', kind: 'ipv4', offset: 4 },
  { name: 'pod_port', kind: 'be16', offset: 8 },
  { name: 'client_port', kind: 'be16', offset: 10 },
  { name: 'proto', kind: 'u8', offset: 12 },
  { name: 'pad', kind: 'pad', offset: 13, length: 3 },
] as const);
export type HostportFlowKey = CodecValue<typeof hostportFlowKey>;

export const hostportFlowValue = struct('hostport_flow_value', 12, [
  { name: 'host_ip', kind: 'ipv4', offset: 0 },
  { name: 'key_ip', kind: 'ipv4', offset: 4 },
  { name: 'host_port', kind: 'be16', offset: 8 },
  { name: 'pad', kind: 'pad', offset: 10, length: 2 },
] as const);
export type HostportFlowValue = CodecValue<typeof hostportFlowValue>;

/** The idle timeout of an entry, by protocol and TCP state (the daemon's GC uses it). */
export function natTimeout(proto: number, tcpState: number): bigint {
  if (proto === IPPROTO.UDP) return NatTimeout.UDP;
  if (proto === IPPROTO.ICMP) return NatTimeout.ICMP;
  switch (tcpState) {
    case NatTcpState.SYN:
      return NatTimeout.TCP_SYN;
    case NatTcpState.FIN:
    case NatTcpState.FIN_POD:
    case NatTcpState.LAST_ACK:
      return NatTimeout.TCP_FIN;
    case NatTcpState.TIME_WAIT:
      return NatTimeout.TCP_TIME_WAIT;
    case NatTcpState.CLOSED:
      return NatTimeout.TCP_CLOSED;
    default:
      return NatTimeout.TCP_EST;
  }
}

/** NetworkPolicy identities reserved by the compiler (src/policy/compile.ts), as abi.h's ID_*. */
export const Identity = { any: 0, host: 1, world: 2 } as const;

export const ipcacheKey = struct('ipcache_key', 8, [
  { name: 'prefixlen', kind: 'u32', offset: 0 },
  { name: 'addr', kind: 'ipv4', offset: 4 },
] as const);
export type IpcacheKey = CodecValue<typeof ipcacheKey>;

export const ipcacheValue = struct('ipcache_value', 4, [{ name: 'identity', kind: 'u32', offset: 0 }] as const);
export type IpcacheValue = CodecValue<typeof ipcacheValue>;

/** The byte layout src/policy/layout.ts encodes (its keys are written as they are). */
export const policyKey = struct('policy_key', 16, [
  { name: 'prefixlen', kind: 'u32', offset: 0 },
  { name: 'endpoint', kind: 'ipv4', offset: 4 },
  { name: 'identity', kind: 'be32', offset: 8 },
  { name: 'direction', kind: 'u8', offset: 12 },
  { name: 'proto', kind: 'u8', offset: 13 },
  { name: 'dport', kind: 'be16', offset: 14 },
] as const);
export type PolicyKey = CodecValue<typeof policyKey>;

export const policyValue = struct('policy_value', 4, [{ name: 'rule_ref', kind: 'u32', offset: 0 }] as const);
export type PolicyValue = CodecValue<typeof policyValue>;

export const podCtKey = struct('pod_ct_key', 16, [
  { name: 'saddr', kind: 'ipv4', offset: 0 },
  { name: 'daddr', kind: 'ipv4', offset: 4 },
  { name: 'sport', kind: 'be16', offset: 8 },
  { name: 'dport', kind: 'be16', offset: 10 },
  { name: 'proto', kind: 'u8', offset: 12 },
  { name: 'dir', kind: 'u8', offset: 13 },
  { name: 'pad', kind: 'pad', offset: 14, length: 2 },
] as const);
export type PodCtKey = CodecValue<typeof podCtKey>;

/** enum pod_ct_flags */
export const PodCtFlags = { REPLY: 1 << 0, FIN_FWD: 1 << 1, FIN_REV: 1 << 2, RST: 1 << 3 } as const;

export const podCtValue = struct('pod_ct_value', 16, [
  { name: 'last_seen_ns', kind: 'u64', offset: 0 },
  { name: 'rule_ref', kind: 'u32', offset: 8 },
  { name: 'flags', kind: 'u8', offset: 12 },
  { name: 'pad', kind: 'pad', offset: 13, length: 3 },
] as const);
export type PodCtValue = CodecValue<typeof podCtValue>;
/** enum bvcni_hook: where a drop event's program ran. */
export const Hook = { pod: 0, uplink: 1, overlayIngress: 2, overlayEgress: 3, toPod: 4 } as const;
export function hookName(code: number): string {
  for (const [name, value] of Object.entries(Hook)) if (value === code) return name;
  return `hook-${code}`;
}

/** enum drop_event_flags: which of a drop event's packet fields were read. */
export const EventFlags = { ipv4: 1 << 0, ports: 1 << 1, arp: 1 << 2 } as const;

/** struct drop_event: one record of the bvcni_events ring buffer. */
export const dropEvent = struct('drop_event', 40, [
  { name: 'ktime_ns', kind: 'u64', offset: 0 },
  { name: 'ifindex', kind: 'u32', offset: 8 },
  { name: 'len', kind: 'u32', offset: 12 },
  { name: 'reason', kind: 'u16', offset: 16 },
  { name: 'dir', kind: 'u8', offset: 18 },
  { name: 'hook', kind: 'u8', offset: 19 },
  { name: 'ethertype', kind: 'be16', offset: 20 },
  { name: 'proto', kind: 'u8', offset: 22 },
  { name: 'flags', kind: 'u8', offset: 23 },
  { name: 'saddr', kind: 'ipv4', offset: 24 },
  { name: 'daddr', kind: 'ipv4', offset: 28 },
  { name: 'sport', kind: 'be16', offset: 32 },
  { name: 'dport', kind: 'be16', offset: 34 },
  { name: 'rule_ref', kind: 'u32', offset: 36 },
] as const);
export type DropEvent = CodecValue<typeof dropEvent>;

/** struct monitor_config: the listener's lease and the token bucket's rate, written by bvcnictl monitor. */
export const monitorConfig = struct('monitor_config', 24, [
  { name: 'listen_until_ns', kind: 'u64', offset: 0 },
  { name: 'rate', kind: 'u32', offset: 8 },
  { name: 'burst', kind: 'u32', offset: 12 },
  { name: 'listener_pid', kind: 'u32', offset: 16 },
  { name: 'pad', kind: 'pad', offset: 20, length: 4 },
] as const);
export type MonitorConfig = CodecValue<typeof monitorConfig>;

/** struct monitor_bucket: the programs' per-CPU token bucket (tokens in 1/1e9 of an event). */
export const monitorBucket = struct('monitor_bucket', 16, [
  { name: 'tokens', kind: 'u64', offset: 0 },
  { name: 'last_ns', kind: 'u64', offset: 8 },
] as const);
export type MonitorBucket = CodecValue<typeof monitorBucket>;
