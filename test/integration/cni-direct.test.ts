// The installed plugin (dist/bin/bvcni, the self-contained executable) run
// directly in a node namespace with `env -i`-style environments, for every
// command, version and error; reference bridge + host-local given the same
// inputs must produce results of the same shape.
import { TC_HANDLE, TC_PRIORITY, programPin } from '../../src/dataplane/layout.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../src/common/exec.js';
import { PLUGIN, TestNode, shape, type CniOutcome } from '../fixtures/cni/harness.js';

const VERSIONS = ['0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
const REF_VERSIONS = new Set(['0.3.1', '0.4.0', '1.0.0']); // Debian's plugins stop at 1.0.0

function assertError(r: CniOutcome, code: number, msgRe?: RegExp): void {
  assert.equal(r.code, 1, `exit code, stdout: ${r.stdout}`);
  assert.ok(r.json, `error JSON on stdout, got: ${r.stdout}`);
  assert.equal(r.json.code, code, `error code in ${r.stdout}`);
  assert.equal(typeof r.json.msg, 'string');
  assert.equal(typeof r.json.cniVersion, 'string');
  assert.doesNotMatch(r.stdout, /\n\s+at /, 'no stack trace on stdout');
  if (msgRe) assert.match(String(r.json.msg) + ' ' + String(r.json.details ?? ''), msgRe);
}

describe('bvcni executed directly', { timeout: 240_000 }, () => {
  let node: TestNode;
  before(async () => {
    assert.ok(existsSync(PLUGIN), 'run make build first');
    node = await TestNode.create();
  });
  after(async () => {
    await node?.destroy();
  });

  for (const v of VERSIONS) {
    test(`ADD, CHECK, DEL for cniVersion ${v}; same shape as bridge + host-local`, async () => {
      const pod = await node.pod(`v${v.replace(/\./g, '')}`);
      const cid = `ctr-${v}`;
      const add = await node.exec({ command: 'ADD', containerId: cid, netns: pod, ifname: 'eth0', stdin: node.conf(v) });
      assert.equal(add.code, 0, add.stdout + add.stderr);
      const res = add.json!;
      assert.equal(res.cniVersion, v);
      const ips = res.ips as { address: string; gateway: string; interface: number; version?: string }[];
      assert.equal(ips.length, 1);
      assert.match(ips[0]!.address, /^10\.244\.1\.\d+\/24$/);
      assert.equal(ips[0]!.gateway, '10.244.1.1');
      assert.equal(ips[0]!.version, v.startsWith('0.') ? '4' : undefined);
      const ifaces = res.interfaces as { name: string; mac: string; sandbox?: string }[];
      assert.equal(ifaces[ips[0]!.interface]!.sandbox, pod, 'ips[].interface points at the pod interface');
      assert.deepEqual(await node.podAddrs(pod), [ips[0]!.address], 'the address is on eth0 in the pod');
      const routes = (await run(['ip', '-j', 'route', 'show', 'default'], { netns: pod })).stdout;
      assert.match(routes, /"gateway":"10\.244\.1\.1"/);
      // Not /sys/class/net: nsenter --net keeps the caller's sysfs.
      const link = JSON.parse((await run(['ip', '-j', 'link', 'show', 'eth0'], { netns: pod })).stdout) as { mtu: number }[];
      assert.equal(link[0]!.mtu, 1500, "the pod's interface has the uplink's MTU");
      // What crosses the tunnel has 50 bytes less: the route to other nodes' pods says so.
      const tunnelled = JSON.parse((await run(['ip', '-j', '-d', 'route', 'show', '10.244.0.0/16'], { netns: pod })).stdout) as { gateway?: string; metrics?: { mtu?: number }[] }[];
      assert.deepEqual(tunnelled.map((r) => [r.gateway, r.metrics?.[0]?.mtu]), [['10.244.1.1', 1450]], 'cluster CIDR via the gateway at the overlay MTU');
      const resRoutes = res.routes as { dst: string; gw: string; mtu?: number }[];
      assert.deepEqual(
        resRoutes.find((r) => r.dst === '10.244.0.0/16'),
        { dst: '10.244.0.0/16', gw: '10.244.1.1', ...(v === '1.1.0' ? { mtu: 1450 } : {}) },
        'the result lists the route, with its MTU from CNI 1.1.0 on',
      );
      const ip = ips[0]!.address.split('/')[0]!;
      assert.ok((await node.endpoints()).includes(ip), 'endpoint registered');
      await run(['ping', '-c1', '-W2', '10.244.1.1'], { netns: pod });

      if (REF_VERSIONS.has(v)) {
        const rpod = await node.pod(`r${v.replace(/\./g, '')}`);
        const ref = await node.ref({ command: 'ADD', containerId: cid, netns: rpod, ifname: 'eth0', stdin: node.refConf(v) });
        assert.equal(ref.code, 0, ref.stdout);
        // Routes with an MTU (1.1.0) are ours alone: the reference adds none.
        const plain = { ...res, routes: resRoutes.filter((r) => r.mtu === undefined) };
        assert.deepEqual(shape(plain), shape(ref.json), 'result has the reference plugin\'s shape');
        const rdel = await node.ref({ command: 'DEL', containerId: cid, netns: rpod, ifname: 'eth0', stdin: node.refConf(v) });
        assert.equal(rdel.code, 0, rdel.stdout);
      }

      const withPrev = node.conf(v, { prevResult: res });
      const check = await node.exec({ command: 'CHECK', containerId: cid, netns: pod, ifname: 'eth0', stdin: withPrev });
      if (v === '0.3.1') assertError(check, 1, /does not allow CHECK/);
      else {
        assert.equal(check.code, 0, check.stdout);
        // Without its overlay route, the pod's full-size packets to other nodes would not fit the tunnel.
        await run(['ip', 'route', 'del', '10.244.0.0/16'], { netns: pod });
        assertError(await node.exec({ command: 'CHECK', containerId: cid, netns: pod, ifname: 'eth0', stdin: withPrev }), 103, /overlay's MTU 1450/);
        await run(['ip', 'route', 'add', '10.244.0.0/16', 'via', '10.244.1.1', 'mtu', '1500'], { netns: pod });
        assertError(await node.exec({ command: 'CHECK', containerId: cid, netns: pod, ifname: 'eth0', stdin: withPrev }), 103, /overlay's MTU 1450/);
        await run(['ip', 'route', 'replace', '10.244.0.0/16', 'via', '10.244.1.1', 'mtu', '1450'], { netns: pod });
        assert.equal((await node.exec({ command: 'CHECK', containerId: cid, netns: pod, ifname: 'eth0', stdin: withPrev })).code, 0, 'the route restored');
      }

      const del = await node.exec({ command: 'DEL', containerId: cid, netns: pod, ifname: 'eth0', stdin: withPrev });
      assert.equal(del.code, 0, del.stdout);
      assert.equal(del.stdout, '');
      assert.ok(!node.reservations().includes(ip), 'address released');
      assert.ok(!(await node.endpoints()).includes(ip), 'endpoint removed');
      assert.deepEqual(await node.podAddrs(pod), [], 'pod interface gone');
      const again = await node.exec({ command: 'DEL', containerId: cid, netns: pod, ifname: 'eth0', stdin: withPrev });
      assert.equal(again.code, 0, 'DEL is idempotent');
      if (v !== '0.3.1') {
        const stale = await node.exec({ command: 'CHECK', containerId: cid, netns: pod, ifname: 'eth0', stdin: withPrev });
        assertError(stale, 103, /check failed/);
      }
      node.deletePod(pod);
    });
  }

  test('ADD pins the pod\'s MAC to its bridge port (static sticky FDB entry, learning and unicast flooding off); CHECK sees each undone; DEL takes the entry along', async () => {
    const pod = await node.pod('fdb');
    const cid = 'ctr-fdb';
    const add = await node.exec({ command: 'ADD', containerId: cid, netns: pod, ifname: 'eth0', stdin: node.conf('1.0.0') });
    assert.equal(add.code, 0, add.stdout + add.stderr);
    const ifaces = add.json!.interfaces as { name: string; mac: string; sandbox?: string }[];
    const podMac = ifaces.find((i) => i.sandbox)!.mac;
    const veth = ifaces.find((i) => !i.sandbox && i.name !== node.bridge)!.name;
    const fdb = async (): Promise<{ mac: string; ifname: string; state?: string; flags?: string[] }[]> =>
      (JSON.parse((await run(['bridge', '-j', 'fdb', 'show', 'br', node.bridge], { netns: node.ns })).stdout) as { mac: string; ifname: string; state?: string; flags?: string[] }[]).filter((e) => e.mac === podMac);
    const port = async (): Promise<{ learning?: boolean; flood?: boolean; bcast_flood?: boolean }> =>
      (JSON.parse((await run(['bridge', '-j', '-d', 'link', 'show', 'dev', veth], { netns: node.ns })).stdout) as { learning?: boolean; flood?: boolean; bcast_flood?: boolean }[])[0]!;
    const entries = await fdb();
    assert.equal(entries.length, 1, JSON.stringify(entries));
    assert.equal(entries[0]!.ifname, veth);
    assert.equal(entries[0]!.state, 'static');
    assert.ok(entries[0]!.flags?.includes('sticky'), JSON.stringify(entries[0]));
    const p = await port();
    assert.deepEqual([p.learning, p.flood, p.bcast_flood], [false, false, true], 'learning and unicast flooding off, broadcast on (ARP)');

    const withPrev = node.conf('1.0.0', { prevResult: add.json });
    const check = () => node.exec({ command: 'CHECK', containerId: cid, netns: pod, ifname: 'eth0', stdin: withPrev });
    assert.equal((await check()).code, 0, 'CHECK passes as ADD left it');
    for (const [undo, redo] of [
      [['bridge', 'link', 'set', 'dev', veth, 'learning', 'on'], ['bridge', 'link', 'set', 'dev', veth, 'learning', 'off']],
      [['bridge', 'link', 'set', 'dev', veth, 'flood', 'on'], ['bridge', 'link', 'set', 'dev', veth, 'flood', 'off']],
      [['bridge', 'fdb', 'del', podMac, 'dev', veth, 'master'], ['bridge', 'fdb', 'add', podMac, 'dev', veth, 'master', 'static', 'sticky']],
      [['bridge', 'fdb', 'replace', podMac, 'dev', veth, 'master', 'static'], ['bridge', 'fdb', 'replace', podMac, 'dev', veth, 'master', 'static', 'sticky']],
    ]) {
      await run(undo!, { netns: node.ns });
      assertError(await check(), 103, /check failed/);
      await run(redo!, { netns: node.ns });
      assert.equal((await check()).code, 0, `CHECK passes again after ${redo!.join(' ')}`);
    }
    // Each of the pod's programs taken off its host veth, then put back as ADD attaches it.
    for (const [direction, slot, what] of [
      ['ingress', 'pod', /does not run the pod program/],
      ['egress', 'toPod', /does not run bpf_to_pod/],
    ] as const) {
      const filter = ['dev', veth, direction, 'pref', String(TC_PRIORITY), 'handle', `0x${TC_HANDLE.toString(16)}`, 'bpf'];
      await run(['tc', 'filter', 'del', ...filter], { netns: node.ns });
      assertError(await check(), 103, what);
      await run(['tc', 'filter', 'add', ...filter, 'direct-action', 'pinned', programPin(node.pinDir, slot)], { netns: node.ns });
      assert.equal((await check()).code, 0, `CHECK passes again with the ${direction} program back`);
    }

    const del = await node.exec({ command: 'DEL', containerId: cid, netns: pod, ifname: 'eth0', stdin: withPrev });
    assert.equal(del.code, 0, del.stdout);
    assert.deepEqual(await fdb(), [], 'the FDB entry went with the veth');
    node.deletePod(pod);
  });

  test('the original bvcni config works unchanged (defaults for everything else)', async () => {
    // Defaults point at /var/lib/cni/bvcni and /sys/fs/bpf/bvcni, which this test must not
    // touch: VERSION and a config error prove parsing without side effects.
    const orig = { cniVersion: '0.3.1', name: 'bvcni', type: 'bvcni', podcidr: '10.244.1.0/24' };
    const r = await node.exec({ command: 'VERSION', stdin: orig });
    assert.equal(r.code, 0);
    assert.deepEqual(r.json, { cniVersion: '1.1.0', supportedVersions: ['0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
    const { parseConfig } = await import('../../src/cni/config.js');
    const c = parseConfig(JSON.stringify(orig));
    assert.equal(c.bridge, 'cni0');
    assert.equal(c.dataDir, '/var/lib/cni/bvcni');
    assert.equal(c.pinDir, '/sys/fs/bpf/bvcni');
    assert.equal(c.mtu, undefined);
  });

  test('self-contained: runs with no Node.js, no system libbpf/libelf and an empty environment', async () => {
    const pod = await node.pod('selfc');
    const hide = ['/usr/bin/node', '/usr/lib/x86_64-linux-gnu/libbpf.so.1', '/usr/lib/x86_64-linux-gnu/libelf.so.1']
      .filter((f) => existsSync(f))
      .map((f) => `/usr/bin/mount --bind /dev/null "$(/usr/bin/readlink -f ${f})"`)
      .join(' && ');
    // A private mount namespace in which node and the system libbpf are gone.
    const script = `${hide} && ! /usr/bin/test -s /usr/bin/node && exec /usr/bin/nsenter --net=${node.ns} -- ${PLUGIN}`;
    const { spawnSync } = await import('node:child_process');
    const { cniEnv } = await import('../fixtures/cni/harness.js');
    const r = spawnSync('/usr/bin/unshare', ['--mount', '--propagation', 'private', '/bin/sh', '-c', script], {
      env: cniEnv({ command: 'ADD', containerId: 'selfc', netns: pod, ifname: 'eth0', stdin: '' }),
      input: JSON.stringify(node.conf('1.1.0')),
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, `${r.stdout} ${r.stderr}`);
    const res = JSON.parse(r.stdout) as { ips: { address: string }[] };
    assert.ok((await node.endpoints()).includes(res.ips[0]!.address.split('/')[0]!), 'registered through the shipped libbpf');
    const del = await node.exec({ command: 'DEL', containerId: 'selfc', netns: pod, ifname: 'eth0', stdin: node.conf('1.1.0') });
    assert.equal(del.code, 0);
    node.deletePod(pod);
  });

  test('a second ADD of the same interface fails and leaves the first intact', async () => {
    const pod = await node.pod('dup');
    const first = await node.exec({ command: 'ADD', containerId: 'dup1', netns: pod, ifname: 'eth0', stdin: node.conf('1.0.0') });
    assert.equal(first.code, 0, first.stdout);
    const second = await node.exec({ command: 'ADD', containerId: 'dup1', netns: pod, ifname: 'eth0', stdin: node.conf('1.0.0') });
    assertError(second, 102, /already exists/);
    const ip = (first.json!.ips as { address: string }[])[0]!.address;
    assert.deepEqual(await node.podAddrs(pod), [ip]);
    assert.equal(node.reservations().length, 1);
    const del = await node.exec({ command: 'DEL', containerId: 'dup1', netns: pod, ifname: 'eth0', stdin: node.conf('1.0.0') });
    assert.equal(del.code, 0);
    node.deletePod(pod);
  });

  test('DEL succeeds when the namespace is gone or CNI_NETNS is empty, and still releases', async () => {
    for (const mode of ['gone', 'empty'] as const) {
      const pod = await node.pod(`del${mode}`);
      const cid = `del-${mode}`;
      const add = await node.exec({ command: 'ADD', containerId: cid, netns: pod, ifname: 'eth0', stdin: node.conf('1.0.0') });
      assert.equal(add.code, 0, add.stdout);
      node.deletePod(pod);
      const del = await node.exec({ command: 'DEL', containerId: cid, netns: mode === 'gone' ? pod : '', ifname: 'eth0', stdin: node.conf('1.0.0') });
      assert.equal(del.code, 0, del.stdout);
      assert.deepEqual(node.reservations(), []);
      assert.deepEqual(await node.endpoints(), []);
      assert.deepEqual(await node.hostVeths(), []);
    }
  });

  // cni-fuzz seed 444405962, made deterministic: a DEL whose config named
  // another pinDir (and bridge) released the address and the veth and left
  // the endpoint entry in the pin dir the ADD wrote.
  test('DEL and GC undo an ADD where the ADD recorded it did it (pin dir, bridge), whatever their own config names', async () => {
    const elsewhere = { pinDir: `${node.pinDir}-elsewhere`, bridge: `${node.prefix}xb` };
    const pod = await node.pod('rec');
    const added = async (cid: string): Promise<string> => {
      const add = await node.exec({ command: 'ADD', containerId: cid, netns: pod, ifname: 'eth0', stdin: node.conf('1.1.0') });
      assert.equal(add.code, 0, add.stdout);
      const ip = (add.json!.ips as { address: string }[])[0]!.address.split('/')[0]!;
      // The control: the entry is there to be left behind.
      assert.deepEqual(await node.endpoints(), [ip], 'ADD registered the endpoint in its own pin dir');
      return ip;
    };
    await added('rec-del');
    const del = await node.exec({ command: 'DEL', containerId: 'rec-del', netns: pod, ifname: 'eth0', stdin: node.conf('1.1.0', elsewhere) });
    assert.equal(del.code, 0, del.stdout);
    assert.deepEqual(node.reservations(), [], 'released');
    assert.deepEqual(await node.hostVeths(), [], 'veth gone');
    assert.deepEqual(await node.endpoints(), [], "the endpoint entry went from the ADD's pin dir, not the DEL's");

    await added('rec-gc');
    const gc = await node.exec({ command: 'GC', stdin: node.conf('1.1.0', { ...elsewhere, 'cni.dev/valid-attachments': [] }) });
    assert.equal(gc.code, 0, gc.stdout);
    assert.deepEqual(node.reservations(), [], 'GC released it');
    assert.deepEqual(await node.hostVeths(), [], 'GC deleted the veth');
    assert.deepEqual(await node.endpoints(), [], "GC removed the entry from the ADD's pin dir");

    // A reservation as v0.1.0 writes it (no record): DEL goes by its own config, as before.
    const ip = await added('rec-old');
    const file = join(node.dataDir, 'bvcni', ip);
    const lines = readFileSync(file, 'utf8').split('\r\n');
    assert.equal(lines.length, 3, 'containerID, ifname, then the record');
    assert.deepEqual(JSON.parse(lines[2]!), { pinDir: node.pinDir, bridge: node.bridge });
    writeFileSync(file, lines.slice(0, 2).join('\r\n'));
    const old = await node.exec({ command: 'DEL', containerId: 'rec-old', netns: pod, ifname: 'eth0', stdin: node.conf('1.1.0') });
    assert.equal(old.code, 0, old.stdout);
    assert.deepEqual(node.reservations(), []);
    assert.deepEqual(await node.endpoints(), [], "no record: the DEL config's pin dir");
    node.deletePod(pod);
  });

  // cni-fuzz seed 174030857, made deterministic: an ADD of an attachment that
  // an earlier ADD made under another podCIDR (in another namespace) reused
  // that address, failed on it (no route to the gateway) and, rolling back,
  // released the reservation but left the earlier ADD's endpoint entry,
  // outside the podCIDR GC sweeps.
  test('an ADD of an attachment an earlier ADD made under another podCIDR starts afresh, and nothing of the earlier one is left', async () => {
    const first = await node.pod('pfa');
    const second = await node.pod('pfb');
    const other = await node.exec({ command: 'ADD', containerId: 'prior', netns: first, ifname: 'eth0', stdin: node.conf('1.0.0', { podcidr: '10.244.9.0/24' }) });
    assert.equal(other.code, 0, other.stdout);
    assert.deepEqual(await node.endpoints(), ['10.244.9.2'], 'the control: the earlier ADD registered its entry');
    const again = await node.exec({ command: 'ADD', containerId: 'prior', netns: second, ifname: 'eth0', stdin: node.conf('1.0.0') });
    assert.equal(again.code, 0, again.stdout);
    const ip = (again.json!.ips as { address: string }[])[0]!.address.split('/')[0]!;
    assert.match(ip, /^10\.244\.1\./, 'an address of this podCIDR');
    assert.deepEqual(await node.endpoints(), [ip], "the earlier ADD's entry went with its reservation");
    assert.deepEqual(node.reservations(), [ip]);
    const del = await node.exec({ command: 'DEL', containerId: 'prior', netns: second, ifname: 'eth0', stdin: node.conf('1.0.0') });
    assert.equal(del.code, 0, del.stdout);
    assert.deepEqual(node.reservations(), []);
    assert.deepEqual(await node.endpoints(), []);
    assert.deepEqual(await node.hostVeths(), []);
    node.deletePod(first);
    node.deletePod(second);
  });

  test('chained in a conflist: prevResult passes through with our entries appended', async () => {
    const pod = await node.pod('chain');
    const prev = { cniVersion: '1.0.0', interfaces: [{ name: 'x0', mac: '02:00:00:00:00:01' }], ips: [{ interface: 0, address: '192.168.77.2/24' }], routes: [], dns: { nameservers: ['192.0.2.53'] } };
    const add = await node.exec({ command: 'ADD', containerId: 'chain', netns: pod, ifname: 'eth0', stdin: node.conf('1.0.0', { prevResult: prev }) });
    assert.equal(add.code, 0, add.stdout);
    const r = add.json as { interfaces: { name: string }[]; ips: { interface: number; address: string }[]; dns: unknown };
    assert.equal(r.interfaces[0]!.name, 'x0');
    assert.equal(r.interfaces.length, 4);
    assert.equal(r.ips[0]!.address, '192.168.77.2/24');
    assert.equal(r.ips[1]!.interface, 3, 'our ip points at our pod interface after the shift');
    assert.deepEqual(r.dns, prev.dns);
    const del = await node.exec({ command: 'DEL', containerId: 'chain', netns: pod, ifname: 'eth0', stdin: node.conf('1.0.0', { prevResult: r }) });
    assert.equal(del.code, 0);
    node.deletePod(pod);
  });

  test('environment and config errors: spec codes, JSON on stdout, exit 1, nothing leaked', async () => {
    const pod = await node.pod('err');
    const ok = { command: 'ADD', containerId: 'e1', netns: pod, ifname: 'eth0' };
    const cases: [string, Parameters<TestNode['exec']>[0], number, RegExp?][] = [
      ['unknown command', { ...ok, command: 'FROB', stdin: node.conf('1.0.0') }, 4],
      ['missing container id', { ...ok, containerId: undefined, stdin: node.conf('1.0.0') }, 4, /CNI_CONTAINERID/],
      ['missing netns on ADD', { ...ok, netns: undefined, stdin: node.conf('1.0.0') }, 4, /CNI_NETNS/],
      ['bad ifname', { ...ok, ifname: 'a/b', stdin: node.conf('1.0.0') }, 4, /CNI_IFNAME/],
      ['ifname too long', { ...ok, ifname: 'x'.repeat(16), stdin: node.conf('1.0.0') }, 4],
      ['bad container id', { ...ok, containerId: '../x', stdin: node.conf('1.0.0') }, 4],
      ['not JSON', { ...ok, stdin: '{nope' }, 6],
      ['JSON not an object', { ...ok, stdin: '[1,2]' }, 6],
      ['unsupported version', { ...ok, stdin: node.conf('9.9.9') }, 1, /incompatible/],
      ['no version', { ...ok, stdin: { ...node.conf('1.0.0'), cniVersion: undefined } }, 1],
      ['missing podcidr', { ...ok, stdin: node.conf('1.0.0', { podcidr: undefined }) }, 7, /podcidr/],
      ['bad podcidr', { ...ok, stdin: node.conf('1.0.0', { podcidr: '10.244.1.0/33' }) }, 7, /podcidr/],
      ['podcidr not a string', { ...ok, stdin: node.conf('1.0.0', { podcidr: 5 }) }, 7, /podcidr/],
      ['bad mtu', { ...ok, stdin: node.conf('1.0.0', { mtu: 'big' }) }, 7, /mtu/],
      ['mtu out of range', { ...ok, stdin: node.conf('1.0.0', { mtu: 100 }) }, 7, /mtu/],
      ['bad bridge', { ...ok, stdin: node.conf('1.0.0', { bridge: 'x'.repeat(20) }) }, 7, /bridge/],
      ['relative dataDir', { ...ok, stdin: node.conf('1.0.0', { dataDir: 'rel/dir' }) }, 7, /dataDir/],
      ['bad pinDir', { ...ok, stdin: node.conf('1.0.0', { pinDir: 7 }) }, 7, /pinDir/],
      ['bad name', { ...ok, stdin: node.conf('1.0.0', { name: '../etc' }) }, 7, /name/],
      ['netns does not exist', { ...ok, netns: '/run/netns/bvc-does-not-exist', stdin: node.conf('1.0.0') }, 104, /CNI_NETNS/],
      ['netns not a namespace', { ...ok, netns: '/etc/hostname', stdin: node.conf('1.0.0') }, 104, /CNI_NETNS/],
      ['CHECK without prevResult', { ...ok, command: 'CHECK', stdin: node.conf('1.0.0') }, 7, /prevResult/],
      ['CHECK on 0.3.1', { ...ok, command: 'CHECK', stdin: node.conf('0.3.1', { prevResult: {} }) }, 1, /CHECK/],
      ['STATUS on 1.0.0', { command: 'STATUS', stdin: node.conf('1.0.0') }, 1, /STATUS/],
      ['GC on 0.4.0', { command: 'GC', stdin: node.conf('0.4.0') }, 1, /GC/],
      ['bad valid-attachments', { command: 'GC', stdin: node.conf('1.1.0', { 'cni.dev/valid-attachments': 'x' }) }, 7, /valid-attachments/],
    ];
    for (const [what, call, code, re] of cases) {
      const r = await node.exec(call);
      await test(what, () => assertError(r, code, re));
      if (typeof call.stdin === 'object' && 'cniVersion' in call.stdin && call.stdin.cniVersion === '1.0.0') assert.equal(r.json?.cniVersion, '1.0.0');
    }
    assert.deepEqual(node.reservations(), []);
    assert.deepEqual(await node.hostVeths(), []);
    assert.deepEqual(await node.endpoints(), []);
    node.deletePod(pod);
  });

  test('no CNI_COMMAND (run by hand): the about text on stderr, nothing on stdout, exit 0, nothing done, as the reference plugins do', async () => {
    const pod = await node.pod('about');
    const call = { command: '', containerId: 'ab1', netns: pod, ifname: 'eth0', stdin: node.conf('1.0.0') };
    const [ours, ref] = [await node.exec(call), await node.ref(call)];
    for (const [who, r] of [['bvcni', ours], ['reference bridge', ref]] as const) {
      assert.equal(r.code, 0, `${who}: exit code`);
      assert.equal(r.stdout, '', `${who}: nothing on stdout`);
      assert.match(r.stderr, /^CNI \w+ plugin .*\nCNI protocol versions supported: .*1\.0\.0/, `${who}: the about text`);
    }
    assert.match(ours.stderr, /dataplane ABI \d+/);
    assert.deepEqual(node.reservations(), []);
    assert.deepEqual(await node.hostVeths(), []);
    node.deletePod(pod);
  });

  test('a failure late in ADD is rolled back completely', async () => {
    const pod = await node.pod('rb');
    // Occupy the route slot: our default route cannot be added, after the
    // address was reserved and the veth created.
    const add0 = await node.exec({ command: 'ADD', containerId: 'rb0', netns: pod, ifname: 'eth0', stdin: node.conf('1.0.0') });
    assert.equal(add0.code, 0);
    const before = { res: node.reservations(), veths: await node.hostVeths(), eps: await node.endpoints() };
    const r = await node.exec({ command: 'ADD', containerId: 'rb1', netns: pod, ifname: 'eth1', stdin: node.conf('1.0.0') });
    assertError(r, 100, /route/);
    assert.deepEqual(node.reservations(), before.res);
    assert.deepEqual(await node.hostVeths(), before.veths);
    assert.deepEqual(await node.endpoints(), before.eps);
    const links = (await run(['ip', '-br', 'link'], { netns: pod })).stdout;
    assert.doesNotMatch(links, /eth1/);
    await node.exec({ command: 'DEL', containerId: 'rb0', netns: pod, ifname: 'eth0', stdin: node.conf('1.0.0') });
    node.deletePod(pod);
  });

  test('STATUS: ready with the dataplane and free addresses; code 50 when the pool is full', async () => {
    const ok = await node.exec({ command: 'STATUS', stdin: node.conf('1.1.0') });
    assert.equal(ok.code, 0, ok.stdout);
    assert.equal(ok.stdout, '');
    // A /29 has 5 assignable addresses (not network, gateway, broadcast).
    const small = { podcidr: '10.244.1.0/29', name: 'small' };
    const pods: string[] = [];
    const addrs: string[] = [];
    for (let i = 0; i < 5; i++) {
      const p = await node.pod(`s${i}`);
      pods.push(p);
      const r = await node.exec({ command: 'ADD', containerId: `s${i}`, netns: p, ifname: 'eth0', stdin: node.conf('1.1.0', small) });
      assert.equal(r.code, 0, r.stdout);
      addrs.push((r.json!.ips as { address: string }[])[0]!.address);
    }
    assert.deepEqual(addrs.sort(), ['10.244.1.2/29', '10.244.1.3/29', '10.244.1.4/29', '10.244.1.5/29', '10.244.1.6/29']);
    const extra = await node.pod('s5');
    const full = await node.exec({ command: 'ADD', containerId: 's5', netns: extra, ifname: 'eth0', stdin: node.conf('1.1.0', small) });
    assertError(full, 101, /no free address/);
    const st = await node.exec({ command: 'STATUS', stdin: node.conf('1.1.0', small) });
    assertError(st, 50, /exhausted/);
    for (let i = 0; i < 5; i++) {
      const r = await node.exec({ command: 'DEL', containerId: `s${i}`, netns: pods[i], ifname: 'eth0', stdin: node.conf('1.1.0', small) });
      assert.equal(r.code, 0);
      node.deletePod(pods[i]!);
    }
    node.deletePod(extra);
  });

  test('GC releases attachments not listed as valid, with their veths and endpoint entries', async () => {
    const keep = await node.pod('gck');
    const drop = await node.pod('gcd');
    for (const [cid, p] of [['keep', keep], ['drop', drop]] as const) {
      const r = await node.exec({ command: 'ADD', containerId: cid, netns: p, ifname: 'eth0', stdin: node.conf('1.1.0') });
      assert.equal(r.code, 0, r.stdout);
    }
    assert.equal(node.reservations().length, 2);
    const gc = await node.exec({ command: 'GC', stdin: node.conf('1.1.0', { 'cni.dev/valid-attachments': [{ containerID: 'keep', ifname: 'eth0' }] }) });
    assert.equal(gc.code, 0, gc.stdout);
    assert.equal(node.reservations().length, 1);
    assert.equal((await node.hostVeths()).length, 1);
    assert.equal((await node.endpoints()).length, 1);
    assert.deepEqual(await node.podAddrs(drop), []);
    assert.equal((await node.podAddrs(keep)).length, 1);
    const all = await node.exec({ command: 'GC', stdin: node.conf('1.1.0', { 'cni.dev/valid-attachments': [] }) });
    assert.equal(all.code, 0);
    assert.deepEqual(node.reservations(), []);
    assert.deepEqual(await node.hostVeths(), []);
    assert.deepEqual(await node.endpoints(), []);
    node.deletePod(keep);
    node.deletePod(drop);
  });

  test('logs go to <dataDir>/bvcni.log with the container ID, never to stdout', async () => {
    const { readFileSync } = await import('node:fs');
    const text = readFileSync(`${node.dataDir}/bvcni.log`, 'utf8');
    assert.match(text, /"containerId":"keep"/);
    assert.match(text, /"msg":"added"/);
  });

  // Last: it deletes the bridge bvcnid made.
  test('a bridge the plugin has to make itself gets the MAC bvcnid gives it (the gateway MAC the programs write), its MTU and address', async () => {
    type IpLink = { address: string; mtu: number; flags: string[] };
    const link = async (): Promise<IpLink> => (JSON.parse((await run(['ip', '-j', 'link', 'show', 'dev', node.bridge], { netns: node.ns })).stdout) as IpLink[])[0]!;
    const made = await link();
    assert.match(made.address, /^0a:58:0a:f4:01:01$/, 'bvcnid: 0a:58 and the gateway 10.244.1.1');
    await run(['ip', 'link', 'del', node.bridge], { netns: node.ns });
    const pod = await node.pod('rebr');
    const add = await node.exec({ command: 'ADD', containerId: 'ctr-rebr', netns: pod, ifname: 'eth0', stdin: node.conf('1.0.0') });
    assert.equal(add.code, 0, add.stdout + add.stderr);
    const again = await link();
    assert.deepEqual([again.address, again.mtu], [made.address, made.mtu]);
    assert.ok(again.flags.includes('UP'));
    const addrs = JSON.parse((await run(['ip', '-j', '-4', 'addr', 'show', 'dev', node.bridge], { netns: node.ns })).stdout) as { addr_info: { local: string; prefixlen: number }[] }[];
    assert.deepEqual(addrs[0]!.addr_info.map((a) => `${a.local}/${a.prefixlen}`), ['10.244.1.1/24']);
    const bridgeIface = (add.json!.interfaces as { name: string; mac: string }[]).find((i) => i.name === node.bridge);
    assert.equal(bridgeIface?.mac, made.address);
    const del = await node.exec({ command: 'DEL', containerId: 'ctr-rebr', netns: pod, ifname: 'eth0', stdin: node.conf('1.0.0', { prevResult: add.json }) });
    assert.equal(del.code, 0, del.stdout);
    node.deletePod(pod);
  });
});

describe('bvcni without a loaded dataplane', { timeout: 60_000 }, () => {
  let node: TestNode;
  before(async () => {
    node = await TestNode.create({ dataplane: false });
  });
  after(async () => {
    await node?.destroy();
  });

  test('ADD refuses with code 11 (try again later) and leaves nothing', async () => {
    const pod = await node.pod('nodp');
    const r = await node.exec({ command: 'ADD', containerId: 'n1', netns: pod, ifname: 'eth0', stdin: node.conf('1.0.0') });
    assertError(r, 11, /dataplane/);
    assert.deepEqual(node.reservations(), []);
    assert.deepEqual(await node.hostVeths(), []);
  });

  test('STATUS answers code 50 with the reason; DEL still succeeds', async () => {
    const r = await node.exec({ command: 'STATUS', stdin: node.conf('1.1.0') });
    assertError(r, 50, /dataplane/);
    const d = await node.exec({ command: 'DEL', containerId: 'n1', netns: '', ifname: 'eth0', stdin: node.conf('1.1.0') });
    assert.equal(d.code, 0, d.stdout);
  });
});
