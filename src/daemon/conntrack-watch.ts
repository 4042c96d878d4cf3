// Conntrack that appears after bvcnid started: on Debian nf_conntrack is a
// module, and kube-proxy (which loads it) may start after bvcnid on a fresh
// node. bvcnid then runs the no-conntrack programs (features.ts, programSet()),
// and switches to the conntrack set once the kfuncs resolve. The check on the
// timer is one stat of a sysctl file nf_conntrack creates; the probe (a BPF
// load) runs only when that file is there, once.
import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import type { FeatureState } from '../dataplane/features.js';

/** Exists exactly while nf_conntrack is loaded (built in or as a module). */
export const CONNTRACK_SYSCTL = '/proc/sys/net/netfilter/nf_conntrack_max';

export interface ConntrackWatchOptions {
  log: Logger;
  intervalMs: number;
  /** Re-probes the conntrack kfuncs (features.ts, probeConntrack). */
  probe: () => Promise<FeatureState>;
  /** Called once, when the probe says yes: load the conntrack set in place. */
  onAvailable: () => void;
  present?: () => boolean;
}

export function watchForConntrack(o: ConntrackWatchOptions): { stop(): void } {
  const present = o.present ?? (() => existsSync(CONNTRACK_SYSCTL));
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const schedule = (): void => {
    if (!stopped) timer = setTimeout(() => void tick(), o.intervalMs).unref();
  };
  const tick = async (): Promise<void> => {
    if (stopped) return;
    if (!present()) return schedule();
    const state = await o.probe().catch((): FeatureState => 'unknown');
    if (stopped) return;
    if (state === 'yes') {
      o.log.info('conntrack appeared (nf_conntrack loaded): switching to the conntrack programs in place');
      stopped = true;
      o.onAvailable();
      return;
    }
    // Loaded, yet the kfuncs do not load: probing again would say the same; say so once and stop.
    o.log.warn({ probe: state }, 'nf_conntrack is loaded but the conntrack kfuncs still do not load: keeping the no-conntrack programs');
    stopped = true;
  };
  schedule();
  return {
    stop(): void {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
