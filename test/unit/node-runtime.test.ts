// bvcni ships and runs one Node.js release, pinned in package.json
// (tools/node-target.ts). Every artefact is held to it here: the runtime the
// plugin executable embeds, the esbuild target of the daemon and CLI bundles,
// the Dockerfile's base images, and the runtime these tests run under.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE_PLUGIN_PROBE } from '../support/plugin-probe.js';
import { NODE_PACKAGE, esbuildTarget, pinnedNodeMajor, pinnedNodeVersion } from '../../tools/node-target.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The major this release line is on: Node 20 reached end of life on 2026-04-30 (issue 19). */
const MAJOR = 24;
const pinned = pinnedNodeVersion();
const built = ['dist/bin/bvcni', 'dist/bin/bvcnid', 'dist/bin/bvcnictl'].every((p) => existsSync(join(ROOT, p)));

describe('the pinned Node.js release', () => {
  test(`is an exact Node ${MAJOR} release, locked with its integrity`, () => {
    assert.match(pinned, /^\d+\.\d+\.\d+$/);
    assert.equal(pinnedNodeMajor(), MAJOR);
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { version?: string; integrity?: string; dev?: boolean }>;
    };
    const entry = lock.packages[`node_modules/${NODE_PACKAGE}`];
    assert.equal(entry?.version, pinned, 'package-lock.json installs the pinned release');
    assert.match(entry?.integrity ?? '', /^sha512-/);
    // A dev dependency: `npm prune --omit=dev` keeps its 50 MB out of the image, whose base is the same release.
    assert.equal(entry?.dev, true);
  });

  test('runs these tests (make test uses the Makefile NODE, not the node on PATH)', () => {
    assert.equal(process.version, `v${pinned}`, `tests run under ${process.execPath}`);
  });

  test('the installed runtime is the pinned one', () => {
    const r = spawnSync(join(ROOT, 'node_modules', NODE_PACKAGE, 'bin', 'node'), ['-p', 'process.version'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), `v${pinned}`);
  });
});

describe('shipped artefacts are built for the pinned Node', () => {
  test('the plugin executable embeds it (as its trace reports)', { skip: !built && 'run make build first' }, () => {
    // Through the front to its Node plugin (the front answers VERSION alone, without Node).
    const r = spawnSync(join(ROOT, 'dist/bin/bvcni'), [], {
      env: { ...NODE_PLUGIN_PROBE.env, BVCNI_TRACE: '1' },
      input: NODE_PLUGIN_PROBE.input,
      encoding: 'utf8',
    });
    assert.equal(r.status, 1, r.stdout + r.stderr);
    // The CNI answer is the control: the trace below comes from a plugin that really ran.
    assert.match(r.stdout, NODE_PLUGIN_PROBE.answer);
    const runtime = /^bvcni trace \(node (v[\d.]+);/m.exec(r.stderr)?.[1];
    assert.equal(runtime, `v${pinned}`, r.stderr);
  });

  test('bvcnid and bvcnictl bundles target its major', { skip: !built && 'run make build first' }, () => {
    assert.equal(esbuildTarget(), `node${MAJOR}`);
    for (const b of ['bvcnid', 'bvcnictl']) {
      const head = readFileSync(join(ROOT, 'dist/bin', b), 'utf8').split('\n', 3).join('\n');
      assert.match(head, /^#!\/usr\/bin\/env node\n/);
      assert.equal(/esbuild target (node\d+)/.exec(head)?.[1], `node${MAJOR}`, `dist/bin/${b}: ${head}`);
    }
  });

  test("the Dockerfile's build and runtime stages are the same release on Debian 12", () => {
    const froms = readFileSync(join(ROOT, 'deploy/Dockerfile'), 'utf8')
      .split('\n')
      .filter((l) => /^FROM\s/i.test(l));
    assert.equal(froms.length, 2);
    assert.match(froms[0]!, new RegExp(`^FROM docker\\.io/library/node:${pinned.replaceAll('.', '\\.')}-bookworm AS build$`));
    assert.match(froms[1]!, new RegExp(`^FROM docker\\.io/library/node:${pinned.replaceAll('.', '\\.')}-bookworm-slim$`));
  });
});
