// deploy/bvcni.yaml's prepare-node script, run for real: in a throwaway
// network namespace it sets what bvcnid cannot write from its read-only
// /proc/sys (test/unit/manifest.test.ts checks the manifest itself).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { runSync } from '../../src/common/exec.js';
import { Defaults as NodeDefaults } from '../../src/common/defaults.js';
import { createNetns, deleteNetnsSync, uniquePrefix } from '../../src/sim/netns.js';

const MANIFEST = fileURLToPath(new URL('../../deploy/bvcni.yaml', import.meta.url));

interface DaemonSetShape {
  kind?: string;
  spec?: { template?: { spec?: { initContainers?: { command?: string[] }[] } } };
}

describe('deploy/bvcni.yaml init script', () => {
  const ds = parseAllDocuments(readFileSync(MANIFEST, 'utf8'))
    .map((d) => d.toJS() as DaemonSetShape | null)
    .find((o) => o?.kind === 'DaemonSet');
  const argv = (ds?.spec?.template?.spec?.initContainers?.[0]?.command ?? []).map(String);

  test('is the /bin/sh -ec script of the first init container', () => {
    assert.deepEqual(argv.slice(0, 2), ['/bin/sh', '-ec']);
    assert.ok(argv[2], 'a script');
  });

  test('sets what bvcnid cannot write from its read-only /proc/sys, idempotently (run in a throwaway netns)', async () => {
    const name = `${uniquePrefix('bvx')}-init`;
    const path = await createNetns(name);
    try {
      const sysctl = (key: string): string => runSync(['sysctl', '-n', key], { netns: path }).stdout.trim();
      runSync(['sysctl', '-qw', 'net.ipv4.ip_local_reserved_ports=1000-1001'], { netns: path });
      for (let i = 0; i < 2; i++) runSync(['sh', '-ec', argv[2]!], { netns: path });
      assert.equal(sysctl('net.ipv4.ip_forward'), '1');
      assert.equal(sysctl('net.ipv4.conf.default.rp_filter'), '0');
      const range = `${NodeDefaults.natPortMin}-${NodeDefaults.natPortMax}`;
      assert.equal(sysctl('net.ipv4.ip_local_reserved_ports'), `1000-1001,${range}`, "bvcnid's NAT range appended once, existing kept");
    } finally {
      deleteNetnsSync(name);
    }
  });
});
