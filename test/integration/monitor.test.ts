// `bvcnictl monitor` on a simulated node: real drops (a spoofed source, a
// frame that is not IPv4, a pod's UDP to the node's VXLAN port, a spoofed ARP)
// reach `bvcnictl monitor --json` with their fields; filters; one listener at
// a time; nothing is written to the ring buffer while nobody listens; a flood
// is rate-limited in BPF (events <= the buckets, the rest counted as
// MONITOR_SUPPRESSED) while the node keeps forwarding; SIGINT and a closed
// pipe end it cleanly, giving the lease back.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { numPossibleCpus, RingBufReader } from '../../loader/index.js';
import { MapName, Reason } from '../../src/dataplane/abi.js';
import { mapPin } from '../../src/dataplane/maps.js';
import { DropMonitor, openMonitorConfigMap } from '../../src/dataplane/monitor.js';
import { readStats } from '../../src/dataplane/stats.js';
import { waitFor } from '../../src/common/wait.js';
import { createCluster, linkInfo, ping, uniquePrefix, VXLAN_PORT, type Cluster, type SimNode, type SimPod } from '../../src/sim/index.js';
import type { MonitorLine } from '../../src/cli/commands/monitor.js';
import { arpFrame, ethFrame, ETH_P, packet, PROTO } from '../bpf/packet.js';
import { sendFrames } from '../support/raw-frames.js';
import { BVCNICTL, startMonitor, stopAllMonitors } from '../support/monitor-proc.js';

describe('bvcnictl monitor: drop events from the ring buffer', () => {
  let c: Cluster;
  let n: SimNode;
  let a: SimPod; // the hostile pod
  let b: SimPod; // its neighbour, whose address a claims
  let remote: SimPod; // a pod of the other node
  let bridgeMac = '';

  /** a's UDP with b's source address: DROP_SPOOFED at a's own hook. */
  const spoofed = (sport = 4242): Buffer => packet({ src: b.ip, dst: remote.ip, proto: PROTO.UDP, sport, dport: 9999, srcMac: a.mac, dstMac: bridgeMac });
  const counter = (reason: string): bigint => readStats(n.pinDir).filter((r) => r.reason === reason).reduce((s, r) => s + r.packets, 0n);

  before(async () => {
    c = await createCluster({ prefix: uniquePrefix('bvm'), nodes: 2, dataplane: 'bvcni', podsPerNode: 2 });
    n = c.nodes[0]!;
    [a, b] = n.pods as [SimPod, SimPod];
    remote = c.nodes[1]!.pods[0]!;
    bridgeMac = (await linkInfo(n.path, n.bridge)).address;
  });

  after(async () => {
    await stopAllMonitors();
    await c?.destroy();
  });

  test('a spoofed source, a non-IPv4 frame, UDP to the VXLAN port and a spoofed ARP each reach --json with their fields (control: allowed traffic makes no event)', async () => {
    const m = await startMonitor(n);
    // Control first: the probe (the monitor) must not report what is forwarded.
    assert.ok((await ping(a.path, remote.ip, { count: 2 })).ok, 'allowed cross-node ping');
    await sendFrames(a.path, [
      spoofed(),
      ethFrame(ETH_P.IPV6, Buffer.alloc(40), a.mac, bridgeMac),
      packet({ src: a.ip, dst: n.ip, proto: PROTO.UDP, sport: 5555, dport: VXLAN_PORT, srcMac: a.mac, dstMac: bridgeMac }),
      arpFrame({ op: 2, sip: b.ip, tip: n.gateway, tha: bridgeMac, srcMac: a.mac, dstMac: bridgeMac }),
    ]);
    const want = [Reason.DROP_SPOOFED, Reason.DROP_ETHERTYPE, Reason.DROP_POD_VXLAN, Reason.DROP_ARP_SPOOFED];
    await waitFor('the four events', () => want.every((r) => m.lines.some((l) => l.reasonCode === r)));
    const { code, lines, stderr } = await m.stop();
    assert.equal(code, 0, stderr);
    assert.match(stderr, /monitor stopped \(SIGINT\)/);
    // The pods' own IPv6 (multicast listener reports) is dropped too: each of ours is told by its length.
    const one = (r: number, len: number): MonitorLine => {
      const found = lines.filter((l) => l.reasonCode === r && l.len === len);
      assert.equal(found.length, 1, `one ${r} event of ${len} bytes: ${JSON.stringify(lines)}`);
      return found[0]!;
    };
    const sp = one(Reason.DROP_SPOOFED, 60);
    // The pod is the one the frame came from, not the one its source names.
    assert.deepEqual(
      { pod: sp.pod, hook: sp.hook, direction: sp.direction, reason: sp.reason, ethertype: sp.ethertype, proto: sp.proto, saddr: sp.saddr, daddr: sp.daddr, sport: sp.sport, dport: sp.dport, ruleRef: sp.ruleRef, node: sp.node },
      { pod: a.ip, hook: 'pod', direction: 'ingress', reason: 'DROP_SPOOFED', ethertype: 'ipv4', proto: 'udp', saddr: b.ip, daddr: remote.ip, sport: 4242, dport: 9999, ruleRef: null, node: n.name },
    );
    const hostIf = (await linkInfo(n.path, a.hostIfname)).ifindex;
    assert.equal(sp.ifindex, hostIf, "the ifindex is a's host interface");
    assert.ok(Math.abs(Date.parse(sp.time) - Date.now()) < 3_600_000, `a wall-clock time: ${sp.time}`);
    const v6 = one(Reason.DROP_ETHERTYPE, 54);
    assert.deepEqual([v6.pod, v6.ethertype, v6.proto, v6.saddr], [a.ip, '0x86dd', null, null]);
    const vx = one(Reason.DROP_POD_VXLAN, 60);
    assert.deepEqual([vx.pod, vx.saddr, vx.daddr, vx.dport, vx.proto], [a.ip, a.ip, n.ip, VXLAN_PORT, 'udp']);
    const arp = one(Reason.DROP_ARP_SPOOFED, 60);
    assert.deepEqual([arp.pod, arp.ethertype, arp.arpOp, arp.saddr, arp.daddr], [a.ip, 'arp', 2, b.ip, n.gateway]);
    assert.equal(
      lines.filter((l) => l.reason === 'FORWARD' || l.proto === 'icmp').length,
      0,
      `the allowed ping made no event: ${JSON.stringify(lines)}`,
    );
  });

  test('--reason and --pod keep only what they name (a marker sent last shows the rest was read)', async () => {
    const byReason = await startMonitor(n, ['--reason', 'pod_vxlan,DROP_ARP_SPOOFED']);
    const byPod = await startMonitor(n, ['--pod', b.ip]).catch((e: Error) => e);
    // One listener per node: the second is refused while the first lives.
    assert.ok(byPod instanceof Error && /another monitor \(pid \d+\) is listening/.test(byPod.message), String(byPod));
    await sendFrames(a.path, [spoofed(), ethFrame(ETH_P.IPV6, Buffer.alloc(40), a.mac, bridgeMac)]);
    await sendFrames(a.path, [packet({ src: a.ip, dst: n.ip, proto: PROTO.UDP, sport: 5556, dport: VXLAN_PORT, srcMac: a.mac, dstMac: bridgeMac })]);
    await waitFor('the marker', () => byReason.lines.some((l) => l.sport === 5556));
    const r = await byReason.stop();
    assert.deepEqual(
      r.lines.map((l) => l.reason),
      ['DROP_POD_VXLAN'],
      `only the named reasons: ${JSON.stringify(r.lines)}`,
    );

    // --pod: b's own drops, and a's frames that name b's address; none of a's other drops.
    const pm = await startMonitor(n, ['--pod', b.ip]);
    await sendFrames(a.path, [ethFrame(ETH_P.IPV6, Buffer.alloc(40), a.mac, bridgeMac), spoofed(4343)]);
    await sendFrames(b.path, [ethFrame(ETH_P.IPV6, Buffer.alloc(77), b.mac, bridgeMac)]);
    await waitFor("b's own drop", () => pm.lines.some((l) => l.pod === b.ip && l.reason === 'DROP_ETHERTYPE' && l.len === 91));
    const p = await pm.stop();
    assert.ok(p.lines.some((l) => l.saddr === b.ip && l.sport === 4343 && l.pod === a.ip), `a's frame with b's address: ${JSON.stringify(p.lines)}`);
    assert.deepEqual(
      p.lines.filter((l) => l.pod !== b.ip && l.saddr !== b.ip && l.daddr !== b.ip),
      [],
      'nothing that does not concern b',
    );

    const bad = spawn(process.execPath, [BVCNICTL, 'monitor', '--reason', 'no_such', '--pin-dir', n.pinDir]);
    let out = '';
    bad.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((res) => bad.on('exit', res));
    assert.equal(code, 2);
    assert.match(out, /unknown drop reason "no_such"/);
  });

  test('nobody listening: the programs write nothing to the ring buffer (control: a lease held makes the same drops fill it)', async () => {
    using cfg = openMonitorConfigMap(n.pinDir);
    assert.equal(cfg.lookup(0)?.listen_until_ns, 0n, 'the last monitor gave its lease back');
    using ring = RingBufReader.openPinned(mapPin(n.pinDir, MapName.events));
    ring.skipToEnd();
    const suppressed = counter('MONITOR_SUPPRESSED');
    const before = counter('DROP_SPOOFED');
    await sendFrames(a.path, [spoofed()], { rounds: 50 });
    await waitFor('the 50 drops counted', () => counter('DROP_SPOOFED') >= before + 50n);
    assert.equal(ring.pending, 0, 'no event without a listener');
    assert.equal(counter('MONITOR_SUPPRESSED'), suppressed, 'and nothing counted as suppressed either');

    // Control: the same frames with a lease held (nobody reading) are written.
    {
      using held = DropMonitor.open(n.pinDir);
      const at = counter('DROP_SPOOFED');
      await sendFrames(a.path, [spoofed()], { rounds: 50 });
      await waitFor('the 50 drops counted', () => counter('DROP_SPOOFED') >= at + 50n);
      assert.ok(held.pending >= 50 * 48, `50 events of 40 bytes (+ 8 of header) pending: ${held.pending}`);
    }
    assert.equal(cfg.lookup(0)?.listen_until_ns, 0n, 'closing gives the lease back');
  });

  test('a flood is rate-limited in BPF: events <= the buckets, the rest counted as suppressed, and the node keeps forwarding (control: under the limit every drop is an event)', async () => {
    const cpus = numPossibleCpus();
    const burst = 20;
    const flood = 5000;
    const m = await startMonitor(n, ['--rate', '0', '--burst', String(burst), '--reason', 'DROP_SPOOFED']);
    const spoof0 = counter('DROP_SPOOFED');
    const supp0 = counter('MONITOR_SUPPRESSED');
    const lost0 = counter('MONITOR_LOST');
    const sending = sendFrames(a.path, [spoofed(7000)], { rounds: flood });
    // Allowed traffic of the same node while the flood runs.
    const during = await ping(b.path, remote.ip, { count: 3 });
    await sending;
    await waitFor('every flood frame counted', () => counter('DROP_SPOOFED') >= spoof0 + BigInt(flood));
    const { lines, stderr } = await m.stop();
    const events = lines.filter((l) => l.sport === 7000).length;
    const dropped = counter('DROP_SPOOFED') - spoof0;
    const suppressed = counter('MONITOR_SUPPRESSED') - supp0;
    const lost = counter('MONITOR_LOST') - lost0;
    assert.ok(during.ok, `b reaches the other node during the flood: ${during.stdout}`);
    assert.ok(events > 0, 'the flood made events');
    assert.ok(events <= burst * cpus, `${events} events <= ${burst} per CPU x ${cpus} CPUs (rate 0: no refill)`);
    assert.ok(suppressed >= dropped - BigInt(burst * cpus), `suppressed ${suppressed} of ${dropped} drops`);
    assert.ok(BigInt(events) + suppressed + lost >= dropped, `every drop is an event, suppressed or lost: ${events} + ${suppressed} + ${lost} vs ${dropped}`);
    assert.match(stderr, new RegExp(`${suppressed} were suppressed by the rate limit`));

    // Control: the same frames under the limit all come through, so the cap above is the bucket's.
    const few = 300;
    const ctl = await startMonitor(n, ['--burst', String(few), '--reason', 'DROP_SPOOFED']);
    await sendFrames(a.path, [spoofed(7001)], { rounds: few });
    await waitFor(`all ${few} events`, () => ctl.lines.filter((l) => l.sport === 7001).length >= few);
    const r = await ctl.stop();
    assert.equal(r.lines.filter((l) => l.sport === 7001).length, few);
  });

  test('a reader that closes the pipe (| head -n 1) ends the monitor cleanly and gives the lease back', async () => {
    const sh = spawn('sh', ['-c', `"${process.execPath}" "${BVCNICTL}" monitor --json --reason DROP_SPOOFED --pin-dir "${n.pinDir}" --netns "${n.path}" | head -n 1`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    sh.stdout.on('data', (d: Buffer) => (out += d.toString()));
    sh.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((res) => sh.on('exit', res));
    let done = false;
    void exited.then(() => (done = true));
    await waitFor('listening', () => err.includes('listening for drops'));
    // Drops until the pipeline ends: the monitor learns of the closed pipe at its next write.
    // Only ours are printed: a simulated pod's own IPv6 (an MLD report, DROP_ETHERTYPE) may come first.
    for (let i = 0; i < 100 && !done; i++) {
      await sendFrames(a.path, [spoofed(7100 + i)]);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(await exited, 0, err);
    assert.equal(out.trim().split('\n').length, 1);
    assert.equal((JSON.parse(out) as MonitorLine).reason, 'DROP_SPOOFED');
    assert.match(err, /monitor stopped \(EPIPE\)/);
    using cfg = openMonitorConfigMap(n.pinDir);
    assert.equal(cfg.lookup(0)?.listen_until_ns, 0n, 'the lease is given back');
  });
});
