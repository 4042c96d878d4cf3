// bvcnid's start-up check of the kernel: the probe table logged once, and a
// refusal (the caller exits before creating anything) when a required feature
// is missing. Features with a fallback are logged as warnings. It also picks
// the build of the programs this kernel loads (features.ts, programSet()).
import type { Logger } from 'pino';
import {
  choosePodDevice,
  formatFeatures,
  probeKernelFeatures,
  programSet,
  refusalMessage,
  type KernelFeatures,
  type PodDeviceChoice,
  type ProgramSet,
} from '../dataplane/features.js';
import type { PodDevice } from '../dataplane/endpoint.js';

/** The program set to load when bvcnid may go on; undefined when it must refuse. */
export async function kernelGate(
  log: Logger,
  probe: () => Promise<KernelFeatures> = () => probeKernelFeatures(),
  objDir?: string,
): Promise<ProgramSet | undefined> {
  const k = await probe();
  const table = Object.fromEntries(formatFeatures(k).map(([name, since, state, detail]) => [name, `${state} (Linux ${since})${detail ? `: ${detail}` : ''}`]));
  log.info({ kernel: k.kernel, features: table }, 'kernel features');
  for (const f of k.degraded) log.warn({ feature: f.name, since: f.since, fallback: f.fallback, detail: f.detail }, `kernel lacks ${f.name}: using the fallback`);
  const refusal = refusalMessage(k);
  if (refusal) {
    log.fatal({ kernel: k.kernel, missing: k.missing.map((f) => ({ feature: f.name, since: f.since, detail: f.detail })) }, refusal);
    return undefined;
  }
  const set = programSet(k, objDir);
  log.info({ programs: set.name, dir: set.dir }, `loading the ${set.name} programs`);
  return set;
}

/** --pod-device against the kernel: what pods get, logged; undefined (refusal, logged) when netkit is asked for and absent. */
export async function podDeviceGate(
  log: Logger,
  want: PodDeviceChoice,
  probe: () => Promise<KernelFeatures> = () => probeKernelFeatures(),
): Promise<PodDevice | undefined> {
  const k = await probe();
  const c = choosePodDevice(k, want);
  if ('error' in c) {
    log.fatal({ kernel: k.kernel, podDevice: want }, `${c.error}; nothing was installed`);
    return undefined;
  }
  log.info({ podDevice: c.device, why: c.why }, `pods get ${c.device === 'netkit' ? 'netkit pairs' : 'veth pairs'}`);
  return c.device;
}
