// A released build of bvcni, for benchmarks that compare this build with it:
// the tag checked out with `git worktree add` into a temporary directory,
// built there by its own `make build` with its own `npm ci` and the Node it
// was released on (v0.1.0: the machine's Node 20 on PATH, which its Makefile
// calls as `node`). Only the plugin executable and its support directory are
// kept, in another temporary directory; the worktree is removed at once.
// v0.1.0 comes from the upgrade tests' cache instead (test/support/release-build.ts).
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { releaseBuild, V0_1_0 } from '../support/release-build.js';

export interface ReleasePlugin {
  tag: string;
  /** The plugin executable (with `${plugin}.d/` beside it). */
  plugin: string;
  /** The Node.js release embedded in it, e.g. "v20.20.2". */
  runtime: string;
  cleanup(): void;
}

/** The Node version a single executable embeds: it still honours NODE_OPTIONS, so a preloaded script can ask. */
export function embeddedRuntime(executable: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'bvcni-runtime-'));
  try {
    const probe = join(dir, 'probe.cjs');
    writeFileSync(probe, 'process.stderr.write(`bvcni-runtime ${process.version}\\n`);\n');
    const r = spawnSync(executable, [], { env: { CNI_COMMAND: 'VERSION', NODE_OPTIONS: `--require=${probe}` }, input: '', encoding: 'utf8' });
    const v = /^bvcni-runtime (v[\d.]+)$/m.exec(r.stderr ?? '')?.[1];
    if (r.status !== 0 || !v) throw new Error(`${executable}: cannot read its runtime (exit ${r.status}): ${r.stderr}`);
    return v;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function buildRelease(tag: string, log: (line: string) => void = () => {}): ReleasePlugin {
  // v0.1.0: the build the upgrade tests keep under /var/tmp, found by the commit CHANGELOG.md records.
  if (tag === V0_1_0.release) {
    const r = releaseBuild(V0_1_0, log);
    return { tag, plugin: r.plugin, runtime: embeddedRuntime(r.plugin), cleanup: () => {} };
  }
  const repo = execFileSync('git', ['rev-parse', '--show-toplevel'], { encoding: 'utf8' }).trim();
  execFileSync('git', ['-C', repo, 'rev-parse', '--verify', '--quiet', `refs/tags/${tag}`], { stdio: 'ignore' });
  const keep = mkdtempSync(join(tmpdir(), `bvcni-${tag}-`));
  const wt = join(keep, 'src');
  try {
    log(`building ${tag} in ${wt} (git worktree, npm ci, make build)`);
    execFileSync('git', ['-C', repo, 'worktree', 'add', '--detach', '--quiet', wt, tag], { stdio: ['ignore', 'ignore', 'pipe'] });
    // The release's own toolchain: no node_modules/.bin of this build on PATH.
    const PATH = (process.env.PATH ?? '').split(delimiter).filter((d) => !d.includes('node_modules')).join(delimiter);
    execFileSync('make', ['-C', wt, 'build'], { env: { ...process.env, PATH }, stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 64 << 20 });
    const plugin = join(keep, 'bvcni');
    cpSync(join(wt, 'dist/bin/bvcni'), plugin);
    cpSync(join(wt, 'dist/bin/bvcni.d'), `${plugin}.d`, { recursive: true });
    return { tag, plugin, runtime: embeddedRuntime(plugin), cleanup: () => rmSync(keep, { recursive: true, force: true }) };
  } catch (e) {
    rmSync(keep, { recursive: true, force: true });
    throw e;
  } finally {
    if (existsSync(wt)) execFileSync('git', ['-C', repo, 'worktree', 'remove', '--force', wt], { stdio: 'ignore' });
    execFileSync('git', ['-C', repo, 'worktree', 'prune'], { stdio: 'ignore' });
  }
}
