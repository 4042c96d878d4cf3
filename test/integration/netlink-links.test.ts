// The rtnetlink calls bvcnid configures the node with (src/netlink), each read
// back twice: through rtnetlink and through iproute2 (`ip -d -j`), which parses
// the kernel's answer independently. The VXLAN device is compared with one
// iproute2 itself creates from the command line bvcnid used to run.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { run } from '../../src/common/exec.js';
import {
  AF_INET6,
  RTPROT_KERNEL,
} from '../../src/netlink/message.js';
import {
  NetlinkSocket,
  NotABridgeError,
  createVxlan,
  ensureBridge,
  ensureSysctl,
  flushAddrs,
  getLink,
  listAddrs,
  listRoutes,
  macForIp,
  readSysctl,
  replaceAddr,
  replaceRoute,
  setLink,
  socketIn,
} from '../../src/netlink/index.js';
import { createNetns, deleteNetnsSync, uniquePrefix } from '../../src/sim/netns.js';

const P = uniquePrefix('rtl');
const names = { a: `${P}-a`, b: `${P}-b` };
const ns = { a: '', b: '' };
let s: NetlinkSocket;

interface IpLink {
  ifname: string;
  ifindex: number;
  mtu: number;
  address: string;
  flags: string[];
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
}

async function ipLink(netns: string, dev: string): Promise<IpLink> {
  return (JSON.parse((await run(['ip', '-d', '-j', 'link', 'show', 'dev', dev], { netns })).stdout) as IpLink[])[0]!;
}

before(async () => {
  ns.a = await createNetns(names.a);
  ns.b = await createNetns(names.b);
  s = socketIn(ns.a);
});
after(() => {
  s?.close();
  deleteNetnsSync(names.a);
  deleteNetnsSync(names.b);
});

test('createVxlan makes the device `ip link add … type vxlan external dstport 8472 nolearning` makes, and getLink reads it back', async () => {
  createVxlan(s, { name: 'vx0', port: 8472 });
  await run(['ip', 'link', 'add', 'vx0', 'type', 'vxlan', 'external', 'dstport', '8472', 'nolearning'], { netns: ns.b });
  const ours = await ipLink(ns.a, 'vx0');
  const theirs = await ipLink(ns.b, 'vx0');
  assert.equal(ours.linkinfo?.info_kind, 'vxlan');
  assert.equal(ours.linkinfo?.info_data?.external, true);
  assert.equal(ours.linkinfo?.info_data?.port, 8472);
  assert.equal(ours.linkinfo?.info_data?.learning, false);
  // Every VXLAN attribute iproute2 prints (ttl, ageing, checksums, df, …), not only the three we set.
  assert.deepEqual(ours.linkinfo?.info_data, theirs.linkinfo?.info_data);
  assert.deepEqual(getLink(s, 'vx0')?.vxlan, { external: true, port: 8472, learning: false, vni: ours.linkinfo?.info_data?.id ?? 0 });
  // Control: the comparison sees a difference where there is one.
  createVxlan(s, { name: 'vx1', port: 4789 });
  assert.notDeepEqual((await ipLink(ns.a, 'vx1')).linkinfo?.info_data, theirs.linkinfo?.info_data);
  assert.deepEqual(getLink(s, 'vx1')?.vxlan, { external: true, port: 4789, learning: false, vni: 0 });
});

test('setLink changes MTU, MAC, NOARP and up together and only what it is given', async () => {
  const vx = getLink(s, 'vx0')!;
  assert.equal(vx.noarp, undefined);
  setLink(s, vx.index, { mtu: 1400, noarp: true, up: true, mac: '02:00:00:00:00:07' });
  let l = await ipLink(ns.a, 'vx0');
  assert.equal(l.mtu, 1400);
  assert.equal(l.address, '02:00:00:00:00:07');
  assert.ok(l.flags.includes('NOARP') && l.flags.includes('UP'), l.flags.join(','));
  assert.deepEqual(
    { ...getLink(s, 'vx0'), vxlan: undefined, operstate: undefined },
    { ...vx, vxlan: undefined, operstate: undefined, mtu: 1400, mac: '02:00:00:00:00:07', up: true, noarp: true },
  );
  setLink(s, vx.index, { noarp: false });
  l = await ipLink(ns.a, 'vx0');
  assert.ok(!l.flags.includes('NOARP') && l.flags.includes('UP'), l.flags.join(','));
  assert.equal(l.mtu, 1400);
});

test('replaceAddr is idempotent; flushAddrs removes the IPv6 addresses (link-local too) and leaves IPv4', async () => {
  await run(['ip', 'link', 'add', 've0', 'type', 'veth', 'peer', 'name', 've1'], { netns: ns.a });
  await run(['ip', 'link', 'set', 've1', 'up'], { netns: ns.a });
  await run(['ip', 'link', 'set', 've0', 'up'], { netns: ns.a });
  await run(['ip', '-6', 'addr', 'add', '2001:db8::5/64', 'dev', 've0', 'nodad'], { netns: ns.a });
  const ve0 = getLink(s, 've0')!;
  replaceAddr(s, ve0.index, '10.99.0.1', 24);
  replaceAddr(s, ve0.index, '10.99.0.1', 24);
  assert.deepEqual(listAddrs(s, ve0.index), [{ index: ve0.index, ip: '10.99.0.1', prefix: 24 }]);
  const v6 = async (): Promise<string[]> =>
    (JSON.parse((await run(['ip', '-6', '-j', 'addr', 'show', 'dev', 've0'], { netns: ns.a })).stdout) as { addr_info: { local: string }[] }[]).flatMap((x) => x.addr_info.map((a) => a.local));
  // The kernel makes the link-local address when the veth's carrier comes up.
  for (let i = 0; i < 50 && !(await v6()).some((a) => a.startsWith('fe80:')); i++) await new Promise((r) => setTimeout(r, 100));
  const before = await v6();
  assert.ok(before.includes('2001:db8::5') && before.some((a) => a.startsWith('fe80:')), before.join(','));
  assert.equal(flushAddrs(s, ve0.index, AF_INET6), before.length);
  assert.deepEqual(await v6(), []);
  assert.deepEqual(listAddrs(s, ve0.index), [{ index: ve0.index, ip: '10.99.0.1', prefix: 24 }]);
  assert.equal(flushAddrs(s, ve0.index, AF_INET6), 0);
});

test('replaceRoute sets a direct route with a preferred source, and replaces the kernel\'s connected route', async () => {
  const ve0 = getLink(s, 've0')!;
  replaceRoute(s, { dst: '10.98.0.0', dstLen: 16, oif: ve0.index, prefsrc: '10.99.0.1' });
  replaceRoute(s, { dst: '10.98.0.0', dstLen: 16, oif: ve0.index, prefsrc: '10.99.0.1' });
  replaceRoute(s, { dst: '10.99.0.0', dstLen: 24, oif: ve0.index, prefsrc: '10.99.0.1', protocol: RTPROT_KERNEL });
  const shown = JSON.parse((await run(['ip', '-j', '-4', 'route', 'show', 'dev', 've0'], { netns: ns.a })).stdout) as { dst: string; protocol?: string; scope?: string; prefsrc?: string }[];
  assert.deepEqual(
    shown.map((r) => [r.dst, r.protocol, r.scope, r.prefsrc]).sort(),
    [
      ['10.98.0.0/16', undefined, 'link', '10.99.0.1'], // `ip -j` leaves out proto boot, its default
      ['10.99.0.0/24', 'kernel', 'link', '10.99.0.1'],
    ],
  );
  const ours = listRoutes(s).filter((r) => r.oif === ve0.index && r.table === 254);
  assert.deepEqual(
    ours.map((r) => [r.dst, r.dstLen, r.protocol, r.prefsrc]).sort(),
    [
      ['10.98.0.0', 16, 3, '10.99.0.1'],
      ['10.99.0.0', 24, RTPROT_KERNEL, '10.99.0.1'],
    ],
  );
});

test('ensureBridge: MAC from the gateway IP, created up with MTU and address; an existing bridge kept or reconfigured as asked', async () => {
  const spec = { name: 'br9', gatewayIp: '10.97.3.1', prefix: 24, mtu: 1450 };
  let sized = 0;
  const made = ensureBridge(s, { ...spec, mtu: () => (sized++, 1450), configureExisting: false });
  assert.equal(sized, 1);
  assert.equal(macForIp('10.97.3.1'), '0a:58:0a:61:03:01');
  let l = await ipLink(ns.a, 'br9');
  assert.equal(l.linkinfo?.info_kind, 'bridge');
  assert.equal(l.address, '0a:58:0a:61:03:01');
  assert.equal(made.mac, l.address);
  assert.equal(l.mtu, 1450);
  assert.ok(l.flags.includes('UP'));
  assert.deepEqual(listAddrs(s, made.index), [{ index: made.index, ip: '10.97.3.1', prefix: 24 }]);

  // Someone changed it: the plugin's call takes it as it is (and does not size it), bvcnid's puts it back.
  setLink(s, made.index, { mtu: 1300, mac: '02:00:00:00:00:09' });
  ensureBridge(s, { ...spec, mtu: () => (sized++, 1450), configureExisting: false });
  assert.equal(sized, 1);
  l = await ipLink(ns.a, 'br9');
  assert.deepEqual([l.mtu, l.address], [1300, '02:00:00:00:00:09']);
  ensureBridge(s, { ...spec, configureExisting: true });
  l = await ipLink(ns.a, 'br9');
  assert.deepEqual([l.mtu, l.address], [1450, '0a:58:0a:61:03:01']);

  // A port joining moves neither the MAC (a bridge with no explicit address takes its lowest port's)
  // nor the MTU (one the kernel does not count as set by the user follows the ports' minimum,
  // and goes back to 1500 when the last port leaves).
  await run(['ip', 'link', 'set', 've1', 'master', 'br9'], { netns: ns.a });
  l = await ipLink(ns.a, 'br9');
  assert.deepEqual([l.mtu, l.address], [1450, '0a:58:0a:61:03:01']);
  await run(['ip', 'link', 'set', 've1', 'nomaster'], { netns: ns.a });
  assert.equal((await ipLink(ns.a, 'br9')).mtu, 1450);
  // The same for a bridge the plugin made fresh.
  const fresh = ensureBridge(s, { ...spec, name: 'br8', gatewayIp: '10.97.4.1', configureExisting: false });
  await run(['ip', 'link', 'set', 've1', 'master', 'br8'], { netns: ns.a });
  await run(['ip', 'link', 'set', 've1', 'nomaster'], { netns: ns.a });
  assert.deepEqual([(await ipLink(ns.a, 'br8')).mtu, fresh.mtu], [1450, 1450]);

  assert.throws(() => ensureBridge(s, { ...spec, name: 'vx0', configureExisting: true }), NotABridgeError);
});

test('ensureSysctl writes in the namespace it is given and only there; readSysctl reads it back; bad keys are refused', async () => {
  const key = 'net/ipv4/conf/ve0/rp_filter';
  const shown = async (netns?: string): Promise<string> => (await run(['sysctl', '-n', 'net.ipv4.conf.all.forwarding'], { netns })).stdout.trim();
  const hostBefore = await shown();
  ensureSysctl('net/ipv4/conf/all/forwarding', hostBefore === '1' ? '0' : '1', ns.a);
  assert.equal(await shown(ns.a), hostBefore === '1' ? '0' : '1');
  assert.equal(await shown(), hostBefore, 'the host namespace is untouched');
  for (const v of ['2', '0']) {
    ensureSysctl(key, v, ns.a);
    assert.equal(readSysctl(key, ns.a), v);
    assert.equal((await run(['sysctl', '-n', 'net.ipv4.conf.ve0.rp_filter'], { netns: ns.a })).stdout.trim(), v);
  }
  // A device name with a dot keeps it in the path (sysctl(8) writes it with a slash).
  ensureSysctl('net/ipv6/conf/vx0/disable_ipv6', '1', ns.a);
  assert.equal((await run(['sysctl', '-n', 'net.ipv6.conf.vx0.disable_ipv6'], { netns: ns.a })).stdout.trim(), '1');
  await run(['ip', 'link', 'add', 'vx.2', 'type', 'veth', 'peer', 'name', 'vx.3'], { netns: ns.a });
  ensureSysctl('net/ipv4/conf/vx.2/rp_filter', '2', ns.a);
  assert.equal((await run(['sysctl', '-n', 'net.ipv4.conf.vx/2.rp_filter'], { netns: ns.a })).stdout.trim(), '2');
  assert.throws(() => ensureSysctl('net/ipv4/../../../etc/passwd', '1', ns.a), /bad sysctl key/);
  assert.throws(() => ensureSysctl('net/ipv4/conf/nosuchdev/rp_filter', '1', ns.a), /set net\/ipv4\/conf\/nosuchdev\/rp_filter=1 in .*ENOENT/);
});

test('listTc by ifindex finds the name in the namespace given (if_indextoname there), and ENODEV for an index that is not', async () => {
  const { listTc } = await import('../../src/dataplane/tc-filters.js');
  // An index only this namespace has: resolving it anywhere else fails.
  await run(['ip', 'link', 'add', 'vxi', 'index', '4242', 'type', 'veth', 'peer', 'name', 'vxj'], { netns: ns.a });
  await run(['tc', 'qdisc', 'add', 'dev', 'vxi', 'clsact'], { netns: ns.a });
  assert.deepEqual(listTc({ ifindex: 4242, netns: ns.a }, 'ingress'), []);
  assert.throws(() => listTc({ ifindex: 4242, netns: ns.b }, 'ingress'), /find interface 4242/);
  assert.throws(() => listTc({ ifindex: 999_999, netns: ns.a }, 'ingress'), /find interface 999999/);
});

test('bvcnictl\'s device list (rtnetlink) says what ip -d -j link show says', async () => {
  const { listLinks } = await import('../../src/cli/inspect.js');
  await run(['ip', 'link', 'set', 've1', 'master', 'br9'], { netns: ns.a });
  const ours = listLinks(ns.a);
  const theirs = JSON.parse((await run(['ip', '-d', '-j', 'link', 'show'], { netns: ns.a })).stdout) as { ifindex: number; ifname: string; mtu: number; operstate: string; address?: string; master?: string; linkinfo?: { info_kind?: string } }[];
  assert.ok(theirs.length >= 6, JSON.stringify(theirs.map((l) => l.ifname)));
  assert.ok(theirs.some((l) => l.master) && theirs.some((l) => l.operstate === 'UP') && theirs.some((l) => l.operstate === 'DOWN'), 'the comparison covers a port, an up and a down link');
  assert.deepEqual(
    ours,
    theirs.map((l) => ({ ifindex: l.ifindex, ifname: l.ifname, mtu: l.mtu, operstate: l.operstate, address: l.address ?? '', kind: l.linkinfo?.info_kind, master: l.master })),
  );
});
