// src/common/defaults.ts is where bvcni's defaults come from: bvcnid's flags,
// bvcnictl's options and the plugin's config show its values (the manifest's
// are checked in manifest.test.ts). A value written again elsewhere, and
// changed there, fails here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Defaults, VXLAN_OVERHEAD } from '../../src/common/defaults.js';
import { parseConfig } from '../../src/cni/config.js';

const built = existsSync('dist/bin/bvcnid') && existsSync('dist/bin/bvcnictl');

function help(bin: string, ...args: string[]): string {
  const r = spawnSync(process.execPath, [bin, ...args, '--help'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

/** The default a --help text gives a flag, its wrapped lines joined. */
function defaultOf(text: string, flag: string): string | undefined {
  const start = text.indexOf(`  ${flag} `);
  if (start < 0) return undefined;
  const end = text.indexOf('\n  -', start + 1);
  const entry = text.slice(start, end < 0 ? undefined : end).replace(/\s+/g, ' ');
  return /\bdefault: ("[^"]*"|[^,)]+)/.exec(entry)?.[1];
}

const shown = (v: string | number): string => (typeof v === 'string' ? JSON.stringify(v) : String(v));

test("bvcnid's flags default to the module's values", { skip: !built && 'run make build' }, () => {
  const text = help('dist/bin/bvcnid');
  const flags: Record<string, string | number> = {
    '--cluster-cidr': Defaults.clusterCidr,
    '--service-cidr': Defaults.serviceCidr,
    '--pin-dir': Defaults.pinDir,
    '--cni-conf-dir': Defaults.cniConfDir,
    '--state-dir': Defaults.stateDir,
    '--health-addr': Defaults.healthAddr,
    '--bridge': Defaults.bridge,
    '--vxlan-dev': Defaults.vxlanDev,
    '--vxlan-port': Defaults.vxlanPort,
    '--vni': Defaults.vni,
    '--log-level': Defaults.logLevel,
  };
  for (const [flag, v] of Object.entries(flags)) assert.equal(defaultOf(text, flag), shown(v), flag);
  assert.match(text.replace(/\s+/g, ' '), new RegExp(`uplink MTU - ${VXLAN_OVERHEAD}\\b`));
  assert.equal(defaultOf(text, '--no-such-flag'), undefined, 'control: an absent flag has no default');
  assert.notEqual(defaultOf(text, '--pin-dir'), shown('/sys/fs/bpf/other'), 'control: another value is told apart');
});

test("bvcnictl's options default to the module's values", { skip: !built && 'run make build' }, () => {
  const doctor = help('dist/bin/bvcnictl', 'doctor');
  assert.equal(defaultOf(doctor, '--pin-dir'), shown(Defaults.pinDir));
  assert.equal(defaultOf(doctor, '--cni-conf-dir'), shown(Defaults.cniConfDir));
  assert.equal(defaultOf(doctor, '--cni-bin-dir'), shown(Defaults.cniBinDir));
  assert.equal(defaultOf(doctor, '--health-addr'), shown(Defaults.healthAddr));
  const uninstall = help('dist/bin/bvcnictl', 'uninstall');
  assert.equal(defaultOf(uninstall, '--bridge'), shown(Defaults.bridge));
  assert.equal(defaultOf(uninstall, '--vxlan-dev'), shown(Defaults.vxlanDev));
  assert.equal(defaultOf(uninstall, '--cni-bin-dir'), shown(Defaults.cniBinDir));
  assert.equal(defaultOf(help('dist/bin/bvcnictl', 'status'), '--health-addr'), shown(Defaults.healthAddr));
});

test("the plugin's config defaults to the module's values", () => {
  const c = parseConfig(JSON.stringify({ cniVersion: '1.0.0', name: 'bvcni', type: 'bvcni', podcidr: '10.244.1.0/24' }));
  assert.deepEqual([c.bridge, c.dataDir, c.pinDir], [Defaults.bridge, Defaults.stateDir, Defaults.pinDir]);
  const given = parseConfig(JSON.stringify({ cniVersion: '1.0.0', name: 'bvcni', type: 'bvcni', podcidr: '10.244.1.0/24', bridge: 'br9' }));
  assert.equal(given.bridge, 'br9', 'control: a configured value wins');
});
