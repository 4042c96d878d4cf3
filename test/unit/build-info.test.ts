// Every executable reports the release, the commit it was built from and the
// dataplane ABI version (issue 15): what an operator compares across nodes
// during a rolling upgrade.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runCli } from '../../src/cli/run.js';
import { ABI_VERSION } from '../../src/dataplane/abi.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const RELEASE = (JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { version: string }).version;
const HEAD = execFileSync('git', ['-C', ROOT, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();

describe('build info', () => {
  test('bvcnictl version: release from package.json, the checkout\'s commit, the ABI version', async () => {
    const r = await runCli(['version', '--json']);
    assert.equal(r.exitCode, 0, r.output);
    const b = JSON.parse(r.output) as { release: string; commit: string; abiVersion: number };
    assert.equal(b.release, RELEASE);
    assert.match(b.commit, new RegExp(`^${HEAD}(-dirty)?$`));
    assert.equal(b.abiVersion, ABI_VERSION);
  });

  test('the built executables embed the same (bvcnid --version, bvcnictl --version, bvcni run with no command)', () => {
    const lines = [
      // The bundles run on the pinned Node, the one running this test.
      execFileSync(process.execPath, [`${ROOT}dist/bin/bvcnid`, '--version'], { encoding: 'utf8' }).trim(),
      execFileSync(process.execPath, [`${ROOT}dist/bin/bvcnictl`, '--version'], { encoding: 'utf8' }).trim(),
    ];
    // As the reference plugins do: no CNI_COMMAND, the about text on stderr, exit 0, nothing on stdout.
    const plugin = spawnSync(`${ROOT}dist/bin/bvcni`, [], { env: {}, input: '', encoding: 'utf8' });
    assert.equal(plugin.status, 0, plugin.stderr);
    assert.equal(plugin.stdout, '');
    lines.push(plugin.stderr.split('\n')[0]!.replace(/^CNI bvcni plugin/, 'bvcni'));
    for (const [i, name] of ['bvcnid', 'bvcnictl', 'bvcni'].entries()) {
      assert.match(lines[i]!, new RegExp(`^${name} ${RELEASE.replace(/\./g, '\\.')} \\(commit ${HEAD.slice(0, 12)}(-dirty)?, dataplane ABI ${ABI_VERSION}, Node\\.js v\\d+`));
    }
  });
});
