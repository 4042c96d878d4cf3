// TypeScript mirror of bpf/lib/abi.h: the one place user space knows the
// layout of the pinned maps. test/unit/abi.test.ts checks every codec here
// against the BTF of the compiled objects.
import { struct, u32, type Codec, type StructOf } from '../../loader/codec.js';

export const MapName = {
  tunnel: 'bvcni_tunnel',
  endpoints: 'bvcni_endpoints',
  config: 'bvcni_config',
  nat: 'bvcni_nat',
  stats: 'bvcni_stats',
} as const;
export type MapName = (typeof MapName)[keyof typeof MapName];

export const TUNNEL_MAX = 16384;
export const ENDPOINTS_MAX = 4096;
export const NAT_MAX = 262144;

export const tunnelKey = struct('tunnel_key', 8, [
  { name: 'prefixlen', kind: 'u32', offset: 0 },
  { name: 'addr', kind: 'ipv4', offset: 4 },
] as const);
export type TunnelKey = StructOf<typeof tunnelKey.fields>;

export const TunnelFlags = { nodeIp: 1 << 0 } as const;

export const tunnelValue = struct('tunnel_value', 8, [
  { name: 'node_ip', kind: 'ipv4', offset: 0 },
  { name: 'flags', kind: 'u32', offset: 4 },
] as const);
export type TunnelValue = StructOf<typeof tunnelValue.fields>;

export const endpointKey = struct('endpoint_key', 4, [{ name: 'ip', kind: 'ipv4', offset: 0 }] as const);
export type EndpointKey = StructOf<typeof endpointKey.fields>;

export const EndpointFlags = { pod: 1 << 0 } as const;

export const endpointValue = struct('endpoint_value', 20, [
  { name: 'ifindex', kind: 'u32', offset: 0 },
  { name: 'flags', kind: 'u32', offset: 4 },
  { name: 'pod_mac', kind: 'mac', offset: 8 },
  { name: 'gw_mac', kind: 'mac', offset: 14 },
] as const);
export type EndpointValue = StructOf<typeof endpointValue.fields>;

export const ConfigFlags = { ready: 1 << 0, masquerade: 1 << 1 } as const;

export const configValue = struct('bvcni_config', 60, [
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
] as const);
export type ConfigValue = StructOf<typeof configValue.fields>;

export const configKey: Codec<number> = u32;
export const statsKey: Codec<number> = u32;

export const statsValue = struct('stats_value', 16, [
  { name: 'packets', kind: 'u64', offset: 0 },
  { name: 'bytes', kind: 'u64', offset: 8 },
] as const);
export type StatsValue = StructOf<typeof statsValue.fields>;

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
} as const;
export const REASON_MAX = 32;
export const Direction = { ingress: 0, egress: 1 } as const;

export function reasonName(code: number): string {
  for (const [name, value] of Object.entries(Reason)) if (value === code) return name;
  return `REASON_${code}`;
}

/** Index into the stats map for a reason and direction. */
export function statsIndex(reason: number, dir: number): number {
  return reason * 2 + dir;
}
