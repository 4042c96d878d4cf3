// Bundles one executable entry point into dist/bin/<name> with esbuild.
// koffi stays external: it loads its native module relative to its own folder.
import { build } from 'esbuild';
import { chmodSync } from 'node:fs';

const [name, entry, outfile] = process.argv.slice(2);
if (!name || !entry || !outfile) {
  console.error('usage: bundle.ts NAME ENTRY OUTFILE');
  process.exit(2);
}

await build({
  entryPoints: [entry],
  outfile,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  // A linked map file, not an inline one: an inline map is parsed into the
  // heap of a long-lived daemon (about 19 MiB for bvcnid).
  sourcemap: 'linked',
  external: ['koffi'],
  banner: {
    js: "#!/usr/bin/env node\nimport { createRequire as __bvcniCreateRequire } from 'node:module';\nconst require = __bvcniCreateRequire(import.meta.url);",
  },
  logLevel: 'warning',
});
chmodSync(outfile, 0o755);
