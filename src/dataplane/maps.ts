// Typed handles on the pinned maps: the contract between programs, daemon,
// plugin and CLI.
import { join } from 'node:path';
import { BpfMap } from '../../loader/index.js';
import {
  MapName,
  ConfigFlags,
  configKey,
  configValue,
  endpointKey,
  endpointValue,
  endpointValueAsV1,
  natEntry,
  natKey,
  statsKey,
  statsValue,
  tunnelKey,
  tunnelValue,
  type ConfigValue,
  type EndpointKey,
  type EndpointValue,
  type NatEntry,
  type NatKey,
  type StatsValue,
  type TunnelKey,
  type TunnelValue,
} from './abi.js';

export interface DataplaneMaps {
  tunnel: BpfMap<TunnelKey, TunnelValue>;
  endpoints: BpfMap<EndpointKey, EndpointValue>;
  config: BpfMap<number, ConfigValue>;
  nat: BpfMap<NatKey, NatEntry>;
  stats: BpfMap<number, StatsValue>;
  close(): void;
  [Symbol.dispose](): void;
}

export function mapPin(pinDir: string, name: MapName): string {
  return join(pinDir, name);
}

export function openTunnelMap(pinDir: string): BpfMap<TunnelKey, TunnelValue> {
  return BpfMap.openPinned(mapPin(pinDir, MapName.tunnel), tunnelKey, tunnelValue);
}
export function openEndpointsMap(pinDir: string): BpfMap<EndpointKey, EndpointValue> {
  // An ABI 1 map (v0.1.0's, not migrated yet: the plugin is switched before its bvcnid
  // starts) is written in its own layout, so ADD and DEL work across the upgrade.
  return BpfMap.openPinnedMatching(mapPin(pinDir, MapName.endpoints), endpointKey, [endpointValue, endpointValueAsV1]);
}
export function openConfigMap(pinDir: string): BpfMap<number, ConfigValue> {
  return BpfMap.openPinned(mapPin(pinDir, MapName.config), configKey, configValue);
}
export function openNatMap(pinDir: string): BpfMap<NatKey, NatEntry> {
  return BpfMap.openPinned(mapPin(pinDir, MapName.nat), natKey, natEntry);
}
export function openStatsMap(pinDir: string): BpfMap<number, StatsValue> {
  return BpfMap.openPinned(mapPin(pinDir, MapName.stats), statsKey, statsValue);
}

/** Opens every pinned map; all or nothing. */
export function openDataplaneMaps(pinDir: string): DataplaneMaps {
  const opened: { close(): void }[] = [];
  const track = <T extends { close(): void }>(m: T): T => (opened.push(m), m);
  try {
    const maps = {
      tunnel: track(openTunnelMap(pinDir)),
      endpoints: track(openEndpointsMap(pinDir)),
      config: track(openConfigMap(pinDir)),
      nat: track(openNatMap(pinDir)),
      stats: track(openStatsMap(pinDir)),
    };
    const close = (): void => opened.forEach((m) => m.close());
    return { ...maps, close, [Symbol.dispose]: close };
  } catch (e) {
    opened.forEach((m) => m.close());
    throw e;
  }
}

/**
 * The node config the daemon wrote (gateway MAC, MTU, CIDRs), or undefined
 * when the dataplane is absent or not READY: what the plugin needs for ADD.
 */
export function readDataplaneConfig(pinDir: string): ConfigValue | undefined {
  let map: BpfMap<number, ConfigValue>;
  try {
    map = openConfigMap(pinDir);
  } catch {
    return undefined;
  }
  try {
    const c = map.lookup(0);
    return c && (c.flags & ConfigFlags.ready) !== 0 ? c : undefined;
  } finally {
    map.close();
  }
}
