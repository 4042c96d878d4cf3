// A released bvcni, built once per commit and kept under /var/tmp for the
// upgrade tests: the commit's tree taken with `git archive` (no worktree left
// registered in the repository, and no tag needed: CI's clone may not carry
// tags, so a release is named by the full commit CHANGELOG.md records), built
// there by its own `make build` with its own `npm ci` and the Node it was
// released on (v0.1.0: the machine's Node 20 on PATH, which its Makefile calls
// as `node`). A later run finds the build and starts at once.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { REPO_ROOT, type DaemonBuild } from './kube-daemons.js';

/** v0.1.0, as CHANGELOG.md records it. */
export const V0_1_0 = { release: 'v0.1.0', commit: '20182b2356df67def688c30fa46009f9b7cd900b' } as const;

export interface ReleaseBuild extends DaemonBuild {
  release: string;
  commit: string;
  /** The built tree: dist/bin, dist/bpf. */
  dir: string;
  /** The plugin executable (bvcni.d/ beside it). */
  plugin: string;
}

const CACHE = process.env.BVCNI_RELEASE_CACHE ?? '/var/tmp';
/** The Node a release of the Node 20 era runs on: the machine's own. */
const NODE20 = process.env.BVCNI_RELEASE_NODE ?? '/usr/bin/node';

export function releaseBuild(rel: { release: string; commit: string } = V0_1_0, log: (line: string) => void = () => {}): ReleaseBuild {
  if (!/^[0-9a-f]{40}$/.test(rel.commit)) throw new Error(`${rel.release}: a full commit id is needed, got ${rel.commit}`);
  const root = join(CACHE, `bvcni-release-${rel.commit}`);
  const dir = join(root, 'src');
  const out: ReleaseBuild = {
    name: rel.release,
    release: rel.release,
    commit: rel.commit,
    dir,
    node: NODE20,
    bvcnid: join(dir, 'dist/bin/bvcnid'),
    plugin: join(dir, 'dist/bin/bvcni'),
    metricsAddr: false,
  };
  if (existsSync(out.bvcnid) && existsSync(out.plugin) && existsSync(join(dir, 'dist/bpf/bpf_pod.o'))) return out;
  const tmp = `${root}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(join(tmp, 'src'), { recursive: true });
  try {
    log(`building ${rel.release} (${rel.commit.slice(0, 12)}) in ${tmp}: git archive, npm ci, make build (a few minutes, once)`);
    const tar = execFileSync('git', ['-C', REPO_ROOT, 'archive', '--format=tar', rel.commit], { maxBuffer: 512 << 20 });
    execFileSync('tar', ['-x', '-C', join(tmp, 'src')], { input: tar });
    // The release's own toolchain: no node_modules/.bin of this build on PATH, its Node first.
    const PATH = [join(NODE20, '..'), ...(process.env.PATH ?? '').split(delimiter).filter((d) => !d.includes('node_modules'))].join(delimiter);
    execFileSync('make', ['-C', join(tmp, 'src'), 'build'], { env: { ...process.env, PATH }, stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 64 << 20 });
    rmSync(root, { recursive: true, force: true });
    renameSync(tmp, root);
    return out;
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}
