// deploy/Dockerfile cannot be built here (no container engine reaches a
// registry), so check what can be: every path it copies exists, the runtime
// stage has what the daemon runs, and — the part most likely to break — the
// image's /app layout (dist/ plus production node_modules only) actually runs
// bvcnid, bvcnictl and the plugin.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE_PLUGIN_PROBE } from '../support/plugin-probe.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const dockerfile = readFileSync(join(ROOT, 'deploy/Dockerfile'), 'utf8');
// Continuation lines joined, comments dropped: one instruction per entry.
const instructions = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));
const stages = instructions.reduce<string[][]>((acc, ins) => {
  if (/^FROM\s/i.test(ins)) acc.push([]);
  acc.at(-1)?.push(ins);
  return acc;
}, []);

describe('deploy/Dockerfile', () => {
  test('two stages on Debian 12 with the pinned Node (node-runtime.test.ts): build (clang, libbpf-dev, make build), runtime (libbpf1, iproute2, bpftool)', () => {
    assert.equal(stages.length, 2);
    const [build, runtime] = stages as [string[], string[]];
    assert.match(build[0]!, /^FROM \S*node:[\d.]+-bookworm AS build$/);
    assert.match(runtime[0]!, /^FROM \S*node:[\d.]+-bookworm-slim$/);
    const buildRuns = build.filter((i) => i.startsWith('RUN')).join('\n');
    for (const pkg of ['clang', 'llvm', 'libbpf-dev', 'make']) assert.match(buildRuns, new RegExp(`\\b${pkg}\\b`));
    assert.match(buildRuns, /make build/);
    const runtimeRuns = runtime.filter((i) => i.startsWith('RUN')).join('\n');
    // The daemon execs ip, tc (iproute2) and sysctl (procps); bpftool is for operators.
    for (const pkg of ['libbpf1', 'iproute2', 'bpftool', 'procps']) assert.match(runtimeRuns, new RegExp(`\\b${pkg}\\b`));
    assert.ok(runtime.includes('ENTRYPOINT ["node", "/app/dist/bin/bvcnid"]'));
  });

  test('every COPY source of the build stage exists in the repository', () => {
    for (const ins of stages[0]!.filter((i) => /^COPY\s/.test(i) && !i.includes('--from'))) {
      const parts = ins.split(/\s+/).slice(1);
      for (const src of parts.slice(0, -1)) assert.ok(existsSync(join(ROOT, src)), `${ins}: ${src} missing`);
    }
  });

  test('the manifest runs the image the way the Dockerfile builds it', () => {
    const manifest = readFileSync(join(ROOT, 'deploy/bvcni.yaml'), 'utf8');
    assert.match(dockerfile, /-t (\S+) \./);
    const tag = /-t (\S+) \./.exec(dockerfile)![1]!;
    assert.ok(manifest.includes(`image: ${tag}`), `deploy/bvcni.yaml runs ${tag}`);
    // bvcnictl and bvcnid on PATH: the uninstall manifest and `kubectl exec ... bvcnictl` rely on it.
    assert.match(dockerfile, /ln -s \/app\/dist\/bin\/bvcnictl \/usr\/local\/bin\/bvcnictl/);
  });
});

describe('the image layout: /app/dist + production node_modules', () => {
  const app = join(mkdtempSync(join(tmpdir(), 'bvx-image-')), 'app');
  const built = ['dist/bin/bvcnid', 'dist/bin/bvcnictl', 'dist/bin/bvcni', 'dist/bpf'].every((p) => existsSync(join(ROOT, p)));

  before(() => {
    if (!built) return;
    mkdirSync(app, { recursive: true });
    cpSync(join(ROOT, 'dist'), join(app, 'dist'), { recursive: true });
    cpSync(join(ROOT, 'package.json'), join(app, 'package.json'));
    // What `npm prune --omit=dev` keeps.
    const ls = spawnSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: ROOT, encoding: 'utf8' });
    // From the first node_modules on: where node_modules is a link (a git
    // worktree's), npm may name the link's target instead of ROOT's path.
    for (const dir of ls.stdout.split('\n').filter((d) => d.includes('/node_modules/')))
      cpSync(dir, join(app, dir.slice(dir.indexOf('/node_modules/') + 1)), { recursive: true });
  });
  after(() => rmSync(join(app, '..'), { recursive: true, force: true }));

  const node = (args: string[]) => spawnSync(process.execPath, args, { cwd: tmpdir(), encoding: 'utf8', env: { PATH: process.env.PATH } });

  test('bvcnid and bvcnictl start from /app with only production dependencies', { skip: !built && 'run make build first' }, () => {
    assert.ok(!existsSync(join(app, 'node_modules/typescript')), 'dev dependencies are not there');
    assert.ok(existsSync(join(app, 'node_modules/koffi')), 'koffi is');
    const d = node([join(app, 'dist/bin/bvcnid'), '--help']);
    assert.equal(d.status, 0, d.stderr);
    assert.match(d.stdout, /--node-name/);
    const c = node([join(app, 'dist/bin/bvcnictl'), 'status', '--pin-dir', join(app, 'no-such-dir')]);
    assert.equal(c.status, 1, c.stderr);
    assert.match(c.stdout, /^error: pin directory .* does not exist/, 'bvcnictl ran its handler');
    // A real libbpf call through koffi: opening a pin that is not there.
    const lib = node([join(app, 'dist/bin/bvcnictl'), 'drops', '--pin-dir', '/sys/fs/bpf']);
    assert.equal(lib.status, 1);
    assert.match(lib.stdout, /cannot read the stats map in \/sys\/fs\/bpf: .*ENOENT/);
  });

  test('the plugin the daemon installs runs with an empty environment', { skip: !built && 'run make build first' }, () => {
    const r = spawnSync(join(app, 'dist/bin/bvcni'), [], { env: { CNI_COMMAND: 'VERSION' }, input: '{"cniVersion":"1.0.0"}', encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.ok((JSON.parse(r.stdout) as { supportedVersions: string[] }).supportedVersions.includes('1.0.0'));
    // The front answers VERSION alone: its Node plugin must start too.
    const n = spawnSync(join(app, 'dist/bin/bvcni'), [], { env: NODE_PLUGIN_PROBE.env, input: NODE_PLUGIN_PROBE.input, encoding: 'utf8' });
    assert.match(n.stdout, NODE_PLUGIN_PROBE.answer, n.stderr);
  });
});
