// hostPort mappings (bvcni_hostport, bpf/lib/hostport.h): claimed by the CNI
// plugin at ADD, removed by owner at DEL and GC, listed by bvcnictl.
// The claim is the kernel's BPF_NOEXIST insert: atomic against any other
// writer, so two ADDs racing for one (host IP, port, protocol) cannot both win.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BpfError, BpfMap, detachCgroupPinned } from '../../loader/index.js';
import {
  IPPROTO,
  MapName,
  hostportFlowKey,
  hostportFlowValue,
  hostportKey,
  hostportValue,
  type HostportFlowKey,
  type HostportFlowValue,
  type HostportKey,
  type HostportValue,
} from './abi.js';
import { SockProgram } from './layout.js';
import { mapPin } from './maps.js';
import { unlinkIfExists } from './pins.js';

export type HostPortProtocol = 'tcp' | 'udp' | 'sctp';

export interface HostPortMapping {
  /** '0.0.0.0' for the node IP (the runtime's "any"), else one of the node's addresses. */
  hostIp: string;
  hostPort: number;
  containerPort: number;
  protocol: HostPortProtocol;
}

export interface HostPortEntry extends HostPortMapping {
  podIp: string;
  owner: bigint;
}

const PROTO_NUM: Record<HostPortProtocol, number> = { tcp: IPPROTO.TCP, udp: IPPROTO.UDP, sctp: IPPROTO.SCTP };

export function protocolName(n: number): HostPortProtocol | `proto ${number}` {
  for (const [k, v] of Object.entries(PROTO_NUM)) if (v === n) return k as HostPortProtocol;
  return `proto ${n}`;
}

/** The same (host IP, port, protocol) already belongs to another owner. */
export class HostPortConflict extends Error {
  constructor(
    readonly mapping: HostPortMapping,
    readonly holder: HostportValue,
  ) {
    super(`hostPort ${mapping.hostIp}:${mapping.hostPort}/${mapping.protocol} is already mapped to ${holder.pod_ip}:${holder.pod_port} by another container`);
    this.name = 'HostPortConflict';
  }
}

export function openHostportMap(pinDir: string): BpfMap<HostportKey, HostportValue> {
  return BpfMap.openPinned(mapPin(pinDir, MapName.hostport), hostportKey, hostportValue);
}

/** The programs' per-flow state (bvcni_hostport_flows): read-only for user space. */
export function openHostportFlowsMap(pinDir: string): BpfMap<HostportFlowKey, HostportFlowValue> {
  return BpfMap.openPinned(mapPin(pinDir, MapName.hostportFlows), hostportFlowKey, hostportFlowValue);
}

export function hostportMapExists(pinDir: string): boolean {
  return existsSync(mapPin(pinDir, MapName.hostport));
}

function keyOf(m: HostPortMapping): HostportKey {
  return { host_ip: m.hostIp, port: m.hostPort, proto: PROTO_NUM[m.protocol] };
}

/**
 * Inserts every mapping for podIp under owner, all or nothing: on a conflict
 * (or any failure) what this call inserted is removed again and the holder's
 * entry is left as it was. An entry that is already this owner's (a retried
 * ADD of the same attachment) is taken over.
 */
export function claimHostPorts(pinDir: string, owner: bigint, podIp: string, mappings: readonly HostPortMapping[]): void {
  if (mappings.length === 0) return;
  using map = openHostportMap(pinDir);
  const inserted: HostportKey[] = [];
  try {
    for (const m of mappings) {
      const key = keyOf(m);
      const value: HostportValue = { pod_ip: podIp, pod_port: m.containerPort, owner };
      try {
        map.update(key, value, 'noexist');
        inserted.push(key);
      } catch (e) {
        if (!(e instanceof BpfError && e.code === 'EEXIST')) throw e;
        const holder = map.lookup(key);
        if (!holder) {
          // Deleted between our insert and our look: try once more.
          map.update(key, value, 'noexist');
          inserted.push(key);
        } else if (holder.owner === owner) {
          map.update(key, value, 'exist');
        } else {
          throw new HostPortConflict(m, holder);
        }
      }
    }
  } catch (e) {
    for (const k of inserted) map.delete(k);
    throw e;
  }
}

/** Removes the owner's entries (and only those); how many went. Tolerant of an absent map. */
export function releaseHostPorts(pinDir: string, owner: bigint): number {
  return pruneHostPorts(pinDir, (e) => e.owner === owner);
}

/** Removes every entry the predicate selects (GC); how many went. */
export function pruneHostPorts(pinDir: string, remove: (e: HostPortEntry) => boolean): number {
  if (!hostportMapExists(pinDir)) return 0;
  using map = openHostportMap(pinDir);
  let n = 0;
  for (const [k, v] of [...map.entries()]) {
    if (!remove(entryOf(k, v))) continue;
    // Still the same owner's at delete time: only its owner or GC deletes an entry, so it cannot have changed hands.
    const now = map.lookup(k);
    if (now && now.owner === v.owner && map.delete(k)) n++;
  }
  return n;
}

function entryOf(k: HostportKey, v: HostportValue): HostPortEntry {
  return {
    hostIp: String(k.host_ip),
    hostPort: Number(k.port),
    protocol: protocolName(Number(k.proto)) as HostPortProtocol,
    podIp: String(v.pod_ip),
    containerPort: Number(v.pod_port),
    owner: v.owner,
  };
}

export function listHostPorts(pinDir: string): HostPortEntry[] {
  if (!hostportMapExists(pinDir)) return [];
  using map = openHostportMap(pinDir);
  return [...map.entries()].map(([k, v]) => entryOf(k, v));
}

export function lookupHostPort(pinDir: string, m: HostPortMapping): HostportValue | undefined {
  if (!hostportMapExists(pinDir)) return undefined;
  using map = openHostportMap(pinDir);
  return map.lookup(keyOf(m));
}

/**
 * `bvcnid --prepare-downgrade`'s part for hostPorts, which are ABI 2's and which
 * v0.1.0 knows nothing of. The node's cgroup connect4 link is detached: left
 * attached, its program would go on rewriting the node's connects to pods
 * through maps no program or plugin keeps up to date any more. The two
 * hostPort maps are unpinned, not left unused: v0.1.0's plugin never releases
 * a mapping, so a later upgrade would adopt entries for pods deleted meanwhile,
 * whose IPs new pods may hold. The ABI 1 programs declare neither map, so none
 * is in use once the migration has swapped them in. Idempotent.
 */
export function removeHostPorts(pinDir: string): { linkDetached: boolean; mapsRemoved: string[] } {
  const linkDetached = detachCgroupPinned(join(pinDir, SockProgram.linkPin));
  const mapsRemoved: string[] = [];
  for (const name of [MapName.hostport, MapName.hostportFlows]) {
    const pin = mapPin(pinDir, name);
    if (!existsSync(pin)) continue;
    unlinkIfExists(pin);
    mapsRemoved.push(name);
  }
  return { linkDetached, mapsRemoved };
}
