// The plugin executable's start-up (issue 14): what every CNI call pays before
// bvcni does anything. CPU time per call is what bounds how many pods a node
// starts per second on few cores, and it is steadier than wall time on a busy
// machine: it is read from this process's cutime+cstime (/proc/self/stat,
// children waited for) around batches of PARALLEL VERSION calls started at
// once; wall time per call from sequential calls. Variants, interleaved (the
// order rotated each round): this build's executable (a startup snapshot, not
// rehashed), the same sources built with the code cache instead (as before
// issue 14) and with a snapshot that V8 rehashes, `node -e 0` and the
// reference bridge plugin. BVB_ROUNDS / BVB_PARALLEL shrink the run.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { median } from '../../src/common/stats.js';
import { NODE_PLUGIN, REF_DIR } from '../fixtures/cni/harness.js';

const ROUNDS = Number(process.env.BVB_ROUNDS ?? 6);
const PARALLEL = Number(process.env.BVB_PARALLEL ?? 50);
const SEQUENTIAL = Number(process.env.BVB_SEQUENTIAL ?? 10);
const TICK_MS = 1000 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

/** CPU time of this process's waited-for children so far (ms). */
function childrenCpuMs(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[13]) + Number(f[14])) * TICK_MS; // cutime, cstime (fields 16, 17)
}

function call(argv: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = spawn(argv[0]!, argv.slice(1), { env: { CNI_COMMAND: 'VERSION' }, stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.on('error', reject);
    c.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${argv.join(' ')}: exit ${code}: ${out}`))));
  });
}

const dir = mkdtempSync(join(tmpdir(), 'bvcni-startup-'));
try {
  const build = (name: string, env: Record<string, string>): string => {
    const out = join(dir, name, 'bvcni');
    execFileSync(process.execPath, ['--import', 'tsx', 'tools/sea.ts', 'src/cni/main.ts', out], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] });
    return out;
  };
  const variants: Record<string, string[]> = {
    'this build (snapshot, not rehashed)': [NODE_PLUGIN],
    'code cache (before)': [build('cache', { BVCNI_SEA_SNAPSHOT: '0', BVCNI_SEA_EXEC_ARGV: '' })],
    'snapshot, rehashed': [build('rehash', { BVCNI_SEA_SNAPSHOT: '1', BVCNI_SEA_EXEC_ARGV: '' })],
    'node -e 0': [process.execPath, '-e', '0'],
    'reference bridge': [join(REF_DIR, 'bridge')],
  };
  const names = Object.keys(variants);
  const cpu: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  const wall: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (const argv of Object.values(variants)) await call(argv); // page cache warm for all
  for (let r = 0; r < ROUNDS; r++) {
    const k = r % names.length;
    for (const n of [...names.slice(k), ...names.slice(0, k)]) {
      const argv = variants[n]!;
      const c0 = childrenCpuMs();
      await Promise.all(Array.from({ length: PARALLEL }, () => call(argv)));
      cpu[n]!.push((childrenCpuMs() - c0) / PARALLEL);
      for (let i = 0; i < SEQUENTIAL; i++) {
        const t0 = performance.now();
        await call(argv);
        wall[n]!.push(performance.now() - t0);
      }
    }
  }
  const base = names[1]!;
  console.log(`plugin start-up, VERSION; CPU per call (${PARALLEL} at once, median of ${ROUNDS} interleaved batches) and wall time per call (median of ${ROUNDS * SEQUENTIAL} sequential):`);
  for (const n of names) {
    const c = median(cpu[n]!);
    console.log(`  ${n.padEnd(36)} CPU ${c.toFixed(2).padStart(6)} ms  (${(c / median(cpu[base]!)).toFixed(3)}× the code cache)   wall ${median(wall[n]!).toFixed(2).padStart(6)} ms`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
