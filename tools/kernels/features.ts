// Prints the kernel feature table bvcnid probes at start-up (src/dataplane/features.ts)
// for the running kernel; `make test-kernels` runs it in each VM. Exit 1 when bvcnid
// would refuse this kernel; with `--want conntrack|no-conntrack`, exit 3 when bvcnid
// would load the other program set.
import { KERNEL_FLOOR, formatFeatures, probeKernelFeatures, programSet, refusalMessage } from '../../src/dataplane/features.js';

const wantAt = process.argv.indexOf('--want');
const want = wantAt > 0 ? process.argv[wantAt + 1] : undefined;

const k = await probeKernelFeatures();
console.log(`kernel ${k.kernel} (bvcni's floor: Linux ${KERNEL_FLOOR})`);
for (const [name, since, state, detail] of formatFeatures(k)) {
  console.log(`  ${name.padEnd(66)} ${since.padEnd(5)} ${state}${detail ? `  (${detail})` : ''}`);
}
const refusal = refusalMessage(k);
if (refusal) console.log(`bvcnid would refuse: ${refusal}`);
const set = programSet(k);
if (!refusal) console.log(`bvcnid would load the ${set.name} programs (${set.dir})`);
if (!refusal && want && want !== set.name) console.log(`wanted the ${want} programs`);
process.exit(refusal ? 1 : want && want !== set.name ? 3 : 0);
