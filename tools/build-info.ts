// The release and commit every executable embeds (esbuild `define`), read
// once per build from the checkout: see src/common/release.ts.
import { fileURLToPath } from 'node:url';
import { readCommit, readRelease } from '../src/common/release.js';

const root = fileURLToPath(new URL('../', import.meta.url));

export function buildDefines(): Record<string, string> {
  return {
    __BVCNI_RELEASE__: JSON.stringify(readRelease(root)),
    __BVCNI_COMMIT__: JSON.stringify(readCommit(root)),
  };
}
