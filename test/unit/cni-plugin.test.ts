// The plugin's pure parts in-process: validation before any side effect,
// versioned results, the allocator's rules, and the store's lock across
// processes.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ipv4ToInt, intToIpv4 } from '../../loader/codec.js';
import { parseCidr } from '../../src/common/cidr.js';
import type { Services } from '../../src/cni/context.js';
import { FakeDataplane } from '../support/fake-dataplane.js';
import { CniError } from '../../src/cni/errors.js';
import { allocate, freeCount, releaseAttachment } from '../../src/cni/ipam/allocator.js';
import { DiskStore, MemoryStore } from '../../src/cni/ipam/store.js';
import { nullLogger } from '../../src/cni/log.js';
import { handle } from '../../src/cni/plugin.js';
import { buildResult, mergeInto } from '../../src/cni/result.js';

/** Services that fail the test if a command reaches the system. */
function untouchable(): Services {
  const no = (): never => assert.fail('a side effect was attempted before validation finished');
  return { dataplane: new FakeDataplane(), store: no, hostSocket: no, podSocket: no, removeHostVeth: no, log: nullLogger };
}

const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0' };
const conf = { cniVersion: '1.0.0', name: 'bvcni', type: 'bvcni', podcidr: '10.244.1.0/24', dataDir: '/nonexistent', pinDir: '/nonexistent' };

describe('handle()', () => {
  test('VERSION needs no config and lists the four versions', () => {
    const r = handle({ CNI_COMMAND: 'VERSION' }, 'garbage', () => untouchable());
    assert.equal(r.exitCode, 0);
    assert.deepEqual(JSON.parse(r.stdout), { cniVersion: '1.1.0', supportedVersions: ['0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  });

  const bad: [string, Record<string, string>, unknown, number][] = [
    ['no command', { ...env, CNI_COMMAND: '' }, conf, 4],
    ['no ifname', { ...env, CNI_IFNAME: '' }, conf, 4],
    ['undecodable', env, '{', 6],
    ['version 0.2.0', env, { ...conf, cniVersion: '0.2.0' }, 1],
    ['podcidr /31', env, { ...conf, podcidr: '10.244.1.0/31' }, 7],
    ['mtu 1.5', env, { ...conf, mtu: 1.5 }, 7],
    ['CHECK on 0.3.1', { ...env, CNI_COMMAND: 'CHECK' }, { ...conf, cniVersion: '0.3.1' }, 1],
    ['GC on 1.0.0', { CNI_COMMAND: 'GC' }, conf, 1],
  ];
  for (const [what, e, c, code] of bad) {
    test(`${what} → code ${code} before any side effect`, () => {
      const r = handle(e, typeof c === 'string' ? c : JSON.stringify(c), () => untouchable());
      assert.equal(r.exitCode, 1);
      const j = JSON.parse(r.stdout) as { code: number; msg: string; cniVersion: string };
      assert.equal(j.code, code);
      assert.equal(typeof j.msg, 'string');
      assert.equal(typeof j.cniVersion, 'string');
    });
  }

  test('an unexpected exception becomes code 100 with its message, never a stack', () => {
    const svc = untouchable();
    svc.dataplane.readiness = () => {
      throw new TypeError('boom');
    };
    const r = handle(env, JSON.stringify(conf), () => svc);
    const j = JSON.parse(r.stdout) as { code: number; details: string };
    assert.equal(j.code, 100);
    assert.match(j.details, /boom/);
    assert.doesNotMatch(r.stdout, /\bat \S+:\d+/);
  });

  test('ADD with the dataplane not ready → code 11', () => {
    const svc = untouchable();
    (svc.dataplane as FakeDataplane).ready = { ready: false, reason: 'dataplane not loaded' };
    const j = JSON.parse(handle(env, JSON.stringify(conf), () => svc).stdout) as { code: number };
    assert.equal(j.code, 11);
  });
});

describe('results', () => {
  test('0.3.1/0.4.0 ips carry version "4", 1.0.0+ do not', () => {
    const ip = [{ interface: 2, address: '10.244.1.2/24', gateway: '10.244.1.1' }];
    assert.equal(buildResult('0.3.1', [], ip, []).ips[0]!.version, '4');
    assert.equal(buildResult('0.4.0', [], ip, []).ips[0]!.version, '4');
    assert.equal('version' in buildResult('1.0.0', [], ip, []).ips[0]!, false);
    assert.equal('version' in buildResult('1.1.0', [], ip, []).ips[0]!, false);
  });
  test('chained: prevResult first, our interface indexes shifted', () => {
    const ours = buildResult('1.0.0', [{ name: 'br', mac: 'm' }, { name: 'v', mac: 'm' }, { name: 'eth0', mac: 'm', sandbox: '/x' }], [{ interface: 2, address: 'a', gateway: 'g' }], []);
    const m = mergeInto({ interfaces: [{ name: 'p', mac: 'm' }], ips: [{ interface: 0, address: 'b' }], dns: { nameservers: ['x'] } }, ours);
    assert.deepEqual(m.interfaces.map((i) => i.name), ['p', 'br', 'v', 'eth0']);
    assert.equal(m.ips[1]!.interface, 3);
    assert.deepEqual(m.dns, { nameservers: ['x'] });
  });
});

describe('allocator', () => {
  const cidr = parseCidr('10.244.1.0/29');
  test('never the network, gateway or broadcast address; 5 of a /29', () => {
    const s = new MemoryStore();
    const got = Array.from({ length: 5 }, (_, i) => intToIpv4(allocate(s, cidr, `c${i}`, 'eth0')));
    assert.deepEqual(got, ['10.244.1.2', '10.244.1.3', '10.244.1.4', '10.244.1.5', '10.244.1.6']);
    assert.equal(freeCount(s, cidr), 0);
    assert.throws(() => allocate(s, cidr, 'c9', 'eth0'), (e: unknown) => e instanceof CniError && e.code === 101);
  });
  test('round-robin: a freed address is not handed out again at once', () => {
    const s = new MemoryStore();
    const a = allocate(s, cidr, 'a', 'eth0');
    releaseAttachment(s, 'a', 'eth0');
    const b = allocate(s, cidr, 'b', 'eth0');
    assert.notEqual(b, a);
    assert.equal(b, ipv4ToInt('10.244.1.3'));
    // Wraps around past the end of the pool.
    s.setLastReserved(ipv4ToInt('10.244.1.6'));
    assert.equal(intToIpv4(allocate(s, cidr, 'c', 'eth0')), '10.244.1.2');
  });
});

describe('DiskStore', () => {
  test('the round-robin position survives a shorter address written over a longer one, and the old unpadded file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bvcunit-'));
    try {
      const s = new DiskStore(dir, 'net');
      s.lock();
      assert.equal(s.lastReserved(), undefined);
      s.setLastReserved(ipv4ToInt('10.244.100.200'));
      assert.equal(intToIpv4(s.lastReserved()!), '10.244.100.200');
      s.setLastReserved(ipv4ToInt('10.0.0.5'));
      assert.equal(intToIpv4(s.lastReserved()!), '10.0.0.5');
      writeFileSync(join(dir, 'net', 'last_reserved_ip.0'), '10.1.2.3');
      assert.equal(intToIpv4(s.lastReserved()!), '10.1.2.3');
      s.setLastReserved(ipv4ToInt('10.1.2.4'));
      assert.equal(intToIpv4(s.lastReserved()!), '10.1.2.4');
      s.unlock();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  test('the store directory is 0700 and its files 0600; a store an older build left open to all is closed on the next lock', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bvcunit-'));
    const mode = (p: string): number => statSync(join(dir, 'net', p)).mode & 0o777;
    try {
      const s = new DiskStore(dir, 'net');
      s.lock();
      assert.equal(s.reserve({ ip: ipv4ToInt('10.0.0.5'), containerId: 'c', ifname: 'eth0' }), true);
      s.setLastReserved(ipv4ToInt('10.0.0.5'));
      s.unlock();
      const files = ['lock', '10.0.0.5', 'last_reserved_ip.0'];
      assert.equal(mode('.'), 0o700);
      for (const f of files) assert.equal(mode(f), 0o600, f);
      // As v0.1.0 left them.
      chmodSync(join(dir, 'net'), 0o755);
      for (const f of files) chmodSync(join(dir, 'net', f), 0o644);
      assert.equal(mode('.'), 0o755, 'the control: the store is open before the next lock');
      s.lock();
      s.unlock();
      assert.equal(mode('.'), 0o700);
      for (const f of files) assert.equal(mode(f), 0o600, `${f} tightened`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  test("a reservation carries the ADD's record on a third line; v0.1.0's two-line file, or a torn record, reads as none", () => {
    const dir = mkdtempSync(join(tmpdir(), 'bvcunit-'));
    try {
      const s = new DiskStore(dir, 'net');
      s.lock();
      const record = { pinDir: '/sys/fs/bpf/x', bridge: 'br-x' };
      assert.equal(s.reserve({ ip: ipv4ToInt('10.0.0.5'), containerId: 'c', ifname: 'eth0', record }), true);
      const lines = readFileSync(join(dir, 'net', '10.0.0.5'), 'utf8').split('\r\n');
      assert.deepEqual(lines.slice(0, 2), ['c', 'eth0'], "the two lines v0.1.0 and host-local's layout read, first");
      assert.deepEqual(s.byAttachment('c', 'eth0'), { ip: ipv4ToInt('10.0.0.5'), containerId: 'c', ifname: 'eth0', record });
      writeFileSync(join(dir, 'net', '10.0.0.6'), 'old\r\neth0');
      writeFileSync(join(dir, 'net', '10.0.0.7'), 'torn\r\neth0\r\n{"pinDir":"/sys/f');
      const byId = new Map(s.list().map((r) => [r.containerId, r]));
      assert.deepEqual(byId.get('old'), { ip: ipv4ToInt('10.0.0.6'), containerId: 'old', ifname: 'eth0' });
      assert.deepEqual(byId.get('torn'), { ip: ipv4ToInt('10.0.0.7'), containerId: 'torn', ifname: 'eth0' });
      assert.deepEqual(byId.get('c')?.record, record);
      s.unlock();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  test('reservations are exclusive and survive as files; the lock excludes another process', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bvcunit-'));
    try {
      const s = new DiskStore(dir, 'net');
      s.lock();
      assert.equal(s.reserve({ ip: ipv4ToInt('10.0.0.5'), containerId: 'c', ifname: 'eth0' }), true);
      assert.equal(s.reserve({ ip: ipv4ToInt('10.0.0.5'), containerId: 'd', ifname: 'eth0' }), false);
      assert.deepEqual(s.list(), [{ ip: ipv4ToInt('10.0.0.5'), containerId: 'c', ifname: 'eth0' }]);
      assert.deepEqual(s.byAttachment('c', 'eth0')?.ip, ipv4ToInt('10.0.0.5'), 'found through the index');
      // An index left pointing at a released address is pruned; a live one stays.
      assert.equal(s.reserve({ ip: ipv4ToInt('10.0.0.7'), containerId: 'gone', ifname: 'eth0' }), true);
      rmSync(join(dir, 'net', '10.0.0.7'));
      assert.equal(s.byAttachment('gone', 'eth0'), undefined);
      assert.equal(s.prune(), 1);
      assert.equal(s.prune(), 0);
      assert.deepEqual(s.byAttachment('c', 'eth0')?.ip, ipv4ToInt('10.0.0.5'));
      // Another process must wait for our lock before it can reserve.
      const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url).replace(/cni-plugin\.test\.ts$/, '../fixtures/cni/store-child.ts'), dir], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
      assert.equal(out.trim(), 'waiting');
      // Ordering, not timing: the child announced it is about to lock; while we hold
      // the lock its reservation cannot exist, however long we wait.
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(existsSync(join(dir, 'net', '10.0.0.6')), false, 'the child reserved while we held the lock');
      s.unlock();
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      assert.equal(code, 0);
      assert.equal(existsSync(join(dir, 'net', '10.0.0.6')), true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
