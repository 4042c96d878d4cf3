// tools/check-layers.ts: the imports it must refuse (each a way the tree once
// went wrong), the ones it must let through, and the tree as it is.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkImports, importsOf, PACKAGES, readTree, type SourceFile } from '../../tools/check-layers.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SCRIPT = join(ROOT, 'tools/check-layers.ts');

const file = (path: string, ...imports: string[]): SourceFile => ({ path, text: imports.map((i) => `${i}\n`).join('') + 'export {};\n' });

test('imports are read whatever their form, and comments are not imports', () => {
  const text = [
    "import { a } from './a.js';",
    "import type { B } from '../b.js';",
    "export { c } from './c.js';",
    "export * from './d.js';",
    "const e = await import('./e.js');",
    "import x from 'node:fs';",
    "// import { z } from '../../daemon/z.js';",
    "/* export { y } from '../y.js'; */",
  ].join('\n');
  assert.deepEqual(importsOf(text).sort(), ['../b.js', './a.js', './c.js', './d.js', './e.js']);
});

test('each import against the order is refused, with its file and the rule', () => {
  const bad: [SourceFile, RegExp][] = [
    [file('loader/tc.ts', "import { runSync } from '../src/common/exec.js';"), /loader may not import src\/common/],
    [file('src/cli/commands/nodes.ts', "import { computeDesired } from '../../daemon/desired.js';"), /binary src\/cli imports binary src\/daemon/],
    [file('src/daemon/cni-server.ts', "import { handle } from '../cni/plugin.js';"), /only through src\/cni\/index\.ts/],
    [file('src/sim/demo.ts', "import { formatTable } from '../cli/table.js';"), /src\/sim may not import src\/cli/],
    [file('src/cni/dataplane.ts', "import { koffi } from '../../loader/ffi.js';"), /private to loader/],
    [file('src/common/x.ts', "import type { Link } from '../netlink/rtnl.js';"), /src\/common may not import src\/netlink/],
    [file('src/dataplane/x.ts', "const k = await import('../kube/client.js');"), /src\/dataplane may not import src\/kube/],
    [file('src/sim/x.ts', "import { FakeDataplane } from '../../test/support/fake-dataplane.js';"), /outside loader\/ and src\//],
    [file('src/cni/plugin.ts', "import { main } from './main.js';"), /entry point/],
    [file('src/sim/x.ts', "import { CniServer } from '../daemon/cni-server.js';"), /src\/sim may not import src\/daemon/],
    [file('src/newpkg/x.ts'), /not a known package/],
    [file('src/cni/front/front.c', '#include "../../dataplane/abi.h"'), /includes only headers of its own directory/],
  ];
  for (const [f, reason] of bad) {
    const v = checkImports([f]);
    assert.equal(v.length, 1, `${f.path}: ${f.text}`);
    assert.equal(v[0]!.file, f.path);
    assert.match(v[0]!.reason, reason);
  }
});

test('imports along the order pass', () => {
  const good = [
    file('src/common/cidr.ts', "import { ipv4ToInt } from '../../loader/codec.js';"),
    file('src/netlink/socket.ts', "import { libc } from '../../loader/libc.js';", "import { run } from '../common/exec.js';"),
    file('src/kube/desired.ts', "import { TunnelFlags } from '../dataplane/abi.js';"),
    file('src/daemon/cni-server.ts', "import { handle } from '../cni/index.js';", "import { nodeApi } from '../kube/client.js';"),
    file('src/cli/commands/doctor.ts', "import { DEFAULTS } from '../../cni/index.js';"),
    file('src/cni/commands/add.ts', "import type { NetConf } from '../config.js';", "import { readFileSync } from 'node:fs';"),
    file('loader/object.ts', "import { bpf } from './bindings.js';"),
    file('test/unit/x.test.ts', "import { handle } from '../../src/cni/plugin.js';"),
    file('src/cni/front/front.c', '#include <stdio.h>', '#include "json.h"', '#include "front-defaults.h"'),
  ];
  assert.deepEqual(checkImports(good), []);
});

test('the tree follows the order', () => {
  const files = readTree(ROOT);
  assert.ok(files.some((f) => f.path === 'src/cni/index.ts') && files.length > 50, 'the tree was read');
  assert.ok(files.some((f) => f.path === 'src/cni/front/front.c'), 'and its C');
  assert.deepEqual(checkImports(files), []);
});

test("README's Layout names every package, and every package directory is one", () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const layout = readme.slice(readme.indexOf('## Layout'), readme.indexOf('\n## ', readme.indexOf('## Layout') + 1));
  for (const p of PACKAGES) assert.ok(layout.includes(`| \`${p}/\` |`), `README's Layout table has a row for ${p}/`);
  const dirs = readdirSync(join(ROOT, 'src'), { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => `src/${d.name}`);
  assert.deepEqual(dirs.filter((d) => !(PACKAGES as readonly string[]).includes(d)), []);
  assert.ok(!layout.includes('| `src/nosuch/` |'), 'control: the search is not vacuous');
});

test('the script exits 1 on a tree with a bad import, 0 once it is gone', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'bvcni-layers-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const put = (path: string, text: string) => {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  };
  put('src/common/table.ts', 'export const t = 1;\n');
  put('src/sim/demo.ts', "import { t } from '../cli/table.js';\nexport { t };\n");
  const run = () => spawnSync(process.execPath, ['--import', 'tsx', SCRIPT, root], { cwd: ROOT, encoding: 'utf8' });
  const bad = run();
  assert.equal(bad.status, 1, bad.stderr);
  assert.match(bad.stderr, /src\/sim\/demo\.ts: import '\.\.\/cli\/table\.js': src\/sim may not import src\/cli/);
  put('src/sim/demo.ts', "import { t } from '../common/table.js';\nexport { t };\n");
  const good = run();
  assert.equal(good.status, 0, good.stderr);
});
