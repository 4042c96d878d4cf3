// Bundles one executable entry point into dist/bin/<name> with esbuild.
// koffi stays external: it loads its native module relative to its own folder.
import { buildDefines } from './build-info.js';
import { build, type Plugin } from 'esbuild';
import { chmodSync } from 'node:fs';
import { esbuildTarget } from './node-target.js';

const [name, entry, outfile] = process.argv.slice(2);
if (!name || !entry || !outfile) {
  console.error('usage: bundle.ts NAME ENTRY OUTFILE');
  process.exit(2);
}

/**
 * @kubernetes/client-node declares no `sideEffects`, so esbuild keeps every
 * module its index re-exports: all generated API classes and models (3 MB of
 * the bundle, about 14 MiB of bvcnid's RSS) although only KubeConfig and Watch
 * are used. Its modules only define classes and functions, so they are marked
 * side-effect free and the unused ones dropped.
 */
const clientNodeTreeShaking: Plugin = {
  name: 'client-node-tree-shaking',
  setup(b) {
    const inPackage = (p: string): boolean => p.includes('/node_modules/@kubernetes/client-node/');
    b.onResolve({ filter: /^(\.|@kubernetes\/client-node)/ }, async (args) => {
      if (args.pluginData === 'client-node-tree-shaking') return undefined;
      if (!args.path.startsWith('@kubernetes/client-node') && !inPackage(args.importer)) return undefined;
      const r = await b.resolve(args.path, {
        kind: args.kind,
        importer: args.importer,
        resolveDir: args.resolveDir,
        pluginData: 'client-node-tree-shaking',
      });
      if (r.errors.length > 0 || !inPackage(r.path)) return r;
      return { ...r, sideEffects: false };
    });
  },
};

/**
 * undici is what client-node 2.x's fetch-based parts run on (its Watch, its
 * generated API clients, KubeConfig.applyToFetchOptions); loading it costs
 * ~28 MiB of RSS at start-up. bvcnid and bvcnictl talk to the API server
 * through node:http(s) with KubeConfig.applyToHTTPSOptions (src/kube/client.ts)
 * and never reach those parts, so undici is a stub whose every use throws,
 * naming why, rather than failing silently.
 */
const noUndici: Plugin = {
  name: 'no-undici',
  setup(b) {
    b.onResolve({ filter: /^undici$/ }, () => ({ path: 'undici', namespace: 'bvcni-stub' }));
    b.onLoad({ filter: /^undici$/, namespace: 'bvcni-stub' }, () => ({
      contents: `const unused = (name) => function () { throw new Error('undici.' + name + ' is not in this bundle: bvcni reaches the API server through node:https (src/kube/client.ts, tools/bundle.ts)'); };
module.exports = { Agent: unused('Agent'), ProxyAgent: unused('ProxyAgent'), fetch: unused('fetch') };`,
      loader: 'js',
    }));
  },
};

await build({
  entryPoints: [entry],
  outfile,
  bundle: true,
  platform: 'node',
  target: esbuildTarget(),
  format: 'esm',
  // A linked map file, not an inline one: an inline map is parsed into the
  // heap of a long-lived daemon (about 19 MiB for bvcnid).
  sourcemap: 'linked',
  external: ['koffi'],
  define: buildDefines(),
  plugins: [clientNodeTreeShaking, noUndici],
  banner: {
    // The target is recorded so that a test can hold the bundle to the pinned Node.
    js: `#!/usr/bin/env node\n// bvcni bundle, esbuild target ${esbuildTarget()}\nimport { createRequire as __bvcniCreateRequire } from 'node:module';\nconst require = __bvcniCreateRequire(import.meta.url);`,
  },
  logLevel: 'warning',
});
chmodSync(outfile, 0o755);
