// NetworkPolicy's maps (bpf/lib/policy.h enforces them): bvcni_ipcache (address
// -> identity), bvcni_policy (per endpoint and direction, the allow entries),
// the isolation and pending flags of bvcni_endpoints, and bvcni_pod_ct (the
// programs' own connection tracking, read here only to list and flush it).
//
// The compiler (src/policy/compile.ts) is a library this one may not import
// (README, "Layout"): its diff is taken structurally (PolicyDiff below is the
// shape of diffNode's NodeDiff), and the keys are encoded here from abi.h's
// struct, the same bytes src/policy/layout.ts proposes (a test holds both to it).
//
// The order applyPolicyDiff writes in, so that no packet meets a state more
// permissive than the old or the new one would allow (each packet looks its
// peer up once, and then one endpoint's table):
//   1. isolation flags that go off are cleared (that endpoint-direction is as
//      the new state wants it: everything passes);
//   2. entries that go away are removed (tables: old ∩ new);
//   3. ipcache deletes, then upserts (a peer has its old or its new identity,
//      and old ∩ new tables allow it only what both states allowed);
//   4. new entries are added (tables: new; while a direction is not isolated
//      yet they change nothing);
//   5. isolation flags that go on are set (the endpoint's allow entries are in);
//   6. with the new compilation given: each endpoint's identity, and its
//      pending flag cleared (its rules are in force now).
// A transient state is at most as permissive as old ∩ new for one update.
import { existsSync } from 'node:fs';
import { BpfError, BpfMap, Errno } from '../../loader/index.js';
import { intToIpv4, ipv4ToInt } from '../../loader/codec.js';
import {
  Direction,
  EndpointFlags,
  MapName,
  ipcacheKey,
  ipcacheValue,
  podCtKey,
  podCtValue,
  policyKey,
  policyValue,
  type EndpointKey,
  type EndpointValue,
  type IpcacheKey,
  type IpcacheValue,
  type PodCtKey,
  type PodCtValue,
  type PolicyKey,
  type PolicyValue,
} from './abi.js';
import { mapPin, openEndpointsMap } from './maps.js';
import { unlinkIfExists } from './pins.js';

export type PolicyDirection = 'ingress' | 'egress';

/** One allow entry, as src/policy/compile.ts's PolicyEntry. */
export interface PolicyEntryLike {
  /** 0: every peer. */
  readonly peer: number;
  /** 0: every protocol (port and portPrefix are then 0). */
  readonly proto: number;
  /** Host order; only the top portPrefix bits count. */
  readonly port: number;
  /** 0..16 */
  readonly portPrefix: number;
}

export interface TableDiffLike {
  readonly isolated: boolean;
  readonly add: readonly PolicyEntryLike[];
  readonly remove: readonly PolicyEntryLike[];
}

export interface CidrLike {
  /** Host order. */
  readonly addr: number;
  readonly prefix: number;
}

/** The shape of src/policy/compile.ts's NodeDiff. */
export interface PolicyDiff {
  readonly ipcacheUpsert: readonly { readonly cidr: CidrLike; readonly identity: number }[];
  readonly ipcacheDelete: readonly CidrLike[];
  readonly endpoints: ReadonlyMap<string, { readonly ingress: TableDiffLike; readonly egress: TableDiffLike } | 'deleted'>;
}

/** What applyPolicyDiff needs of the new compilation (src/policy/compile.ts's CompiledNode). */
export interface CompiledEndpointsLike {
  readonly endpoints: ReadonlyMap<string, { readonly identity: number }>;
}

export interface PolicyMaps {
  ipcache: BpfMap<IpcacheKey, IpcacheValue>;
  policy: BpfMap<PolicyKey, PolicyValue>;
  podCt: BpfMap<PodCtKey, PodCtValue>;
  endpoints: BpfMap<EndpointKey, EndpointValue>;
  close(): void;
  [Symbol.dispose](): void;
}

export function openIpcacheMap(pinDir: string): BpfMap<IpcacheKey, IpcacheValue> {
  return BpfMap.openPinned(mapPin(pinDir, MapName.ipcache), ipcacheKey, ipcacheValue);
}
export function openPolicyMap(pinDir: string): BpfMap<PolicyKey, PolicyValue> {
  return BpfMap.openPinned(mapPin(pinDir, MapName.policy), policyKey, policyValue);
}
export function openPodCtMap(pinDir: string): BpfMap<PodCtKey, PodCtValue> {
  return BpfMap.openPinned(mapPin(pinDir, MapName.podCt), podCtKey, podCtValue);
}

/** Opens the policy maps and the endpoints map; all or nothing. */
export function openPolicyMaps(pinDir: string): PolicyMaps {
  const opened: { close(): void }[] = [];
  const track = <T extends { close(): void }>(m: T): T => (opened.push(m), m);
  try {
    const maps = {
      ipcache: track(openIpcacheMap(pinDir)),
      policy: track(openPolicyMap(pinDir)),
      podCt: track(openPodCtMap(pinDir)),
      endpoints: track(openEndpointsMap(pinDir)),
    };
    const close = (): void => opened.forEach((m) => m.close());
    return { ...maps, close, [Symbol.dispose]: close };
  } catch (e) {
    opened.forEach((m) => m.close());
    throw e;
  }
}

/** endpoint + identity + direction: always matched in full (src/policy/layout.ts). */
const FIXED_BITS = 72;
export const POLICY_KEY_BITS = 96;

/** The map key of one allow entry of an endpoint's table (the bytes src/policy/layout.ts encodes). */
export function policyEntryKey(endpoint: string, dir: PolicyDirection, e: PolicyEntryLike): PolicyKey {
  if (e.portPrefix < 0 || e.portPrefix > 16) throw new RangeError(`policy entry port prefix ${e.portPrefix} is not 0..16`);
  const anyProto = e.proto === 0;
  const port = e.portPrefix === 0 ? 0 : ((e.port >>> (16 - e.portPrefix)) << (16 - e.portPrefix)) & 0xffff;
  return {
    prefixlen: anyProto ? FIXED_BITS : FIXED_BITS + 8 + e.portPrefix,
    endpoint,
    identity: e.peer >>> 0,
    direction: Direction[dir],
    proto: anyProto ? 0 : e.proto,
    dport: anyProto ? 0 : port,
  };
}

/** The key a program looks up for a packet (all 96 bits). */
export function policyLookupKey(endpoint: string, dir: PolicyDirection, identity: number, proto: number, port: number): PolicyKey {
  return { prefixlen: POLICY_KEY_BITS, endpoint, identity: identity >>> 0, direction: Direction[dir], proto, dport: port };
}

function ipcacheKeyOf(c: CidrLike): IpcacheKey {
  if (!Number.isInteger(c.prefix) || c.prefix < 0 || c.prefix > 32) throw new RangeError(`ipcache prefix /${c.prefix} is not 0..32`);
  return { prefixlen: c.prefix, addr: intToIpv4(c.addr >>> 0) };
}

const DIRS: readonly PolicyDirection[] = ['ingress', 'egress'];
const ISOLATED_FLAG: Readonly<Record<PolicyDirection, number>> = {
  ingress: EndpointFlags.ingress_isolated,
  egress: EndpointFlags.egress_isolated,
};

export interface ApplyReport {
  ipcacheUpserted: number;
  ipcacheDeleted: number;
  entriesAdded: number;
  entriesRemoved: number;
  /** Endpoints of the diff with no entry in bvcni_endpoints (gone, or not registered yet): their flags were not written. */
  missingEndpoints: string[];
}

/** Sets and clears endpoint flags (and the identity); false when the endpoint is not registered. */
function updateEndpoint(maps: PolicyMaps, ip: string, set: number, clear: number, identity?: number): boolean {
  const cur = maps.endpoints.lookup({ ip });
  if (!cur) return false;
  const flags = ((cur.flags & ~clear) | set) >>> 0;
  const id = identity ?? cur.identity;
  if (flags === cur.flags && id === cur.identity) return true;
  // Exists: never create an entry the plugin does not own (a DEL racing us wins).
  try {
    maps.endpoints.update({ ip }, { ...cur, flags, identity: id }, 'exist');
  } catch (e) {
    if (e instanceof BpfError && e.errno === Errno.ENOENT) return false;
    throw e;
  }
  return true;
}

/** Every policy entry of one endpoint (a walk of the map: for endpoints that went away). */
function endpointKeys(maps: PolicyMaps, ip: string): PolicyKey[] {
  const out: PolicyKey[] = [];
  for (const k of maps.policy.keys()) if (k.endpoint === ip) out.push(k);
  return out;
}

/** Writes the difference between two compilations of this node (diffNode's output), in the order above. */
export function applyPolicyDiff(maps: PolicyMaps, diff: PolicyDiff, next?: CompiledEndpointsLike): ApplyReport {
  const report: ApplyReport = { ipcacheUpserted: 0, ipcacheDeleted: 0, entriesAdded: 0, entriesRemoved: 0, missingEndpoints: [] };
  const missing = new Set<string>();
  const live = [...diff.endpoints].filter((x): x is [string, { ingress: TableDiffLike; egress: TableDiffLike }] => x[1] !== 'deleted');
  const gone = [...diff.endpoints].filter(([, d]) => d === 'deleted').map(([ip]) => ip);

  // 1. Isolation that goes off (a deleted endpoint is no longer a policy endpoint at all).
  for (const [ip, d] of live) {
    let clear = 0;
    for (const dir of DIRS) if (!d[dir].isolated) clear |= ISOLATED_FLAG[dir];
    if (clear && !updateEndpoint(maps, ip, 0, clear)) missing.add(ip);
  }
  for (const ip of gone) updateEndpoint(maps, ip, 0, ISOLATED_FLAG.ingress | ISOLATED_FLAG.egress);

  // 2. Entries that go away.
  for (const [ip, d] of live)
    for (const dir of DIRS)
      for (const e of d[dir].remove) if (maps.policy.delete(policyEntryKey(ip, dir, e))) report.entriesRemoved++;
  for (const ip of gone) for (const k of endpointKeys(maps, ip)) if (maps.policy.delete(k)) report.entriesRemoved++;
  // Its tracked flows too: an address handed to a new pod must not inherit them as "replies".
  for (const ip of gone) flushEndpointCt(maps, ip);

  // 3. The ipcache.
  for (const c of diff.ipcacheDelete) if (maps.ipcache.delete(ipcacheKeyOf(c))) report.ipcacheDeleted++;
  for (const u of diff.ipcacheUpsert) {
    maps.ipcache.update(ipcacheKeyOf(u.cidr), { identity: u.identity >>> 0 });
    report.ipcacheUpserted++;
  }

  // 4. New entries (rule_ref 0: the compiler does not name the allowing policy yet).
  for (const [ip, d] of live)
    for (const dir of DIRS)
      for (const e of d[dir].add) {
        maps.policy.update(policyEntryKey(ip, dir, e), { rule_ref: 0 });
        report.entriesAdded++;
      }

  // 5. Isolation that goes on.
  for (const [ip, d] of live) {
    let set = 0;
    for (const dir of DIRS) if (d[dir].isolated) set |= ISOLATED_FLAG[dir];
    if (set && !updateEndpoint(maps, ip, set, 0)) missing.add(ip);
  }

  // 6. Identities, and pending cleared: these endpoints' rules are in force.
  if (next)
    for (const [ip, ep] of next.endpoints) if (!updateEndpoint(maps, ip, 0, EndpointFlags.policy_pending, ep.identity >>> 0) && diff.endpoints.has(ip)) missing.add(ip);

  report.missingEndpoints = [...missing].sort();
  return report;
}

export interface EndpointPolicyState {
  /** The pod's identity (0: not known). */
  identity: number;
  /** Labels not known yet while enforcement is on: only the node's own traffic passes, both ways. */
  pending: boolean;
}

/** Sets one endpoint's identity and pending flag; false when no endpoint has that address. */
export function setEndpointPolicyState(maps: PolicyMaps, ip: string, state: EndpointPolicyState): boolean {
  ipv4ToInt(ip); // a clear error for a malformed address
  if (!Number.isInteger(state.identity) || state.identity < 0 || state.identity > 0xffffffff) throw new RangeError(`identity ${state.identity} is not a u32`);
  return state.pending
    ? updateEndpoint(maps, ip, EndpointFlags.policy_pending, 0, state.identity)
    : updateEndpoint(maps, ip, 0, EndpointFlags.policy_pending, state.identity);
}

/** Everything policy wrote: ipcache, entries, the flags of every endpoint, and the pod conntrack (enforcement turned off). */
export function clearPolicyState(maps: PolicyMaps): void {
  for (const [k, v] of [...maps.endpoints.entries()]) {
    const mask = EndpointFlags.ingress_isolated | EndpointFlags.egress_isolated | EndpointFlags.policy_pending;
    if (v.flags & mask) updateEndpoint(maps, k.ip, 0, mask);
  }
  for (const k of [...maps.policy.keys()]) maps.policy.delete(k);
  for (const k of [...maps.ipcache.keys()]) maps.ipcache.delete(k);
  for (const k of [...maps.podCt.keys()]) maps.podCt.delete(k);
}

/** Forgets every tracked flow of one address (an endpoint gone); returns how many. */
export function flushEndpointCt(maps: PolicyMaps, ip: string): number {
  let n = 0;
  for (const k of [...maps.podCt.keys()]) if ((k.saddr === ip || k.daddr === ip) && maps.podCt.delete(k)) n++;
  return n;
}

export interface PodCtFlow extends PodCtKey, PodCtValue {}

/** The pod conntrack's entries (bvcnictl, tests). */
export function listPodCt(maps: PolicyMaps): PodCtFlow[] {
  return [...maps.podCt.entries()].map(([k, v]) => ({ ...k, ...v }));
}

/**
 * `bvcnid --prepare-downgrade`, once the ABI 1 programs run: the policy maps
 * (ABI 2) unpinned, as v0.1.0 knows none of them. Returns the names removed.
 */
export function removePolicyMaps(pinDir: string): string[] {
  const removed: string[] = [];
  for (const name of [MapName.ipcache, MapName.policy, MapName.podCt]) {
    const pin = mapPin(pinDir, name);
    if (!existsSync(pin)) continue;
    unlinkIfExists(pin);
    removed.push(name);
  }
  return removed;
}
