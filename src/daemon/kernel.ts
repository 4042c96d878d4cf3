// bvcnid's start-up check of the kernel: the probe table logged once, and a
// refusal (the caller exits before creating anything) when a required feature
// is missing. Features with a fallback are logged as warnings.
import type { Logger } from 'pino';
import { formatFeatures, probeKernelFeatures, refusalMessage, type KernelFeatures } from '../dataplane/features.js';

/** True when bvcnid may go on. */
export async function kernelGate(log: Logger, probe: () => Promise<KernelFeatures> = () => probeKernelFeatures()): Promise<boolean> {
  const k = await probe();
  const table = Object.fromEntries(formatFeatures(k).map(([name, since, state, detail]) => [name, `${state} (Linux ${since})${detail ? `: ${detail}` : ''}`]));
  log.info({ kernel: k.kernel, features: table }, 'kernel features');
  for (const f of k.degraded) log.warn({ feature: f.name, since: f.since, fallback: f.fallback }, `kernel lacks ${f.name}: using the fallback`);
  const refusal = refusalMessage(k);
  if (refusal) {
    log.fatal({ kernel: k.kernel, missing: k.missing.map((f) => ({ feature: f.name, since: f.since, detail: f.detail })) }, refusal);
    return false;
  }
  return true;
}
