// What this build is: the release (package.json's version) and the git commit
// it was built from. The bundles and the plugin's single executable get both
// from esbuild's `define` at build time (tools/build-info.ts); code run from
// source (tests, tsx) reads them from the checkout instead.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

declare const __BVCNI_RELEASE__: string | undefined;
declare const __BVCNI_COMMIT__: string | undefined;

export interface Release {
  /** package.json's version, e.g. 0.3.0-dev. */
  release: string;
  /** The full commit hash, with "-dirty" when the tree had uncommitted changes; "unknown" outside a checkout. */
  commit: string;
}

let cached: Release | undefined;

export function release(): Release {
  if (cached) return cached;
  if (typeof __BVCNI_RELEASE__ === 'string' && typeof __BVCNI_COMMIT__ === 'string') {
    cached = { release: __BVCNI_RELEASE__, commit: __BVCNI_COMMIT__ };
  } else {
    const root = fileURLToPath(new URL('../../', import.meta.url));
    cached = { release: readRelease(root), commit: readCommit(root) };
  }
  return cached;
}

export function readRelease(root: string): string {
  return (JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { version: string }).version;
}

export function readCommit(root: string): string {
  try {
    const git = (...args: string[]): string => execFileSync('git', ['-C', root, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const head = git('rev-parse', 'HEAD');
    return git('status', '--porcelain', '--untracked-files=no') ? `${head}-dirty` : head;
  } catch {
    return 'unknown';
  }
}
