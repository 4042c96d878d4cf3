// vagrant/ cannot run here (no VMs): check what can be checked without them —
// the scripts parse, they are wired into the Vagrantfile, and bvcni.yaml is the
// cluster's only networking step.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
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

// A stand-in for Vagrant's configuration API that records what the Vagrantfile
// asks for, so its structure can be checked without Vagrant or VMs.
const RECORDER = `
require "json"
$global = { "settings" => {}, "synced" => [] }
$machines = {}
$cur = nil
class Rec
  def initialize(path) = (@path = path)
  def method_missing(name, *args, **kw, &blk)
    n = name.to_s
    target = $cur || $global
    if n.end_with?("=")
      target["settings"][(@path + [n.chomp("=")]).join(".")] = args[0]
      return args[0]
    end
    case n
    when "define"
      m = { "settings" => {}, "provision" => [], "networks" => [], "primary" => kw[:primary] }
      $machines[args[0]] = m
      prev = $cur; $cur = m
      blk.call(Rec.new([]))
      $cur = prev
    when "provision" then target["provision"] << { "name" => args[0], "path" => kw[:path], "env" => kw[:env] }
    when "network" then target["networks"] << { "type" => args[0], "ip" => kw[:ip] }
    when "synced_folder" then $global["synced"] << { "from" => args[0], "to" => args[1], "disabled" => kw[:disabled] }
    when "provider" then blk&.call(Rec.new(@path + ["provider:" + args[0].to_s]))
    else Rec.new(@path + [n])
    end
  end
  def respond_to_missing?(*) = true
end
module Vagrant
  def self.configure(_v) = yield(Rec.new([]))
end
Dir.chdir(File.dirname(ARGV[0])) { load ARGV[0] }
puts JSON.generate({ "global" => $global, "machines" => $machines })
`;

interface Recorded {
  global: { settings: Record<string, unknown>; synced: { from: string; to: string; disabled?: boolean }[] };
  machines: Record<string, { primary?: boolean; settings: Record<string, unknown>; networks: { type: string; ip?: string }[]; provision: { name: string; path: string; env: Record<string, string> }[] }>;
}

describe('vagrant/Vagrantfile, evaluated', { skip: !has('ruby') && 'ruby not installed' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'bvx-vagrant-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const evaluate = (): Recorded => {
    writeFileSync(join(dir, 'recorder.rb'), RECORDER);
    const r = spawnSync('ruby', [join(dir, 'recorder.rb'), join(VAGRANT, 'Vagrantfile')], {
      encoding: 'utf8',
      env: { ...process.env, BVCNI_VAGRANT_CACHE: join(dir, 'cache') },
    });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as Recorded;
  };

  test('three Debian 12 machines: one primary control plane, two workers, each on its own private IP', () => {
    const v = evaluate();
    assert.equal(v.global.settings['vm.box'], 'debian/bookworm64');
    assert.deepEqual(Object.keys(v.machines).sort(), ['cp', 'w1', 'w2']);
    assert.equal(v.machines.cp!.primary, true);
    const ips = Object.values(v.machines).map((m) => m.networks.find((n) => n.type === 'private_network')?.ip);
    assert.equal(new Set(ips).size, 3);
    for (const [name, m] of Object.entries(v.machines)) {
      const ip = m.networks.find((n) => n.type === 'private_network')!.ip!;
      for (const p of m.provision) {
        assert.equal(p.env.NODE_IP, ip, `${name} ${p.name}: NODE_IP is the private IP`);
        assert.equal(p.env.NODE_NAME, name);
        assert.equal(p.env.CP_IP, v.machines.cp!.networks[0]!.ip);
        assert.equal(p.env.POD_CIDR, '10.244.0.0/16');
        assert.match(p.env.TOKEN ?? '', /^[a-z0-9]{6}\.[a-z0-9]{16}$/, 'a valid kubeadm bootstrap token');
      }
    }
    assert.ok(v.global.synced.some((s) => s.from === '..' && s.to === '/bvcni'), 'the repository is synced to /bvcni');
  });

  test('provisioning order: packages, image, default route, then kubeadm init or join', () => {
    const v = evaluate();
    assert.deepEqual(v.machines.cp!.provision.map((p) => p.name), ['common', 'image', 'route', 'control-plane']);
    for (const w of ['w1', 'w2']) assert.deepEqual(v.machines[w]!.provision.map((p) => p.name), ['common', 'image', 'route', 'worker']);
    for (const m of Object.values(v.machines)) for (const p of m.provision) assert.ok(existsSync(join(VAGRANT, p.path)), p.path);
  });

  test('one bootstrap token per cluster, kept across evaluations (workers join later)', () => {
    const a = evaluate().machines.w1!.provision[0]!.env.TOKEN;
    const b = evaluate().machines.w2!.provision[0]!.env.TOKEN;
    assert.equal(a, b);
    assert.equal(readFileSync(join(dir, 'cache', 'kubeadm-token'), 'utf8').trim(), a);
  });
});
