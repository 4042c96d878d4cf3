// The slice of src/dataplane the simulator drives, loaded lazily: clusters
// built with 'flannel' or 'none' must not need libbpf or the BPF objects
// (and the benchmark baseline must not depend on them).
import type { TunnelKey, TunnelValue, EndpointKey, EndpointValue } from '../dataplane/abi.js';
// Types only: erased at run time, so they load nothing.
import type { NodeDataplaneConfig } from '../dataplane/node.js';

/** A simulated node's dataplane config: always inside the node's namespace. */
export type SimNodeDataplaneConfig = NodeDataplaneConfig & { netns: string };

/** The map operations the simulator needs; the loader's BpfMap satisfies it. */
export interface SimMap<K, V> {
  lookup(key: K): V | undefined;
  update(key: K, value: V, flag?: 'any' | 'noexist' | 'exist'): void;
  delete(key: K): boolean;
  entries(): IterableIterator<[K, V]>;
  close(): void;
}

export interface SimDataplaneMaps {
  tunnel: SimMap<TunnelKey, TunnelValue>;
  endpoints: SimMap<EndpointKey, EndpointValue>;
  /** Closes every map it opened. */
  close(): void;
}

export interface DropStat {
  reason: string;
  direction: 'ingress' | 'egress';
  packets: bigint;
  bytes: bigint;
}

export interface DataplaneApi {
  ensureNodeDataplane(cfg: SimNodeDataplaneConfig): Promise<{ mtu: number; overlayMtu: number; close(): void }>;
  removeNodeDataplane(cfg: SimNodeDataplaneConfig): Promise<void>;
  openDataplaneMaps(pinDir: string): SimDataplaneMaps;
  registerEndpoint(
    pinDir: string,
    ep: { ip: string; hostIfname: string; hostIfindex: number; podMac: string; gwMac: string; netns?: string },
  ): void;
  unregisterEndpoint(pinDir: string, ip: string, opts?: { netns?: string }): void;
  readDropStats(pinDir: string): DropStat[];
}

let cached: Promise<DataplaneApi> | undefined;

export function loadDataplane(): Promise<DataplaneApi> {
  // The assignment is the compile-time check that src/dataplane still offers what the simulator calls.
  cached ??= import('../dataplane/index.js').then((m): DataplaneApi => m);
  return cached;
}
