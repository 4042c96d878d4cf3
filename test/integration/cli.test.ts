// bvcnictl against a real simulated node: the real dataplane's pinned maps,
// programs and devices, real traffic (cross-node, masqueraded, spoofed), and a
// fake API server for `nodes --kubeconfig`. Each command is a function call.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BpfProgram, attachTc, detachTc, withNetns } from '../../loader/index.js';
import { run } from '../../src/common/exec.js';
import { runCli } from '../../src/cli/run.js';
import { makeNodesCommand } from '../../src/cli/commands/nodes.js';
import { installPlugin, writeConflist, CONFLIST_NAME } from '../../src/kube/install.js';
import { openTunnelMap } from '../../src/dataplane/maps.js';
import { TC_HANDLE, TC_PRIORITY, programPin } from '../../src/dataplane/layout.js';
import { createCluster, ping, uniquePrefix, INTERNET_IP, type Cluster, type SimNode } from '../../src/sim/index.js';
import { FakeKubeApiServer } from '../../src/sim/kube-apiserver.js';
import { makeNode } from '../../src/sim/kube-node.js';

const PLUGIN = fileURLToPath(new URL('../../dist/bin/bvcni', import.meta.url));

type Json = Record<string, unknown>;
const cli = async (n: SimNode, ...args: string[]): Promise<{ out: string; code: number; json: () => Json }> => {
  const r = await runCli([...args, '--pin-dir', n.pinDir, '--netns', n.path]);
  return { out: r.output, code: r.exitCode, json: () => JSON.parse(r.output) as Json };
};

describe('bvcnictl on a simulated node', () => {
  let c: Cluster;
  let n0: SimNode;
  let n1: SimNode;
  let api: FakeKubeApiServer | undefined;
  let tmp: string;

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'bvx-cli-'));
    c = await createCluster({ prefix: uniquePrefix('bvx'), nodes: 2, dataplane: 'bvcni', podsPerNode: 2 });
    n0 = c.nodes[0]!;
    n1 = c.nodes[1]!;
    // What bvcnid would have installed (the simulator does not run the daemon here).
    installPlugin(PLUGIN, n0.binDir);
    writeConflist(n0.confDir, { podCidr: n0.podCidr, bridge: n0.bridge, mtu: n0.podMtu, dataDir: n0.stateDir, pinDir: n0.pinDir });
    // Traffic: cross-node (forwarded), masqueraded (NAT entries).
    const [p0, p1] = n0.pods;
    assert.ok((await ping(p0!.path, n1.pods[0]!.ip)).ok, 'cross-node ping works before the CLI looks');
    assert.ok((await ping(p1!.path, INTERNET_IP, { count: 3 })).ok, 'masqueraded ping works');
  });

  after(async () => {
    await api?.close();
    await c?.destroy();
    rmSync(tmp, { recursive: true, force: true });
  });

  test('status: node identity, devices, attached programs, maps, readiness', async () => {
    const r = await cli(n0, 'status', '--json');
    assert.equal(r.code, 0, r.out);
    const s = r.json() as {
      node: { nodeIp: string; podCidr: string; mtu: number; configReady: boolean };
      devices: { role: string; ifname: string; mtu: number }[];
      programs: { ifname: string; direction: string; progId: number; name: string }[];
      maps: { name: string; pinned: boolean; entries?: number; maxEntries: number }[];
      dataplaneReady: boolean;
      daemon: { state: string };
      ready: boolean;
      kernel: { kernel: string; features: { id: string; state: string }[] };
      programSet: string;
    };
    assert.equal(s.node.nodeIp, n0.ip);
    assert.equal(s.node.podCidr, n0.podCidr);
    assert.equal(s.node.mtu, n0.podMtu);
    assert.equal(s.dataplaneReady, true);
    // No bvcnid runs on this simulated node: the dataplane is up, the node is not ready.
    assert.equal(s.daemon.state, 'unreachable');
    assert.equal(s.ready, false);
    const skipped = (await cli(n0, 'status', '--health-addr', 'none', '--json')).json() as typeof s;
    assert.equal(skipped.ready, true);
    assert.deepEqual(
      s.devices.map((d) => [d.role, d.ifname]),
      [
        ['uplink', n0.uplink],
        ['bridge', n0.bridge],
        ['vxlan', n0.vxlanDev],
      ],
    );
    const hooks = s.programs.map((p) => `${p.ifname}/${p.direction}/${p.name}`).sort();
    for (const pod of n0.pods) assert.ok(hooks.includes(`${pod.hostIfname}/ingress/pod_from_contai`), `pod program on ${pod.hostIfname}`);
    assert.ok(hooks.includes(`${n0.vxlanDev}/ingress/overlay_from_tu`));
    assert.ok(hooks.includes(`${n0.uplink}/ingress/host_from_uplin`));
    assert.ok(s.programs.every((p) => p.progId > 0));
    const maps = Object.fromEntries(s.maps.map((m) => [m.name, m]));
    assert.equal(maps.bvcni_endpoints!.entries, n0.pods.length);
    assert.equal(maps.bvcni_tunnel!.entries, 2, "the other node's podCIDR and its node IP");

    const human = await cli(n0, 'status');
    assert.match(human.out, /^node IP: +192\.0\.2\.\d+$/m);
    assert.match(human.out, /^ROLE +IFINDEX +NAME +MTU +STATE$/m);
    assert.match(human.out, new RegExp(`^bridge +\\d+ +${n0.bridge} +${n0.podMtu} +UP$`, 'm'));
    // The kernel's feature table, probed as bvcnid probes it at start-up.
    assert.equal(s.kernel.features.find((f) => f.id === 'redirect-peer')?.state, 'yes');
    assert.match(human.out, /^Kernel \S+$/m);
    assert.match(human.out, /^bpf_redirect_peer +5\.10 +yes/m);
    // The build bvcnid loads here (conntrack built in on 6.18): named as such.
    assert.equal(s.programSet, 'conntrack');
    assert.match(human.out, /^program set: +conntrack$/m);
  });

  test('endpoints: every local pod with its host veth and MACs', async () => {
    const r = await cli(n0, 'endpoints', '--json');
    assert.equal(r.code, 0, r.out);
    const eps = (r.json() as { endpoints: { ip: string; ifname: string; podMac: string }[] }).endpoints;
    assert.deepEqual(
      eps.map((e) => [e.ip, e.ifname, e.podMac]),
      n0.pods.map((p) => [p.ip, p.hostIfname, p.mac]).sort(),
    );
    const human = await cli(n0, 'endpoints');
    assert.match(human.out, new RegExp(`^${n0.pods[0]!.ip.replaceAll('.', '\\.')} +\\d+ +${n0.pods[0]!.hostIfname} `, 'm'));
  });

  test('nodes: the tunnel map decoded', async () => {
    const r = await cli(n0, 'nodes', '--json');
    assert.equal(r.code, 0, r.out);
    const j = r.json() as { compared: boolean; entries: { prefix: string; nodeIp: string; kind: string; state: string }[] };
    assert.equal(j.compared, false);
    assert.deepEqual(
      j.entries.map((e) => [e.prefix, e.nodeIp, e.kind]),
      [
        [n1.podCidr, n1.ip, 'podCIDR'],
        [`${n1.ip}/32`, n1.ip, 'node IP'],
      ].sort((a, b) => (a[0]! < b[0]! ? -1 : 1)),
    );
  });

  test('nodes --kubeconfig: agreement with the API, then every kind of disagreement marked', async () => {
    api = new FakeKubeApiServer();
    await api.start();
    const kc = join(tmp, 'kubeconfig');
    writeFileSync(kc, api.kubeconfig());
    api.addNode(makeNode('node-0', { podCIDR: n0.podCidr, internalIP: n0.ip }));
    api.addNode(makeNode('node-1', { podCIDR: n1.podCidr, internalIP: n1.ip }));

    const agree = await cli(n0, 'nodes', '--kubeconfig', kc, '--json');
    assert.equal(agree.code, 0, agree.out);
    const a = agree.json() as { self: string; disagreements: number; entries: { state: string; node: string }[] };
    assert.equal(a.self, 'node-0', 'found itself by its node IP');
    assert.equal(a.disagreements, 0);
    assert.ok(a.entries.every((e) => e.state === 'ok' && e.node === 'node-1'));

    // The API moves node-1 and adds node-2; the map still has the old state.
    api.modifyNode('node-1', (n) => {
      n.status!.addresses = [{ type: 'InternalIP', address: '192.0.2.99' }];
    });
    api.addNode(makeNode('node-2', { podCIDR: '10.244.7.0/24', internalIP: '192.0.2.77' }));
    using tunnel = openTunnelMap(n0.pinDir);
    tunnel.update({ prefixlen: 24, addr: '10.244.9.0' }, { node_ip: '192.0.2.55', flags: 0 });
    try {
      const r = await cli(n0, 'nodes', '--kubeconfig', kc, '--json');
      assert.equal(r.code, 1, 'disagreement is a non-zero exit');
      const states = Object.fromEntries(
        (r.json() as { entries: { prefix: string; state: string }[] }).entries.map((e) => [e.prefix, e.state]),
      );
      assert.equal(states[n1.podCidr], 'wrong-ip');
      assert.equal(states['10.244.7.0/24'], 'missing');
      assert.equal(states['192.0.2.77/32'], 'missing');
      assert.equal(states['10.244.9.0/24'], 'stale');
      const human = await cli(n0, 'nodes', '--kubeconfig', kc);
      assert.match(human.out, /10\.244\.9\.0\/24 +192\.0\.2\.55 +podCIDR +- +STALE/);
      assert.match(human.out, /WRONG IP \(API says 192\.0\.2\.99\)/);
      assert.match(human.out, /disagree with the API/);
    } finally {
      tunnel.delete({ prefixlen: 24, addr: '10.244.9.0' });
    }
  });

  test('nodes: an unreachable API server is a clear error', async () => {
    const kc = join(tmp, 'dead-kubeconfig');
    const dead = new FakeKubeApiServer();
    await dead.start();
    writeFileSync(kc, dead.kubeconfig());
    await dead.close();
    const r = await cli(n0, 'nodes', '--kubeconfig', kc);
    assert.equal(r.code, 1);
    assert.match(r.out, /^error: cannot list Nodes/m);
    assert.match(r.out, /^hint: /m);
  });

  test('nodes: the comparison is injectable (no API needed) and flags a missing entry', async () => {
    const cmd = makeNodesCommand(async () => [
      makeNode('self', { podCIDR: n0.podCidr, internalIP: n0.ip }),
      makeNode('other', { podCIDR: n1.podCidr, internalIP: n1.ip }),
      makeNode('third', { podCIDR: '10.244.5.0/24', internalIP: '192.0.2.50' }),
    ]);
    const r = await runCli(['nodes', '--pin-dir', n0.pinDir, '--kubeconfig', 'unused', '--node-name', 'self', '--json'], [cmd]);
    const j = JSON.parse(r.output) as { disagreements: number; entries: { prefix: string; state: string }[] };
    assert.equal(j.disagreements, 2);
    assert.deepEqual(j.entries.filter((e) => e.state === 'missing').map((e) => e.prefix).sort(), ['10.244.5.0/24', '192.0.2.50/32']);
  });

  test('nat: the masqueraded flow of one pod, paired both ways; --pod filters', async () => {
    const pod = n0.pods[1]!;
    const r = await cli(n0, 'nat', '--pod', pod.ip, '--json');
    assert.equal(r.code, 0, r.out);
    const flows = (r.json() as { flows: { proto: string; podIp: string; remoteIp: string; natIp: string; halves: string; idleSeconds: number }[] }).flows;
    const icmp = flows.filter((f) => f.proto === 'icmp' && f.remoteIp === INTERNET_IP);
    assert.ok(icmp.length >= 1, r.out);
    for (const f of icmp) {
      assert.equal(f.podIp, pod.ip);
      assert.equal(f.natIp, n0.ip, "translated to the node's IP");
      assert.equal(f.halves, 'both');
      assert.ok(f.idleSeconds >= 0 && f.idleSeconds < 600);
    }
    const other = await cli(n0, 'nat', '--pod', n0.pods[0]!.ip, '--json');
    assert.deepEqual((other.json() as { flows: unknown[] }).flows, [], 'the other pod went nowhere outside the cluster');
    const human = await cli(n0, 'nat');
    assert.match(human.out, /^PROTO +POD +REMOTE +NAT +STATE +AGE +IDLE +HALVES$/m);
    assert.match(human.out, new RegExp(`^icmp +${pod.ip.replaceAll('.', '\\.')}:\\d+ +198\\.51\\.100\\.1:\\d+ +${n0.ip.replaceAll('.', '\\.')}:\\d+ `, 'm'));
    const bad = await cli(n0, 'nat', '--pod', 'not-an-ip');
    assert.equal(bad.code, 1);
    assert.match(bad.out, /--pod: "not-an-ip" is not an IPv4 address/);
  });

  test('drops: a spoofed packet shows up under its reason', async () => {
    const before = (await cli(n0, 'drops', '--all', '--json')).json() as { counters: { reason: string; direction: string; packets: number }[] };
    const spoofed = (j: typeof before): number => j.counters.filter((x) => x.reason === 'DROP_SPOOFED').reduce((s, x) => s + x.packets, 0);
    const pod = n0.pods[0]!;
    // A source address the pod does not own: anti-spoofing must drop it.
    await run(['ip', 'addr', 'add', '10.244.0.250/32', 'dev', pod.ifname], { netns: pod.path });
    await ping(pod.path, n1.pods[0]!.ip, { source: '10.244.0.250', count: 3, timeoutS: 1 });
    await run(['ip', 'addr', 'del', '10.244.0.250/32', 'dev', pod.ifname], { netns: pod.path });
    const afterJ = (await cli(n0, 'drops', '--json')).json() as typeof before & { totalDropped: number };
    assert.ok(spoofed(afterJ) >= spoofed(before) + 3, `3 more spoofed drops: ${JSON.stringify(afterJ.counters)}`);
    assert.ok(afterJ.totalDropped >= 3);
    assert.ok(afterJ.counters.every((x) => x.packets > 0), 'without --all, zero rows are hidden');
    const human = await cli(n0, 'drops');
    assert.match(human.out, /^DROP_SPOOFED +(ingress|egress) +\d+ /m);
    assert.match(human.out, /^total dropped: \d+ packets$/m);
  });

  test('doctor: all green on a healthy node', async () => {
    const r = await cli(n0, 'doctor', '--health-addr', 'none', '--cni-conf-dir', n0.confDir, '--cni-bin-dir', n0.binDir, '--json');
    const j = r.json() as { ok: boolean; checks: { name: string; result: string; detail: string }[] };
    assert.equal(r.code, 0, JSON.stringify(j.checks.filter((x) => x.result === 'fail')));
    assert.equal(j.ok, true);
    const names = j.checks.map((x) => x.name);
    for (const want of ['bpffs mounted', 'programs attached', 'MTU consistent', 'IPv4 forwarding on', 'CNI conflist valid', 'CNI plugin installed', 'API server reachable'])
      assert.ok(names.includes(want), want);
    assert.equal(j.checks.find((x) => x.name === 'API server reachable')!.result, 'skip');
  });

  test('doctor: no bvcnid answering on its health address fails, with where to look', async () => {
    const r = await cli(n0, 'doctor', '--cni-conf-dir', n0.confDir, '--cni-bin-dir', n0.binDir, '--json');
    assert.equal(r.code, 1);
    const failed = (r.json() as { checks: { name: string; result: string; fix?: string }[] }).checks.filter((x) => x.result === 'fail');
    assert.deepEqual(failed.map((x) => x.name), ['bvcnid ready']);
    assert.match(failed[0]!.fix ?? '', /not running here/);
  });

  // Each breakage alone: the right check fails, with a fix; undone afterwards.
  const breakages: { name: string; check: string; fix: RegExp; breakIt: () => Promise<void>; undo: () => Promise<void> }[] = [
    {
      name: 'bridge MTU changed',
      check: 'MTU consistent',
      fix: /ip link set DEV mtu/,
      breakIt: () => run(['ip', 'link', 'set', n0.bridge, 'mtu', '1400'], { netns: n0.path }).then(() => undefined),
      undo: () => run(['ip', 'link', 'set', n0.bridge, 'mtu', String(n0.podMtu)], { netns: n0.path }).then(() => undefined),
    },
    {
      name: 'forwarding off',
      check: 'IPv4 forwarding on',
      fix: /sysctl -w net\.ipv4\.ip_forward=1/,
      breakIt: async () => void withNetns(n0.path, () => writeFileSync('/proc/sys/net/ipv4/ip_forward', '0')),
      undo: async () => void withNetns(n0.path, () => writeFileSync('/proc/sys/net/ipv4/ip_forward', '1')),
    },
    {
      name: 'uplink program detached',
      check: 'programs attached',
      fix: /restart bvcnid/,
      breakIt: async () => detachTc({ ifname: n0.uplink, netns: n0.path, direction: 'ingress', handle: TC_HANDLE, priority: TC_PRIORITY }),
      undo: async () => {
        using prog = BpfProgram.openPinned(programPin(n0.pinDir, 'uplinkIngress'));
        attachTc({ ifname: n0.uplink, netns: n0.path, direction: 'ingress', program: prog, handle: TC_HANDLE, priority: TC_PRIORITY });
      },
    },
    {
      name: 'conflist for another podCIDR',
      check: 'CNI conflist valid',
      fix: /restart bvcnid/,
      breakIt: async () =>
        void writeConflist(n0.confDir, { podCidr: '10.244.200.0/24', bridge: n0.bridge, mtu: n0.podMtu, dataDir: n0.stateDir, pinDir: n0.pinDir }),
      undo: async () =>
        void writeConflist(n0.confDir, { podCidr: n0.podCidr, bridge: n0.bridge, mtu: n0.podMtu, dataDir: n0.stateDir, pinDir: n0.pinDir }),
    },
    {
      name: 'another CNI config sorts first',
      check: 'CNI conflist valid',
      fix: /move .*00-aaa\.conf away/,
      breakIt: async () => writeFileSync(join(n0.confDir, '00-aaa.conf'), '{}'),
      undo: async () => rmSync(join(n0.confDir, '00-aaa.conf')),
    },
    {
      name: 'plugin missing',
      check: 'CNI plugin installed',
      fix: /install-cni init container installs it/,
      breakIt: async () => rmSync(join(n0.binDir, 'bvcni')),
      undo: async () => void installPlugin(PLUGIN, n0.binDir),
    },
  ];
  for (const b of breakages) {
    test(`doctor: ${b.name} → "${b.check}" fails with its fix`, async () => {
      await b.breakIt();
      try {
        const r = await cli(n0, 'doctor', '--health-addr', 'none', '--cni-conf-dir', n0.confDir, '--cni-bin-dir', n0.binDir, '--json');
        assert.equal(r.code, 1);
        const j = r.json() as { ok: boolean; checks: { name: string; result: string; fix?: string }[] };
        assert.equal(j.ok, false);
        const failed = j.checks.filter((x) => x.result === 'fail');
        assert.deepEqual(failed.map((x) => x.name), [b.check], 'only the broken check fails');
        assert.match(failed[0]!.fix ?? '', b.fix);
        const human = await cli(n0, 'doctor', '--health-addr', 'none', '--cni-conf-dir', n0.confDir, '--cni-bin-dir', n0.binDir);
        assert.match(human.out, new RegExp(`^${b.check} +FAIL `, 'm'));
        assert.match(human.out, /^ +fix: /m);
      } finally {
        await b.undo();
      }
      const again = await cli(n0, 'doctor', '--health-addr', 'none', '--cni-conf-dir', n0.confDir, '--cni-bin-dir', n0.binDir);
      assert.equal(again.code, 0, `repaired: ${again.out}`);
    });
  }

  test('every command takes --json, --pin-dir and --netns', async () => {
    for (const name of ['status', 'nodes', 'endpoints', 'nat', 'drops', 'doctor', 'uninstall']) {
      const r = await runCli([name, '--help']);
      assert.equal(r.exitCode, 0);
      for (const flag of ['--json', '--pin-dir', '--netns']) assert.ok(r.output.includes(flag), `${name} ${flag}`);
    }
    const unknown = await runCli(['frobnicate']);
    assert.equal(unknown.exitCode, 2);
  });

  test('a pin dir with nothing in it: a clear error with a hint, in text and JSON', async () => {
    const missing = `${n0.pinDir}-absent`;
    for (const name of ['status', 'nodes', 'endpoints', 'nat', 'drops']) {
      const r = await runCli([name, '--pin-dir', missing]);
      assert.equal(r.exitCode, 1, name);
      assert.match(r.output, /^error: pin directory .* does not exist\nhint: /, name);
      const j = await runCli([name, '--pin-dir', missing, '--json']);
      assert.deepEqual(Object.keys(JSON.parse(j.output) as Json), ['error', 'hint']);
    }
    const noNs = await runCli(['status', '--pin-dir', n0.pinDir, '--netns', '/run/netns/bvx-no-such-ns']);
    assert.equal(noNs.exitCode, 1);
    assert.match(noNs.output, /^error: network namespace \/run\/netns\/bvx-no-such-ns does not exist\nhint: /);
    const d = await runCli(['doctor', '--pin-dir', missing, '--json']);
    assert.equal(d.exitCode, 1);
    const checks = (JSON.parse(d.output) as { checks: { name: string; result: string }[] }).checks;
    assert.equal(checks.find((x) => x.name === 'maps pinned')?.result, 'fail');
  });

  test('uninstall: dry run changes nothing; --yes removes maps, programs, devices and files', async () => {
    installPlugin(PLUGIN, n1.binDir);
    writeConflist(n1.confDir, { podCidr: n1.podCidr, bridge: n1.bridge, mtu: n1.podMtu, dataDir: n1.stateDir, pinDir: n1.pinDir });
    const args = ['--cni-conf-dir', n1.confDir, '--cni-bin-dir', n1.binDir];
    const dry = await cli(n1, 'uninstall', ...args, '--json');
    assert.equal(dry.code, 0);
    const plan = (dry.json() as { removed: boolean; wouldRemove: { devices: string[]; files: string[]; pinDir: string } });
    assert.equal(plan.removed, false);
    assert.deepEqual(plan.wouldRemove.devices.sort(), [n1.bridge, n1.vxlanDev].sort());
    assert.equal(plan.wouldRemove.pinDir, n1.pinDir);
    assert.ok(existsSync(n1.pinDir) && existsSync(join(n1.confDir, CONFLIST_NAME)), 'dry run removed nothing');

    const r = await cli(n1, 'uninstall', ...args, '--yes');
    assert.equal(r.code, 0, r.out);
    assert.equal(existsSync(n1.pinDir), false);
    assert.equal(existsSync(join(n1.confDir, CONFLIST_NAME)), false);
    assert.equal(existsSync(join(n1.binDir, 'bvcni')), false);
    const links = await run(['ip', '-o', 'link', 'show'], { netns: n1.path });
    assert.doesNotMatch(links.stdout, new RegExp(`: (${n1.bridge}|${n1.vxlanDev.replace('.', '\\.')})[:@]`));
    const filters = await run(['tc', 'filter', 'show', 'dev', n1.uplink, 'ingress'], { netns: n1.path });
    assert.doesNotMatch(filters.stdout, /bpf/);
    const again = await cli(n1, 'uninstall', ...args, '--yes');
    assert.equal(again.code, 0, 'idempotent');
    assert.match(again.out, /nothing \(already clean\)/);
  });
});
