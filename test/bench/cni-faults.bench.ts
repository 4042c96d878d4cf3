// The full fault run of issue 4: 1,000 ADD/DEL cycles with 10% of the ADDs
// SIGKILLed, then GC, 0 leaks (make test runs a 300-cycle version).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const test = fileURLToPath(new URL('../integration/cni-faults.test.ts', import.meta.url));
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', test], {
  stdio: 'inherit',
  env: { ...process.env, BVCNI_FAULT_CYCLES: process.env.BVCNI_FAULT_CYCLES ?? '1000' },
});
process.exit(r.status ?? 1);
