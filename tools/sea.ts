// Builds a self-contained executable: a Node single executable application
// (SEA) for ENTRY at OUT, in a directory of its own (OUT's, e.g. dist/bin/bvcni.d/)
// with what it loads at run time — koffi's native module and libbpf with its
// dependencies — so it runs on a host without Node.js and with an empty
// environment. The directory is staged and swapped in whole. The plugin's
// native front (src/cni/front/, dist/bin/bvcni) runs it from beside itself, and
// the daemon installs the front and the directory together.
//
// The executable is a copy of the pinned Node (tools/node-target.ts), which this
// script must run under. Node 24's SEA still runs a CommonJS script whose
// require() loads only builtins, hence the CJS bundle with koffi left out
// (loader/ffi.ts dlopens it from OUT.d).
import { buildDefines } from './build-info.js';
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, realpathSync, renameSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { assertPinnedRuntime, esbuildTarget } from './node-target.js';

const [entry, out] = process.argv.slice(2);
if (!entry || !out) {
  console.error('usage: sea.ts ENTRY OUT');
  process.exit(2);
}
assertPinnedRuntime();
// Start-up (README, "Plugin start-up"): every CNI call is a new process, so its
// CPU time bounds how many pods a node starts per second. Measured here per
// VERSION call (user+sys, 50 at once, 6 interleaved batches, on a loaded machine:
// indicative): code cache 22.4 ms, startup snapshot 24.3 ms, startup snapshot
// without rehashing it 20.4 ms, `node -e 0` 19.8 ms. So: a startup snapshot of
// the evaluated modules (src/cni/main.ts, preload()), and V8 keeps the hash seed
// baked into it (--no-rehash-snapshot) instead of rehashing every string and
// table of the heap with a random one at each start. The cost: string hashes are
// predictable, which matters to a process that puts many attacker-chosen keys in
// one table; the plugin reads a handful of keys from its runtime's config and
// environment. BVCNI_SEA_SNAPSHOT=0 and BVCNI_SEA_EXEC_ARGV= build the variants
// for comparison.
const SNAPSHOT = process.env.BVCNI_SEA_SNAPSHOT !== '0';
const EXEC_ARGV = (process.env.BVCNI_SEA_EXEC_ARGV ?? '--no-rehash-snapshot').split(' ').filter(Boolean);

const outDir = resolve(dirname(out));
const work = resolve(dirname(outDir), `.${basename(outDir)}.sea`);
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
const script = join(work, 'main.cjs');
const blob = join(work, 'main.blob');

await build({
  entryPoints: [entry],
  outfile: script,
  bundle: true,
  platform: 'node',
  target: esbuildTarget(),
  format: 'cjs',
  external: ['koffi'],
  define: buildDefines(),
  // import.meta only appears on paths the plugin never takes (repo-relative file lookups).
  logOverride: { 'empty-import-meta': 'silent' },
  logLevel: 'warning',
});

writeFileSync(
  join(work, 'sea-config.json'),
  JSON.stringify({ main: script, output: blob, disableExperimentalSEAWarning: true, useCodeCache: !SNAPSHOT, useSnapshot: SNAPSHOT, execArgv: EXEC_ARGV }),
);
// Built under the flags it runs with: V8 refuses a code cache made under other flags.
execFileSync(process.execPath, [...EXEC_ARGV, '--experimental-sea-config', join(work, 'sea-config.json')], { stdio: ['ignore', 'pipe', 'pipe'] });

const tmpBin = join(work, 'bin');
copyFileSync(process.execPath, tmpBin);
chmodSync(tmpBin, 0o755);
const require = createRequire(import.meta.url);
const postject = join(dirname(require.resolve('postject/package.json')), 'dist', 'cli.js');
execFileSync(process.execPath, [postject, tmpBin, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2'], {
  stdio: ['ignore', 'pipe', 'pipe'],
});

// The directory, staged then swapped in, so a half-built one is never seen.
const staged = join(work, 'support');
mkdirSync(staged);
const koffiNode = join(dirname(require.resolve('koffi/package.json')), 'build', 'koffi', `linux_${process.arch}`, 'koffi.node');
copyFileSync(koffiNode, join(staged, 'koffi.node'));
for (const lib of ['libbpf.so.1', 'libelf.so.1', 'libz.so.1']) copyFileSync(findLib(lib), join(staged, lib));
renameSync(tmpBin, join(staged, basename(out)));

rmSync(outDir, { recursive: true, force: true });
renameSync(staged, outDir);
rmSync(work, { recursive: true, force: true });

function findLib(soname: string): string {
  const listing = execFileSync('ldconfig', ['-p'], { encoding: 'utf8' });
  const line = listing.split('\n').find((l) => l.trim().startsWith(`${soname} `) && l.includes('x86-64'));
  const path = line?.split('=>')[1]?.trim();
  if (path && existsSync(path)) return realpathSync(path);
  for (const d of ['/usr/lib/x86_64-linux-gnu', '/lib/x86_64-linux-gnu', '/usr/lib64', '/lib64']) {
    if (existsSync(join(d, soname))) return realpathSync(join(d, soname));
  }
  throw new Error(`${soname} not found on this system (install libbpf1)`);
}
