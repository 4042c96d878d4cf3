// vagrant/ cannot run here (no VMs): check what can be checked without them —
// the scripts parse, they are wired into the Vagrantfile, and bvcni.yaml is the
// cluster's only networking step.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { parseAllDocuments } from 'yaml';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const VAGRANT = join(ROOT, 'vagrant');
const scripts = [
  join(VAGRANT, 'check.sh'),
  ...readdirSync(join(VAGRANT, 'provision'))
    .filter((f) => f.endsWith('.sh'))
    .map((f) => join(VAGRANT, 'provision', f)),
];
const read = (p: string): string => readFileSync(p, 'utf8');
const has = (tool: string): boolean => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;

describe('vagrant/', () => {
  test('every shell script parses (bash -n)', () => {
    assert.ok(scripts.length >= 5, 'check.sh and the provisioning scripts are found');
    for (const s of scripts) {
      const r = spawnSync('bash', ['-n', s], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${s}: ${r.stderr}`);
    }
  });

  test('bash -n catches a broken script (the check is not vacuous)', () => {
    const r = spawnSync('bash', ['-n'], { input: 'if true; then\n echo x\n', encoding: 'utf8' });
    assert.notEqual(r.status, 0);
  });

  test('shellcheck finds nothing', { skip: !has('shellcheck') && 'shellcheck not installed' }, () => {
    const r = spawnSync('shellcheck', ['-x', ...scripts], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout);
  });

  test('the Vagrantfile is valid Ruby', { skip: !has('ruby') && 'ruby not installed' }, () => {
    const r = spawnSync('ruby', ['-c', join(VAGRANT, 'Vagrantfile')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  });

  test('the Vagrantfile runs every provisioning script, three Debian 12 nodes', () => {
    const vf = read(join(VAGRANT, 'Vagrantfile'));
    for (const s of scripts.filter((p) => p.includes('/provision/')))
      assert.ok(vf.includes(`provision/${s.split('/').pop()}`), `${s} is provisioned`);
    assert.match(vf, /debian\/bookworm64/);
    assert.equal((vf.match(/\{ name: "\w+", ip: "[\d.]+", role: "(control-plane|worker)"/g) ?? []).length, 3);
    assert.equal((vf.match(/ip: "[\d.]+", role: "control-plane"/g) ?? []).length, 1, 'one control plane');
  });

  test('kubectl apply -f deploy/bvcni.yaml is the only networking step', () => {
    // check.sh applies its own test pods (from stdin); provisioning is what sets the cluster up.
    const all = scripts
      .filter((p) => p.includes('/provision/'))
      .map(read)
      .join('\n')
      .replace(/^\s*#.*$/gm, '');
    const applies = all.match(/kubectl\s+(apply|create)\s+-f\s+\S+/g) ?? [];
    assert.deepEqual(applies, ['kubectl apply -f /bvcni/deploy/bvcni.yaml']);
    assert.match(read(join(VAGRANT, 'provision', 'control-plane.sh')), /--pod-network-cidr "\$POD_CIDR"/);
    assert.match(read(join(VAGRANT, 'Vagrantfile')), /POD_CIDR = "10\.244\.0\.0\/16"/);
    assert.doesNotMatch(all, /flannel|calico|iptables -t nat/i);
  });

  test('the image the nodes import is the one the manifest runs', () => {
    const manifest = join(ROOT, 'deploy', 'bvcni.yaml');
    // The same extraction image.sh does on each node.
    const r = spawnSync('awk', ['$1 == "image:" { print $2; exit }', manifest], { encoding: 'utf8' });
    const fromScript = r.stdout.trim();
    const images = parseAllDocuments(read(manifest))
      .map((d) => d.toJS() as { kind?: string; spec?: { template?: { spec?: { containers?: { image: string }[] } } } })
      .filter((o) => o.kind === 'DaemonSet')
      .flatMap((o) => o.spec?.template?.spec?.containers ?? [])
      .map((c) => c.image);
    assert.ok(fromScript.length > 0);
    assert.deepEqual([...new Set(images)], [fromScript]);
    assert.match(read(join(VAGRANT, 'provision', 'image.sh')), /ctr -n k8s\.io images import/);
  });

  test('check.sh prints PASS/FAIL for the original README checks', () => {
    const c = read(join(VAGRANT, 'check.sh'));
    assert.match(c, /printf 'PASS/);
    assert.match(c, /printf 'FAIL/);
    assert.match(c, /pings pod b on another node/);
    assert.match(c, /reaches the internet/);
    assert.match(c, /exit 1/);
  });
});
