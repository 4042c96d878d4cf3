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

/** Every NAT entry (both directions), optionally only those of one pod IP. */
export function listNat(pinDir: string, opts: { podIp?: string; now?: bigint } = {}): NatFlow[] {
  const now = opts.now ?? monotonicNs();
  using map = openNatMap(pinDir);
  const out: NatFlow[] = [];
  for (const [key, entry] of map.entries()) {
    const podIp = key.dir === NatDir.egress ? key.saddr : entry.to_addr;
    if (opts.podIp && podIp !== opts.podIp) continue;
    out.push({ key, entry, stale: isStale(key, entry, now, entry.tcp_state) });
  }
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
  const doomed: NatKey[] = [];
  const reservations = new Map<string, { key: NatKey; entry: NatEntry }>();
  const id = (k: NatKey): string => `${k.saddr}|${k.daddr}|${k.sport}|${k.dport}|${k.proto}|${k.dir}`;
  for (const [key, entry] of all) if (key.dir === NatDir.ingress) reservations.set(id(key), { key, entry });
  for (const [key, entry] of all) {
    if (key.dir === NatDir.ingress) {
      if (isStale(key, entry, now, entry.tcp_state)) doomed.push(key);
      continue;
    }
    const rkey: NatKey = { saddr: key.daddr, daddr: entry.to_addr, sport: key.dport, dport: entry.to_port, proto: key.proto, dir: NatDir.ingress };
    const r = reservations.get(id(rkey));
    const mine = r && r.entry.to_addr === key.saddr && r.entry.to_port === key.sport;
    if (!mine || isStale(rkey, r.entry, now, r.entry.tcp_state)) doomed.push(key);
  }
  let n = 0;
  for (const k of doomed) if (map.delete(k)) n++;
  return n;
}
