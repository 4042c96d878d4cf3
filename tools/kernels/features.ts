// Prints the kernel feature table bvcnid probes at start-up (src/dataplane/features.ts)
// for the running kernel; `make test-kernels` runs it in each VM. Exit 1 when bvcnid
// would refuse this kernel.
import { KERNEL_FLOOR, formatFeatures, probeKernelFeatures, refusalMessage } from '../../src/dataplane/features.js';

const k = await probeKernelFeatures();
console.log(`kernel ${k.kernel} (bvcni's floor: Linux ${KERNEL_FLOOR})`);
for (const [name, since, state, detail] of formatFeatures(k)) {
  console.log(`  ${name.padEnd(66)} ${since.padEnd(5)} ${state}${detail ? `  (${detail})` : ''}`);
}
const refusal = refusalMessage(k);
if (refusal) console.log(`bvcnid would refuse: ${refusal}`);
process.exit(refusal ? 1 : 0);
