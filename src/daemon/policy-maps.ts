// bvcnid's NetworkPolicy writer on the pinned maps (PolicyMapsPort of
// policy.ts): src/dataplane/policy.ts's applyPolicyDiff for the entries and
// the ipcache, and the endpoint entries' identity and policy flags. The maps
// are opened for one write (read, endpoints, apply, flags) and closed by
// release(): a re-set-up or an upgrade may replace what is pinned, and a
// handle kept open would write into a map no program reads any more.
import { existsSync } from 'node:fs';
import { BpfError, Errno } from '../../loader/index.js';
import { ipv4ToInt } from '../../loader/codec.js';
import { EndpointFlags, Direction, MapName } from '../dataplane/abi.js';
import { mapPin } from '../dataplane/maps.js';
import { applyPolicyDiff, clearPolicyState, openPolicyMaps, type PolicyMaps } from '../dataplane/policy.js';
import type { NodeDiff, PolicyEntry } from '../policy/index.js';
import { PolicyMapsAbsent, type EndpointPolicyState, type PinnedPolicy, type PolicyMapsPort } from './policy.js';

/** policy_key's prefix length up to the protocol byte (endpoint, identity, direction): src/policy/layout.ts. */
const FIXED_BITS = 72;

export function stateOfFlags(flags: number, identity: number): EndpointPolicyState {
  return {
    identity,
    pending: (flags & EndpointFlags.policy_pending) !== 0,
    ingressIsolated: (flags & EndpointFlags.ingress_isolated) !== 0,
    egressIsolated: (flags & EndpointFlags.egress_isolated) !== 0,
  };
}

export function flagsOfState(flags: number, s: EndpointPolicyState): number {
  const mask = EndpointFlags.policy_pending | EndpointFlags.ingress_isolated | EndpointFlags.egress_isolated;
  const set =
    (s.pending ? EndpointFlags.policy_pending : 0) | (s.ingressIsolated ? EndpointFlags.ingress_isolated : 0) | (s.egressIsolated ? EndpointFlags.egress_isolated : 0);
  return ((flags & ~mask) | set) >>> 0;
}

/** A policy map key back as the compiler's entry (the inverse of policyEntryKey). */
export function entryOfKey(k: { prefixlen: number; identity: number; proto: number; dport: number }): PolicyEntry {
  if (k.prefixlen <= FIXED_BITS) return { peer: k.identity >>> 0, proto: 0, port: 0, portPrefix: 0 };
  return { peer: k.identity >>> 0, proto: k.proto, port: k.dport, portPrefix: k.prefixlen - FIXED_BITS - 8 };
}

export class PinnedPolicyMaps implements PolicyMapsPort {
  private maps?: PolicyMaps;

  constructor(private readonly pinDir: string) {}

  private open(): PolicyMaps {
    if (!this.maps && !existsSync(mapPin(this.pinDir, MapName.policy))) throw new PolicyMapsAbsent(`the policy maps under ${this.pinDir} are`);
    this.maps ??= openPolicyMaps(this.pinDir);
    return this.maps;
  }

  release(): void {
    this.maps?.close();
    this.maps = undefined;
  }

  read(): PinnedPolicy {
    const m = this.open();
    const ipcache = [...m.ipcache.entries()].map(([k, v]) => ({ cidr: { addr: ipv4ToInt(k.addr), prefix: k.prefixlen }, identity: v.identity }));
    const endpoints = new Map<string, { ingress: PolicyEntry[]; egress: PolicyEntry[] }>();
    for (const k of m.policy.keys()) {
      let t = endpoints.get(k.endpoint);
      if (!t) endpoints.set(k.endpoint, (t = { ingress: [], egress: [] }));
      t[k.direction === Direction.egress ? 'egress' : 'ingress'].push(entryOfKey(k));
    }
    return { ipcache, endpoints };
  }

  apply(diff: NodeDiff): void {
    applyPolicyDiff(this.open(), diff);
  }

  endpoints(): Map<string, EndpointPolicyState> {
    const out = new Map<string, EndpointPolicyState>();
    for (const [k, v] of this.open().endpoints.entries()) if (v.flags & EndpointFlags.pod) out.set(k.ip, stateOfFlags(v.flags, v.identity));
    return out;
  }

  setEndpoint(ip: string, s: EndpointPolicyState): boolean {
    const m = this.open();
    const cur = m.endpoints.lookup({ ip });
    if (!cur) return false;
    const flags = flagsOfState(cur.flags, s);
    if (flags === cur.flags && cur.identity === s.identity) return true;
    try {
      // 'exist': never re-create an entry a DEL just removed.
      m.endpoints.update({ ip }, { ...cur, flags, identity: s.identity >>> 0 }, 'exist');
    } catch (e) {
      if (e instanceof BpfError && e.errno === Errno.ENOENT) return false;
      throw e;
    }
    return true;
  }
}

/**
 * bvcnid without --network-policy: what a previous run with it left (entries,
 * ipcache, isolation and pending flags, the pod conntrack) is removed, since
 * nobody would keep it right any more (a pod left pending would stay cut off).
 * Returns what was found, or null when the node has no policy maps (ABI 1).
 */
export function clearPolicyWhenOff(pinDir: string): { entries: number; ipcache: number; flagged: number } | null {
  if (!existsSync(mapPin(pinDir, MapName.policy))) return null;
  using m = openPolicyMaps(pinDir);
  const mask = EndpointFlags.policy_pending | EndpointFlags.ingress_isolated | EndpointFlags.egress_isolated;
  const found = {
    entries: [...m.policy.keys()].length,
    ipcache: [...m.ipcache.keys()].length,
    flagged: [...m.endpoints.entries()].filter(([, v]) => v.flags & mask).length,
  };
  if (found.entries || found.ipcache || found.flagged) clearPolicyState(m);
  return found;
}
