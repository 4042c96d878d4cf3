// Reading the per-CPU stats map: summed over CPUs, by reason and direction.
import { Direction, isDropReason, Reason, REASON_MAX, reasonCode, reasonName, statsIndex } from './abi.js';
import { openStatsMap } from './maps.js';

export interface StatsRow {
  reason: string;
  direction: 'ingress' | 'egress';
  packets: bigint;
  bytes: bigint;
}

/** Every counter (FORWARD included), one row per named reason and direction. */
export function readStats(pinDir: string): StatsRow[] {
  using map = openStatsMap(pinDir);
  const rows: StatsRow[] = [];
  const named = new Set<number>(Object.values(Reason));
  for (let reason = 0; reason < REASON_MAX; reason++) {
    for (const [dirName, dir] of Object.entries(Direction) as ['ingress' | 'egress', number][]) {
      const perCpu = map.lookupPerCpu(statsIndex(reason, dir)) ?? [];
      let packets = 0n;
      let bytes = 0n;
      for (const v of perCpu) {
        packets += v.packets;
        bytes += v.bytes;
      }
      // Unnamed slots only show up if a newer program counted something there.
      if (named.has(reason) || packets > 0n) rows.push({ reason: reasonName(reason), direction: dirName, packets, bytes });
    }
  }
  return rows;
}

/** A row counts dropped packets (not FORWARD, not the monitor's event counters). */
export function isDropRow(r: StatsRow): boolean {
  const code = reasonCode(r.reason);
  return code === undefined || isDropReason(code);
}

/** Drop counters only (every named drop reason, zeros included, so metrics series are stable). */
export function readDropStats(pinDir: string): StatsRow[] {
  return readStats(pinDir).filter(isDropRow);
}
