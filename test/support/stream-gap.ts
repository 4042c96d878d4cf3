// The 1 ms UDP stream the upgrade test and benchmark run across a roll of
// bvcnid (udp-sink / udp-source of upgrade-traffic.py), and how its gaps are
// read. Pure: unit-tested without root.
export interface UdpSinkReport {
  count: number;
  /**
   * [arrival before, arrival after, datagrams lost between, sent before, sent after], CLOCK_MONOTONIC
   * seconds; arrivals are the kernel's receive timestamps.
   */
  gaps: [number, number, number, number, number][];
  last: number | null;
}

/** CLOCK_MONOTONIC in seconds: the clock of the flows' reports (Python's time.monotonic). */
export function monotonicS(): number {
  return Number(process.hrtime.bigint()) / 1e9;
}

export interface StreamGap {
  /** The longest silence at the receiver (ms). */
  ms: number;
  /** Datagrams lost in it. */
  lost: number;
  /**
   * The longest silence the dataplane caused (ms): the silence a sender that never paused would have
   * seen. A gap with losses counts whole; a gap without losses counts only what the sender's own
   * pause (the send times on both sides of it) does not explain, plus the stream's 1 ms spacing. On a
   * 2-core machine running every node, a starting bvcnid (the verifier above all) can keep the
   * source from running for several ms: that is the simulator sharing CPUs, not a dataplane gap.
   */
  dataplaneMs: number;
}

/** The longest gaps of the stream within [from, to]. */
export function longestGap(r: UdpSinkReport, from: number, to: number): StreamGap {
  const best: StreamGap = { ms: 0, lost: 0, dataplaneMs: 0 };
  for (const [a, b, lost, sentBefore, sentAfter] of r.gaps) {
    if (b < from || a > to) continue;
    const ms = (b - a) * 1000;
    if (ms > best.ms) [best.ms, best.lost] = [ms, lost];
    const dataplaneMs = lost > 0 ? ms : Math.max(1, ms - (sentAfter - sentBefore) * 1000 + 1);
    best.dataplaneMs = Math.max(best.dataplaneMs, dataplaneMs);
  }
  return best;
}
