// runtimeConfig.portMappings: what the plugin accepts and what it refuses
// (code 7 naming the field), and the fake dataplane's claim semantics that
// the handler tests rely on (the real claim: test/integration/hostport.test.ts).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig, parsePortMappings } from '../../src/cni/config.js';
import { FakeDataplane } from '../support/fake-dataplane.js';
import { CniError } from '../../src/cni/errors.js';
import { hostPortOwner } from '../../src/cni/context.js';

function conf(runtimeConfig: unknown): ReturnType<typeof parseConfig> {
  return parseConfig(JSON.stringify({ cniVersion: '1.0.0', name: 'bvcni', type: 'bvcni', podcidr: '10.244.1.0/24', runtimeConfig }));
}

describe('runtimeConfig.portMappings', () => {
  test('absent, null or empty: no mappings', () => {
    assert.deepEqual(parsePortMappings(conf(undefined)), []);
    assert.deepEqual(parsePortMappings(conf({})), []);
    assert.deepEqual(parsePortMappings(conf({ portMappings: null })), []);
    assert.deepEqual(parsePortMappings(conf({ portMappings: [] })), []);
  });

  test("the kubelet's and podman's shapes: protocol defaults to tcp, any case; hostIP '' and absent mean 0.0.0.0; IPv6 ones are skipped", () => {
    assert.deepEqual(
      parsePortMappings(
        conf({
          portMappings: [
            { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
            { hostPort: 53, containerPort: 5353, protocol: 'UDP', hostIP: '' },
            { hostPort: 9000, containerPort: 9000, protocol: 'sctp', hostIP: '192.0.2.11' },
            { hostPort: 8443, containerPort: 443 },
            { hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIP: '::' },
          ],
        }),
      ),
      [
        { hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80, protocol: 'tcp' },
        { hostIp: '0.0.0.0', hostPort: 53, containerPort: 5353, protocol: 'udp' },
        { hostIp: '192.0.2.11', hostPort: 9000, containerPort: 9000, protocol: 'sctp' },
        { hostIp: '0.0.0.0', hostPort: 8443, containerPort: 443, protocol: 'tcp' },
      ],
    );
  });

  const bad: [string, unknown, RegExp][] = [
    ['runtimeConfig not an object', 'x', /field "runtimeConfig" must be an object/],
    ['not a list', { portMappings: {} }, /must be a list/],
    ['entry not an object', { portMappings: [1] }, /entry 0 must be an object/],
    ['hostPort 0', { portMappings: [{ hostPort: 0, containerPort: 80 }] }, /entry 0: hostPort must be an integer between 1 and 65535/],
    ['hostPort 65536', { portMappings: [{ hostPort: 65536, containerPort: 80 }] }, /hostPort must be/],
    ['containerPort a string', { portMappings: [{ hostPort: 80, containerPort: '80' }] }, /containerPort must be/],
    ['fractional port', { portMappings: [{ hostPort: 80.5, containerPort: 80 }] }, /hostPort must be/],
    ['protocol icmp', { portMappings: [{ hostPort: 80, containerPort: 80, protocol: 'icmp' }] }, /protocol must be tcp, udp or sctp/],
    ['hostIP garbage', { portMappings: [{ hostPort: 80, containerPort: 80, hostIP: 'node' }] }, /hostIP "node" is not an IPv4 address/],
    ['hostIP 256.1.1.1', { portMappings: [{ hostPort: 80, containerPort: 80, hostIP: '256.1.1.1' }] }, /is not an IPv4 address/],
    ['SCTP port rewrite', { portMappings: [{ hostPort: 80, containerPort: 81, protocol: 'sctp' }] }, /SCTP hostPort must equal its containerPort/],
    ['the same mapping twice', { portMappings: [{ hostPort: 80, containerPort: 80 }, { hostPort: 80, containerPort: 81, protocol: 'TCP' }] }, /entry 1: 0\.0\.0\.0:80\/tcp is mapped twice/],
  ];
  for (const [what, rc, re] of bad) {
    test(`refused with code 7: ${what}`, () => {
      assert.throws(
        () => parsePortMappings(conf(rc)),
        (e: unknown) => e instanceof CniError && e.code === 7 && re.test(e.message),
      );
    });
  }

  test('a config with bad mappings still parses: DEL, which does not read them, cannot fail on them', () => {
    assert.doesNotThrow(() => conf({ portMappings: 'garbage' }));
  });

  test('the owner is per attachment: container and interface', () => {
    assert.equal(hostPortOwner('c1', 'eth0'), hostPortOwner('c1', 'eth0'));
    assert.notEqual(hostPortOwner('c1', 'eth0'), hostPortOwner('c2', 'eth0'));
    assert.notEqual(hostPortOwner('c1', 'eth0'), hostPortOwner('c1', 'eth1'));
  });

  test('fake dataplane: a conflict is 105 and changes nothing; the same owner may claim again', () => {
    const dp = new FakeDataplane();
    const m = { hostIp: '0.0.0.0', hostPort: 80, containerPort: 8080, protocol: 'tcp' as const };
    dp.claimHostPorts('/x', 1n, '10.244.1.2', [m]);
    dp.claimHostPorts('/x', 1n, '10.244.1.2', [m]);
    assert.throws(() => dp.claimHostPorts('/x', 2n, '10.244.1.3', [{ ...m, hostPort: 81 }, m]), (e: unknown) => e instanceof CniError && e.code === 105);
    assert.deepEqual(dp.hostPorts().map((e) => [e.hostPort, e.podIp]), [[80, '10.244.1.2']]);
  });
});
