// Two simulated nodes (namespaces joined by a router namespace), pods wired
// by hand (veth into the bridge + registerEndpoint), and an "internet"
// namespace: proves the node dataplane end to end on the real kernel.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { run, startProcess } from '../../src/common/exec.js';
import { scaledTimeout } from '../../src/common/wait.js';
import { listTc } from '../../src/dataplane/tc-filters.js';
import { openEndpointsMap } from '../../src/dataplane/maps.js';
import { programSetDir } from '../../src/dataplane/features.js';
import { createNetns, deleteNetnsSync, netnsPath, uniquePrefix } from '../../src/sim/netns.js';
import {
  TunnelFlags,
  dataplaneReady,
  ensureNodeDataplane,
  readDropStats,
  registerEndpoint,
  removeNodeDataplane,
  unregisterEndpoint,
  openDataplaneMaps,
  readDataplaneConfig,
  type NodeDataplane,
  type NodeDataplaneConfig,
} from '../../src/dataplane/index.js';

const P = uniquePrefix('bvd');
const NS = { router: `${P}-r`, inet: `${P}-i`, n1: `${P}-n1`, n2: `${P}-n2` } as const;
const PIN = { n1: `/sys/fs/bpf/${P}-n1`, n2: `/sys/fs/bpf/${P}-n2` } as const;
const INET_IP = '198.51.100.1';

interface PodDef {
  name: string;
  node: 'n1' | 'n2';
  ip: string;
}
const PODS: PodDef[] = [
  { name: 'a1', node: 'n1', ip: '10.244.1.2' },
  { name: 'a2', node: 'n1', ip: '10.244.1.3' },
  { name: 'b1', node: 'n2', ip: '10.244.2.2' },
];
const podNs = (p: PodDef): string => `${P}-${p.name}`;
const pod = (name: string): PodDef => PODS.find((p) => p.name === name)!;

function nodeCfg(n: 'n1' | 'n2'): NodeDataplaneConfig {
  const i = n === 'n1' ? 1 : 2;
  return {
    pinDir: PIN[n],
    netns: netnsPath(NS[n]),
    bridge: 'cni0',
    vxlanDev: 'vxlan.1',
    vxlanPort: 8472,
    vni: 1,
    uplink: 'eth0',
    nodeIp: `192.0.2.1${i}`,
    podCidr: `10.244.${i}.0/24`,
    clusterCidr: '10.244.0.0/16',
  };
}

const created: string[] = [];
const procs: ChildProcess[] = [];
const dps: NodeDataplane[] = [];

async function ip(ns: string, ...args: string[]): Promise<string> {
  return (await run(['ip', ...args], { netns: netnsPath(ns) })).stdout;
}

async function mkns(name: string): Promise<void> {
  created.push(name);
  await createNetns(name);
}

async function buildUnderlay(): Promise<void> {
  for (const n of Object.values(NS)) await mkns(n);
  await ip(NS.router, 'link', 'add', 'br0', 'type', 'bridge');
  await ip(NS.router, 'addr', 'add', '192.0.2.1/24', 'dev', 'br0');
  await ip(NS.router, 'link', 'set', 'br0', 'up');
  for (const [n, i] of [['n1', 1], ['n2', 2]] as const) {
    await ip(NS.router, 'link', 'add', `p${n}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NS[n]);
    await ip(NS.router, 'link', 'set', `p${n}`, 'master', 'br0', 'up');
    await ip(NS[n], 'addr', 'add', `192.0.2.1${i}/24`, 'dev', 'eth0');
    await ip(NS[n], 'link', 'set', 'eth0', 'up');
    await ip(NS[n], 'route', 'add', 'default', 'via', '192.0.2.1');
  }
  await ip(NS.router, 'link', 'add', 'pinet', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NS.inet);
  await ip(NS.router, 'addr', 'add', '198.51.100.254/24', 'dev', 'pinet');
  await ip(NS.router, 'link', 'set', 'pinet', 'up');
  await ip(NS.inet, 'addr', 'add', `${INET_IP}/24`, 'dev', 'eth0');
  await ip(NS.inet, 'link', 'set', 'eth0', 'up');
  await ip(NS.inet, 'route', 'add', 'default', 'via', '198.51.100.254');
  await run(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1'], { netns: netnsPath(NS.router) });
}

async function addPod(p: PodDef, dp: NodeDataplane): Promise<void> {
  await mkns(podNs(p));
  const node = NS[p.node];
  const host = `h${p.name}`;
  await ip(node, 'link', 'add', host, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', podNs(p));
  await ip(node, 'link', 'set', host, 'master', 'cni0', 'mtu', String(dp.mtu), 'up');
  await ip(podNs(p), 'link', 'set', 'eth0', 'mtu', String(dp.mtu), 'up');
  await ip(podNs(p), 'addr', 'add', `${p.ip}/24`, 'dev', 'eth0');
  await ip(podNs(p), 'route', 'add', 'default', 'via', dp.gatewayIp);
  const hostLink = JSON.parse(await ip(node, '-j', 'link', 'show', host))[0] as { ifindex: number };
  const podLink = JSON.parse(await ip(podNs(p), '-j', 'link', 'show', 'eth0'))[0] as { address: string };
  registerEndpoint(dp.cfg.pinDir, {
    ip: p.ip,
    hostIfname: host,
    hostIfindex: hostLink.ifindex,
    podMac: podLink.address,
    gwMac: dp.gatewayMac,
    netns: netnsPath(node),
  });
}

/** What the daemon would write: the other node's podCIDR and its own IP. */
function writeTunnels(): void {
  for (const [self, other] of [['n1', 'n2'], ['n2', 'n1']] as const) {
    const o = nodeCfg(other);
    using maps = openDataplaneMaps(PIN[self]);
    const [net, len] = o.podCidr.split('/');
    maps.tunnel.update({ prefixlen: Number(len), addr: net! }, { node_ip: o.nodeIp, flags: 0 });
    maps.tunnel.update({ prefixlen: 32, addr: o.nodeIp }, { node_ip: o.nodeIp, flags: TunnelFlags.nodeIp });
  }
}

async function ping(ns: string, dst: string, extra: string[] = []): Promise<boolean> {
  const r = await run(['ping', '-c', '2', '-i', '0.2', '-W', '1', ...extra, dst], { netns: netnsPath(ns), allowFail: true });
  return r.code === 0;
}

/** A socat server that answers each TCP/UDP client with the address it saw. */
function serveEcho(ns: string, proto: 'TCP' | 'UDP', port: number): void {
  const spec = proto === 'TCP' ? `TCP-LISTEN:${port},reuseaddr,fork` : `UDP-RECVFROM:${port},fork`;
  procs.push(startProcess(['socat', spec, 'SYSTEM:echo $SOCAT_PEERADDR'], { netns: netnsPath(ns) }));
}

async function peerSeenBy(fromNs: string, proto: 'TCP' | 'UDP', dst: string, port: number): Promise<string> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const r = await run(['socat', '-t', '2', '-', `${proto}:${dst}:${port},connect-timeout=2`], {
      netns: netnsPath(fromNs),
      input: 'x\n',
      allowFail: true,
      timeoutMs: 10_000,
    });
    const out = r.stdout.trim();
    if (r.code === 0 && out) return out;
    await new Promise((res) => setTimeout(res, 150)); // the server may still be starting
  }
  return '';
}

function dropCount(pinDir: string, reason: string): bigint {
  return readDropStats(pinDir)
    .filter((r) => r.reason === reason)
    .reduce((s, r) => s + r.packets, 0n);
}

describe('node dataplane (two nodes, real kernel)', { timeout: scaledTimeout(180_000) }, () => {
  before(async () => {
    await buildUnderlay();
    dps.push(await ensureNodeDataplane(nodeCfg('n1')));
    dps.push(await ensureNodeDataplane(nodeCfg('n2')));
    for (const p of PODS) await addPod(p, dps[p.node === 'n1' ? 0 : 1]!);
    writeTunnels();
    serveEcho(podNs(pod('b1')), 'TCP', 7001);
    serveEcho(podNs(pod('b1')), 'UDP', 7002);
    serveEcho(podNs(pod('a1')), 'TCP', 7001);
    serveEcho(NS.inet, 'TCP', 7003);
    serveEcho(NS.inet, 'UDP', 7004);
    serveEcho(NS.n2, 'TCP', 7005);
  });

  after(async () => {
    for (const p of procs) p.kill('SIGKILL');
    for (const d of dps) d.close();
    for (const n of ['n1', 'n2'] as const) {
      await removeNodeDataplane(nodeCfg(n)).catch(() => undefined);
    }
    for (const n of created.reverse()) deleteNetnsSync(n);
  });

  test('both nodes report ready, with the config the plugin reads', () => {
    assert.equal(dataplaneReady(PIN.n1), true);
    assert.equal(dataplaneReady(PIN.n2), true);
    const c = readDataplaneConfig(PIN.n1);
    assert.deepEqual(
      [c?.node_ip, c?.pod_cidr, c?.pod_prefix, c?.bridge_mac, c?.mtu],
      ['192.0.2.11', '10.244.1.0', 24, dps[0]!.gatewayMac, 1450],
    );
    assert.equal(readDataplaneConfig(`/sys/fs/bpf/${P}-absent`), undefined);
    assert.equal(dataplaneReady(`/sys/fs/bpf/${P}-absent`), false);
  });

  test('pod to pod across nodes: ping, TCP and UDP keep the pod source address', async () => {
    assert.equal(await ping(podNs(pod('a1')), pod('b1').ip), true);
    assert.equal(await ping(podNs(pod('b1')), pod('a1').ip), true);
    assert.equal(await peerSeenBy(podNs(pod('a1')), 'TCP', pod('b1').ip, 7001), pod('a1').ip);
    assert.equal(await peerSeenBy(podNs(pod('a1')), 'UDP', pod('b1').ip, 7002), pod('a1').ip);
    assert.equal(await peerSeenBy(podNs(pod('b1')), 'TCP', pod('a1').ip, 7001), pod('b1').ip);
  });

  test('pod to pod on the same node', async () => {
    assert.equal(await ping(podNs(pod('a2')), pod('a1').ip), true);
    assert.equal(await peerSeenBy(podNs(pod('a2')), 'TCP', pod('a1').ip, 7001), pod('a2').ip);
  });

  test('node to local and remote pods, and pod to another node, with real addresses', async () => {
    assert.equal(await ping(NS.n1, pod('a1').ip), true);
    assert.equal(await ping(NS.n1, pod('b1').ip), true);
    assert.equal(await peerSeenBy(NS.n1, 'TCP', pod('b1').ip, 7001), '192.0.2.11');
    assert.equal(await peerSeenBy(NS.n1, 'TCP', pod('a1').ip, 7001), '192.0.2.11');
    assert.equal(await ping(podNs(pod('a1')), '192.0.2.12'), true);
    assert.equal(await peerSeenBy(podNs(pod('a1')), 'TCP', '192.0.2.12', 7005), pod('a1').ip);
  });

  test('pod to the internet is masqueraded to the node IP (TCP, UDP, ICMP)', async () => {
    assert.equal(await ping(podNs(pod('a1')), INET_IP), true);
    assert.equal(await peerSeenBy(podNs(pod('a1')), 'TCP', INET_IP, 7003), '192.0.2.11');
    assert.equal(await peerSeenBy(podNs(pod('a2')), 'TCP', INET_IP, 7003), '192.0.2.11');
    assert.equal(await peerSeenBy(podNs(pod('b1')), 'UDP', INET_IP, 7004), '192.0.2.12');
    using maps = openDataplaneMaps(PIN.n1);
    const nat = [...maps.nat.entries()];
    assert.ok(nat.some(([k, v]) => k.saddr === pod('a1').ip && k.daddr === INET_IP && v.to_addr === '192.0.2.11'));
  });

  test('a spoofed source is dropped and counted as DROP_SPOOFED', async () => {
    const before = dropCount(PIN.n1, 'DROP_SPOOFED');
    const ns = podNs(pod('a1'));
    await ip(ns, 'addr', 'add', '10.244.1.99/32', 'dev', 'eth0');
    assert.equal(await ping(ns, pod('b1').ip, ['-I', '10.244.1.99']), false);
    assert.ok(dropCount(PIN.n1, 'DROP_SPOOFED') >= before + 2n);
    await ip(ns, 'addr', 'del', '10.244.1.99/32', 'dev', 'eth0');
  });

  test('removing a tunnel entry stops traffic to that node, restoring it restores it', async () => {
    using maps = openDataplaneMaps(PIN.n1);
    const key = { prefixlen: 24, addr: '10.244.2.0' };
    const val = maps.tunnel.lookup(key);
    assert.ok(val);
    maps.tunnel.delete(key);
    try {
      assert.equal(await ping(podNs(pod('a1')), pod('b1').ip), false);
    } finally {
      maps.tunnel.update(key, val);
    }
    assert.equal(await ping(podNs(pod('a1')), pod('b1').ip), true);
  });

  test('ensureNodeDataplane again, with the no-conntrack set, adopts the pinned maps and keeps traffic flowing', async () => {
    const old = dps[0]!;
    const mapIds = { tunnel: old.maps.tunnel.info.id, nat: old.maps.nat.info.id, endpoints: old.maps.endpoints.info.id };
    const progBefore = old.programIds.pod;
    // These pods were wired as an earlier release's plugin did: their bridge ports learn and flood.
    const portOf = async (host: string): Promise<{ learning: boolean; flood: boolean; fdb?: string }> => {
      const link = (JSON.parse(await ip(NS.n1, '-d', '-j', 'link', 'show', host)) as { linkinfo: { info_slave_data: { learning: boolean; flood: boolean } } }[])[0]!;
      const mac = (JSON.parse(await ip(podNs(pod('a1')), '-j', 'link', 'show', 'eth0')) as { address: string }[])[0]!.address;
      const fdb = (JSON.parse((await run(['bridge', '-j', 'fdb', 'show', 'br', 'cni0'], { netns: netnsPath(NS.n1) })).stdout) as { mac: string; ifname: string; state?: string; flags?: string[] }[])
        .find((e) => e.mac === mac && e.ifname === host);
      return { learning: link.linkinfo.info_slave_data.learning, flood: link.linkinfo.info_slave_data.flood, fdb: fdb ? `${fdb.state ?? 'learned'}${fdb.flags?.includes('sticky') ? ' sticky' : ''}` : undefined };
    };
    const before = await portOf('ha1');
    assert.ok(before.learning && before.flood && before.fdb !== 'static sticky', `an earlier release's port: ${JSON.stringify(before)}`);
    // The set bvcnid loads where the conntrack kfuncs do not resolve (features.ts, programSet()).
    const again = await ensureNodeDataplane({ ...nodeCfg('n1'), objDir: programSetDir('no-conntrack') });
    dps.push(again);
    assert.deepEqual(
      { tunnel: again.maps.tunnel.info.id, nat: again.maps.nat.info.id, endpoints: again.maps.endpoints.info.id },
      mapIds,
    );
    assert.notEqual(again.programIds.pod, progBefore, 'a new program was loaded');
    assert.equal(again.reattached, 2);
    assert.deepEqual(await portOf('ha1'), { learning: false, flood: false, fdb: 'static sticky' }, "adopted pods' ports are pinned to their MACs");
    assert.ok(again.maps.tunnel.lookup({ prefixlen: 24, addr: '10.244.2.0' }));
    assert.equal(await ping(podNs(pod('a1')), pod('b1').ip), true);
    assert.equal(await peerSeenBy(podNs(pod('a1')), 'TCP', INET_IP, 7003), '192.0.2.11');
  });

  test('with checksum offloads off: 1400-byte DF pings and bulk TCP through the overlay and masquerade, no checksum errors', async () => {
    // With offloads on, veths never verify checksums and a broken NAT would go unnoticed.
    const offload: [string, string][] = [
      [NS.router, 'pn1'], [NS.router, 'pn2'], [NS.router, 'pinet'], [NS.inet, 'eth0'],
      [NS.n1, 'eth0'], [NS.n2, 'eth0'], [NS.n1, 'ha1'], [NS.n2, 'hb1'],
      [podNs(pod('a1')), 'eth0'], [podNs(pod('b1')), 'eth0'],
    ];
    for (const [ns, dev] of offload) await run(['ethtool', '-K', dev, 'tx', 'off', 'rx', 'off'], { netns: netnsPath(ns) });
    const receivers = [podNs(pod('a1')), podNs(pod('b1')), NS.inet];
    const errors = async (): Promise<number> => {
      let n = 0;
      for (const ns of receivers) {
        const snmp = (await run(['cat', '/proc/net/snmp'], { netns: netnsPath(ns) })).stdout.split('\n');
        for (const proto of ['Tcp:', 'Udp:']) {
          const [head, vals] = snmp.filter((l) => l.startsWith(proto));
          const i = head!.split(' ').indexOf('InCsumErrors');
          n += Number(vals!.split(' ')[i]);
        }
      }
      return n;
    };
    const before = await errors();
    assert.equal(await ping(podNs(pod('a1')), pod('b1').ip, ['-M', 'do', '-s', '1400']), true);
    assert.equal(await ping(podNs(pod('a1')), INET_IP, ['-M', 'do', '-s', '1400']), true);
    for (const [server, dst] of [[podNs(pod('b1')), pod('b1').ip], [NS.inet, INET_IP]] as const) {
      const srv = startProcess(['iperf3', '-s', '-1', '-p', '5301'], { netns: netnsPath(server) });
      procs.push(srv);
      let r = { code: 1, stdout: '', stderr: '' };
      for (let i = 0; i < 20 && r.code !== 0; i++) {
        await new Promise((res) => setTimeout(res, 100));
        r = await run(['iperf3', '-c', dst, '-p', '5301', '-n', '20M', '-J'], { netns: netnsPath(podNs(pod('a1'))), allowFail: true });
      }
      assert.equal(r.code, 0, `bulk TCP to ${dst}: ${r.stderr}`);
      // The server's byte count can stop short of the last in-flight data; what was sent and acknowledged is the whole file.
      const res = JSON.parse(r.stdout) as { end: { sum_sent: { bytes: number }; sum_received: { bytes: number } } };
      assert.ok(res.end.sum_sent.bytes >= 20 * 1024 * 1024, `sent ${res.end.sum_sent.bytes}`);
      assert.ok(res.end.sum_received.bytes > 0);
    }
    assert.equal(await errors(), before, 'TCP/UDP InCsumErrors stayed the same');
  });

  test('an ICMP port unreachable for a masqueraded UDP flow reaches the pod', async () => {
    // Nothing listens on 7999 in the internet namespace: the pod's connected UDP socket must see ECONNREFUSED.
    const r = await run(
      ['python3', '-c', [
        'import socket,sys',
        's=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(2); s.connect((sys.argv[1],7999))',
        'try:\n s.send(b"x"); s.recv(10); print("answer")\nexcept ConnectionRefusedError: print("refused")\nexcept socket.timeout: print("timeout")',
      ].join('\n'), INET_IP],
      { netns: netnsPath(podNs(pod('a2'))), allowFail: true },
    );
    assert.equal(r.stdout.trim(), 'refused', r.stderr);
  });

  // n1 goes from the no-conntrack set (previous test) to the conntrack set: what bvcnid does when
  // nf_conntrack appears (src/daemon/conntrack-watch.ts).
  test('replacing the programs under running TCP flows (overlay and masquerade), n1 from the no-conntrack set to the conntrack set, resets neither', async () => {
    const flows = [[podNs(pod('b1')), pod('b1').ip, '5401'], [NS.inet, INET_IP, '5402']] as const;
    for (const [server, , port] of flows) procs.push(startProcess(['iperf3', '-s', '-1', '-p', port], { netns: netnsPath(server) }));
    await new Promise((res) => setTimeout(res, 300));
    const clients = flows.map(([, dst, port]) =>
      run(['iperf3', '-c', dst, '-p', port, '-t', '3', '-J'], { netns: netnsPath(podNs(pod('a1'))), allowFail: true, timeoutMs: 20_000 }),
    );
    await new Promise((res) => setTimeout(res, 1000));
    dps.push(await ensureNodeDataplane(nodeCfg('n1')));
    dps.push(await ensureNodeDataplane(nodeCfg('n2')));
    for (const r of await Promise.all(clients)) {
      assert.equal(r.code, 0, r.stderr || r.stdout.slice(0, 500));
      const res = JSON.parse(r.stdout) as { end: { sum_received: { bytes: number } } };
      assert.ok(res.end.sum_received.bytes > 0);
    }
  });

  test('unregisterEndpoint without detach leaves the program to the veth; by default it detaches it', async () => {
    const p = pod('a2');
    const host = netnsPath(NS.n1);
    const hostIf = `h${p.name}`;
    const ifindex = (JSON.parse(await ip(NS.n1, '-j', 'link', 'show', hostIf))[0] as { ifindex: number }).ifindex;
    const podMac = (JSON.parse(await ip(podNs(p), '-j', 'link', 'show', 'eth0'))[0] as { address: string }).address;
    const register = (): void =>
      registerEndpoint(PIN.n1, { ip: p.ip, hostIfname: hostIf, hostIfindex: ifindex, podMac, gwMac: dps[0]!.gatewayMac, netns: host });
    const attached = (): number => listTc({ ifname: hostIf, netns: host }, 'ingress').length;
    const entry = (): boolean => {
      using m = openEndpointsMap(PIN.n1);
      return m.lookup({ ip: p.ip }) !== undefined;
    };
    assert.equal(attached(), 1);
    unregisterEndpoint(PIN.n1, p.ip, { netns: host, detach: false });
    assert.equal(entry(), false);
    assert.equal(attached(), 1, 'the program stays until the veth goes');
    register();
    unregisterEndpoint(PIN.n1, p.ip, { netns: host });
    assert.equal(entry(), false);
    assert.equal(attached(), 0);
    register();
    assert.equal(entry(), true);
    assert.equal(attached(), 1);
  });

  test('unregisterEndpoint removes the entry; decapsulated traffic for it is dropped and counted', async () => {
    const before = dropCount(PIN.n2, 'DROP_NO_ENDPOINT');
    unregisterEndpoint(PIN.n2, pod('b1').ip, { netns: netnsPath(NS.n2) });
    unregisterEndpoint(PIN.n2, pod('b1').ip, { netns: netnsPath(NS.n2) }); // tolerant of absent
    assert.equal(await ping(podNs(pod('a1')), pod('b1').ip), false);
    assert.ok(dropCount(PIN.n2, 'DROP_NO_ENDPOINT') > before);
  });

  test('removeNodeDataplane leaves no pins and no devices', async () => {
    for (const d of dps.splice(0)) d.close();
    await removeNodeDataplane(nodeCfg('n2'));
    assert.equal(existsSync(PIN.n2), false);
    const links = JSON.parse(await ip(NS.n2, '-j', 'link', 'show')) as { ifname: string }[];
    assert.deepEqual(
      links.map((l) => l.ifname).filter((n) => n === 'cni0' || n === 'vxlan.1'),
      [],
    );
    await removeNodeDataplane(nodeCfg('n2')); // tolerant of everything gone
    assert.ok(!readdirSync('/sys/fs/bpf').includes(`${P}-n2`));
  });
});
