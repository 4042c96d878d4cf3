import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  broadcastOf,
  cidrContains,
  cidrsOverlap,
  CidrError,
  containsIp,
  firstHost,
  formatCidr,
  parseCidr,
} from '../../src/common/cidr.js';

test('parses, masks host bits unless strict, and prints back', () => {
  assert.deepEqual(parseCidr('10.244.1.0/24'), { addr: 0x0af40100, prefix: 24 });
  assert.equal(formatCidr(parseCidr('10.244.1.77/24')), '10.244.1.0/24');
  assert.throws(() => parseCidr('10.244.1.77/24', { strict: true, what: 'podCIDR' }), /podCIDR: .*host bits/);
  assert.equal(formatCidr(parseCidr('0.0.0.0/0')), '0.0.0.0/0');
});

test('refuses what is not an IPv4 CIDR, and says when it is IPv6', () => {
  for (const bad of ['', '10.244.1.0', '10.244.1.0/33', '300.1.1.1/8', 'a.b.c.d/8', '10.244.1.0/24x']) {
    assert.throws(() => parseCidr(bad, { what: 'podcidr' }), (e: unknown) => e instanceof CidrError && !e.ipv6 && /podcidr/.test(e.message));
  }
  assert.throws(() => parseCidr('fd00::/64'), (e: unknown) => e instanceof CidrError && e.ipv6);
});

test('containment, overlap, gateway and broadcast', () => {
  const cluster = parseCidr('10.244.0.0/16');
  const pod = parseCidr('10.244.3.0/24');
  assert.ok(cidrContains(cluster, pod));
  assert.ok(!cidrContains(pod, cluster));
  assert.ok(cidrsOverlap(pod, cluster));
  assert.ok(!cidrsOverlap(pod, parseCidr('10.244.4.0/24')));
  assert.ok(containsIp(pod, '10.244.3.255'));
  assert.ok(!containsIp(pod, '10.244.4.0'));
  assert.equal(firstHost(pod), '10.244.3.1');
  assert.equal(broadcastOf(pod), 0x0af403ff);
  assert.throws(() => firstHost(parseCidr('10.0.0.0/31')), /no room/);
});
