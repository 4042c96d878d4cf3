// The masquerade table from user space: listing for bvcnictl and garbage
// collection for bvcnid. Entries are stale by the policy in abi.h (idle time
// by protocol and TCP state); the programs already ignore stale entries, GC
// just gives the room back before the LRU has to evict.
import { NatDir, natTimeout, type NatEntry, type NatKey } from './abi.js';
import { openNatMap } from './maps.js';

export interface NatFlow {
  key: NatKey;
  entry: NatEntry;
  /** Idle for longer than its timeout. */
  stale: boolean;
}

/** The programs stamp entries with bpf_ktime_get_coarse_ns(): CLOCK_MONOTONIC (at tick resolution), as process.hrtime on Linux. */
export function monotonicNs(): bigint {
  return process.hrtime.bigint();
}

function isStale(key: NatKey, e: NatEntry, now: bigint, tcpState: number): boolean {
  return now > e.last_seen_ns && now - e.last_seen_ns > natTimeout(key.proto, tcpState);
}

const natId = (k: NatKey): string => `${k.saddr}|${k.daddr}|${k.sport}|${k.dport}|${k.proto}|${k.dir}`;

/**
 * Whether each entry is stale. An INGRESS entry (the port reservation,
 * refreshed by both directions) by its own idle time; an EGRESS entry by its
 * reservation's, and when the reservation is gone or belongs to another flow:
 * the programs refresh an EGRESS entry only when they read it (for flows not
 * on their first hashed candidate port), so its own last_seen_ns says little.
 */
function staleness(all: [NatKey, NatEntry][], now: bigint): boolean[] {
  const reservations = new Map<string, NatEntry>();
  for (const [key, entry] of all) if (key.dir === NatDir.ingress) reservations.set(natId(key), entry);
  return all.map(([key, entry]) => {
    if (key.dir === NatDir.ingress) return isStale(key, entry, now, entry.tcp_state);
    const rkey: NatKey = { saddr: key.daddr, daddr: entry.to_addr, sport: key.dport, dport: entry.to_port, proto: key.proto, dir: NatDir.ingress };
    const r = reservations.get(natId(rkey));
    const mine = r && r.to_addr === key.saddr && r.to_port === key.sport;
    return !mine || isStale(rkey, r, now, r.tcp_state);
  });
}

/** Every NAT entry (both directions), optionally only those of one pod IP. */
export function listNat(pinDir: string, opts: { podIp?: string; now?: bigint } = {}): NatFlow[] {
  const now = opts.now ?? monotonicNs();
  using map = openNatMap(pinDir);
  const all = [...map.entries()];
  const stale = staleness(all, now);
  const out: NatFlow[] = [];
  all.forEach(([key, entry], i) => {
    const podIp = key.dir === NatDir.egress ? key.saddr : entry.to_addr;
    if (opts.podIp && podIp !== opts.podIp) return;
    out.push({ key, entry, stale: stale[i]! });
  });
  return out;
}

/**
 * Deletes stale flows: an INGRESS entry (the port reservation, refreshed by
 * both directions) idle past its timeout goes with its EGRESS partner; an
 * EGRESS entry whose reservation is gone or belongs to another flow goes too.
 * Returns the number of entries deleted.
 */
export function collectNat(pinDir: string, now: bigint = monotonicNs()): number {
  using map = openNatMap(pinDir);
  const all = [...map.entries()];
  const stale = staleness(all, now);
  let n = 0;
  all.forEach(([key], i) => {
    if (stale[i] && map.delete(key)) n++;
  });
  return n;
}
