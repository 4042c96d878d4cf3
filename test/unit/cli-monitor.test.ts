// bvcnictl monitor's decoding, without a kernel: a drop_event as the programs
// write it, through the codec, to the printed line and the --json object;
// which pod an event is about; --reason's names.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { dropEvent, EventFlags, Hook, Reason, type DropEvent, type EndpointValue } from '../../src/dataplane/abi.js';
import type { TimedDropEvent } from '../../src/dataplane/monitor.js';
import { concerns, describeEvent, formatLine, parseEndpointNames, parseReasons, PodTable } from '../../src/cli/commands/monitor.js';
import { CliError } from '../../src/cli/types.js';

const ep = (ifindex: number): EndpointValue => ({ ifindex, flags: 1, pod_mac: '02:00:00:00:00:01', gw_mac: '02:00:00:00:00:02', identity: 0 });

function event(over: Partial<DropEvent>): TimedDropEvent {
  const base: DropEvent = {
    ktime_ns: 1_000_000n,
    ifindex: 7,
    len: 60,
    reason: Reason.DROP_SPOOFED,
    dir: 0,
    hook: Hook.pod,
    ethertype: 0x0800,
    proto: 17,
    flags: EventFlags.ipv4 | EventFlags.ports,
    saddr: '10.244.1.9',
    daddr: '10.244.2.3',
    sport: 4242,
    dport: 9999,
    rule_ref: 0,
  };
  // Through the bytes, as the ring buffer delivers it.
  const buf = Buffer.alloc(dropEvent.size);
  dropEvent.encode({ ...base, ...over }, buf);
  return { ...dropEvent.decode(buf), timeMs: Date.UTC(2026, 11, 5, 6, 31, 41, 475) };
}

describe('bvcnictl monitor: events decoded and printed', () => {
  const pods = new PodTable();
  pods.load([
    [{ ip: '10.244.1.7' }, ep(7)],
    [{ ip: '10.244.1.8' }, ep(8)],
  ]);

  test("a spoofed source at a pod's hook is that pod's (the interface's), not the address it claims", () => {
    const l = describeEvent(event({ saddr: '10.244.1.8' }), 'node-a', pods);
    assert.equal(l.pod, '10.244.1.7');
    assert.equal(
      formatLine(l),
      '2026-12-05T06:31:41.475Z node-a 10.244.1.7 pod/ingress udp 10.244.1.8:4242 -> 10.244.2.3:9999 DROP_SPOOFED (60 B)\n',
    );
    assert.deepEqual(JSON.parse(JSON.stringify(l)), {
      time: '2026-12-05T06:31:41.475Z',
      node: 'node-a',
      pod: '10.244.1.7',
      hook: 'pod',
      direction: 'ingress',
      ifindex: 7,
      reason: 'DROP_SPOOFED',
      reasonCode: 2,
      ethertype: 'ipv4',
      proto: 'udp',
      saddr: '10.244.1.8',
      daddr: '10.244.2.3',
      sport: 4242,
      dport: 9999,
      arpOp: null,
      len: 60,
      ruleRef: null,
      policy: null,
      policies: [],
    });
  });

  test('elsewhere the local destination, else the local source; none when neither is a local pod', () => {
    const atUplink = { hook: Hook.uplink, ifindex: 2 };
    assert.equal(describeEvent(event({ ...atUplink, saddr: '10.244.2.3', daddr: '10.244.1.8' }), 'n', pods).pod, '10.244.1.8');
    assert.equal(describeEvent(event({ ...atUplink, hook: Hook.overlayEgress, dir: 1, saddr: '10.244.1.7', daddr: '10.244.9.9' }), 'n', pods).pod, '10.244.1.7');
    assert.equal(describeEvent(event({ ...atUplink, saddr: '198.51.100.1', daddr: '192.0.2.11' }), 'n', pods).pod, null);
    assert.equal(describeEvent(event({ hook: Hook.overlayEgress, dir: 1 }), 'n', pods).direction, 'egress');
  });

  test("a policy drop names the pod whose isolation denied it: at a backend's host end (toPod), a Service client's egress is the source's", () => {
    const atToPod = { hook: Hook.toPod, dir: 1, ifindex: 9, saddr: '10.244.1.7', daddr: '10.244.1.8' };
    assert.equal(describeEvent(event({ ...atToPod, reason: Reason.DROP_POLICY_EGRESS }), 'n', pods).pod, '10.244.1.7');
    // The control: the same packet dropped for the backend's ingress names the backend.
    assert.equal(describeEvent(event({ ...atToPod, reason: Reason.DROP_POLICY_INGRESS }), 'n', pods).pod, '10.244.1.8');
    assert.equal(describeEvent(event({ ...atToPod, reason: Reason.DROP_POLICY_EGRESS }), 'n', pods).hook, 'toPod');
  });

  test('ARP, ICMP and other EtherTypes print what they carry; a policy rule shows', () => {
    const arp = describeEvent(event({ reason: Reason.DROP_ARP_SPOOFED, ethertype: 0x0806, proto: 0, flags: EventFlags.arp, sport: 2, dport: 0, saddr: '10.244.1.8', daddr: '10.244.1.1' }), 'n', pods);
    assert.deepEqual([arp.ethertype, arp.arpOp, arp.proto, arp.sport], ['arp', 2, null, null]);
    assert.match(formatLine(arp), / arp reply 10\.244\.1\.8 -> 10\.244\.1\.1 DROP_ARP_SPOOFED /);
    const icmp = describeEvent(event({ proto: 1, sport: 8, dport: 0 }), 'n', pods);
    assert.match(formatLine(icmp), / icmp 10\.244\.1\.9 -> 10\.244\.2\.3 type 8 code 0 /);
    const v6 = describeEvent(event({ reason: Reason.DROP_ETHERTYPE, ethertype: 0x86dd, proto: 0, flags: 0, saddr: '0.0.0.0', daddr: '0.0.0.0', sport: 0, dport: 0 }), 'n', pods);
    assert.deepEqual([v6.ethertype, v6.saddr, v6.proto], ['0x86dd', null, null]);
    assert.match(formatLine(v6), / ethertype 0x86dd DROP_ETHERTYPE /);
    const pol = describeEvent(event({ reason: 21, rule_ref: 17 }), 'n', pods);
    assert.equal(pol.ruleRef, 17);
    assert.match(formatLine(pol), / DROP_POLICY_INGRESS rule 17 /);
  });

  test('--reason: names with or without DROP_, any case, numbers; unknown names and FORWARD refused with the list (exit 2)', () => {
    assert.deepEqual([...parseReasons('spoofed, DROP_ETHERTYPE,arp_spoofed,21')], [Reason.DROP_SPOOFED, Reason.DROP_ETHERTYPE, Reason.DROP_ARP_SPOOFED, 21]);
    for (const bad of ['no_such', 'FORWARD', '64']) {
      assert.throws(
        () => parseReasons(bad),
        (e: unknown) => e instanceof CliError && e.exitCode === 2 && /unknown drop reason/.test(e.message) && /DROP_SPOOFED/.test(e.hint ?? ''),
        bad,
      );
    }
  });
});

describe('bvcnictl monitor: pods and policies named by bvcnid (GET /endpoints)', () => {
  const body = JSON.stringify({
    endpoints: {
      '10.244.1.7': { pod: 'x/a', ingress: ['x/deny-all', 'x/allow-web'], egress: [] },
      '10.244.1.8': { pod: 'y/b', ingress: [], egress: ['y/no-egress'] },
      '10.244.1.9': { pod: 'z/c', ingress: [], egress: [] },
    },
  });
  const pods = new PodTable();
  pods.load([
    [{ ip: '10.244.1.7' }, ep(7)],
    [{ ip: '10.244.1.8' }, ep(8)],
    [{ ip: '10.244.1.9' }, ep(9)],
    [{ ip: '10.244.1.10' }, ep(10)],
  ]);
  pods.setNames(parseEndpointNames(body));

  test('an ingress policy drop names the destination pod and the policies isolating it for ingress, in text and --json', () => {
    const l = describeEvent(event({ reason: Reason.DROP_POLICY_INGRESS, hook: Hook.uplink, ifindex: 2, saddr: '10.244.2.3', daddr: '10.244.1.7', sport: 40000, dport: 80, proto: 6 }), 'node-a', pods);
    assert.equal(l.pod, 'x/a');
    assert.deepEqual(l.policies, ['x/deny-all', 'x/allow-web']);
    assert.equal(l.policy, 'x/deny-all, x/allow-web');
    assert.equal(
      formatLine(l),
      '2026-12-05T06:31:41.475Z node-a x/a uplink/ingress tcp 10.244.2.3:40000 -> 10.244.1.7:80 DROP_POLICY_INGRESS denied: no rule of x/deny-all, x/allow-web allows it (60 B)\n',
    );
    assert.deepEqual(JSON.parse(JSON.stringify(l)).policies, ['x/deny-all', 'x/allow-web']);
  });

  test("an egress policy drop names the source's egress policies, not the destination's ingress ones", () => {
    const l = describeEvent(event({ reason: Reason.DROP_POLICY_EGRESS, ifindex: 8, saddr: '10.244.1.8', daddr: '10.244.1.7' }), 'n', pods);
    assert.deepEqual(l.policies, ['y/no-egress']);
    assert.match(formatLine(l), / DROP_POLICY_EGRESS denied: no rule of y\/no-egress allows it /);
  });

  test('control: a pod no policy selects, a pod bvcnid did not name, and a non-policy drop show no policy; unknown pods print as IPs', () => {
    const free = describeEvent(event({ reason: Reason.DROP_POLICY_INGRESS, hook: Hook.uplink, ifindex: 2, saddr: '10.244.2.3', daddr: '10.244.1.9' }), 'n', pods);
    assert.equal(free.pod, 'z/c');
    assert.deepEqual([free.policies, free.policy], [[], null]);
    assert.doesNotMatch(formatLine(free), /denied/);
    const unnamed = describeEvent(event({ reason: Reason.DROP_POLICY_INGRESS, hook: Hook.uplink, ifindex: 2, saddr: '10.244.2.3', daddr: '10.244.1.10', rule_ref: 3 }), 'n', pods);
    assert.equal(unnamed.pod, '10.244.1.10');
    assert.deepEqual(unnamed.policies, []);
    assert.match(formatLine(unnamed), / rule 3 /);
    // DROP_SPOOFED at a's hook: the pod is named, but its ingress policies have nothing to do with it.
    const spoof = describeEvent(event({ saddr: '10.244.1.8' }), 'n', pods);
    assert.deepEqual([spoof.pod, spoof.policies], ['x/a', []]);
    assert.equal(pods.named('10.244.1.10'), false);
    assert.equal(pods.named('10.244.1.7'), true);
  });

  test('--pod matches the event pod, or the source or destination by IP or by name', () => {
    const l = describeEvent(event({ reason: Reason.DROP_POLICY_EGRESS, ifindex: 8, saddr: '10.244.1.8', daddr: '10.244.1.7' }), 'n', pods);
    assert.equal(l.pod, 'y/b'); // the pod on whose hook it was dropped
    for (const p of ['x/a', 'y/b', '10.244.1.8', '10.244.1.7']) assert.ok(concerns(l, p, pods), p);
    for (const p of ['z/c', '10.244.1.9', 'x/b']) assert.ok(!concerns(l, p, pods), p);
  });

  test('parseEndpointNames: a body of another shape is refused; entries without a pod are skipped, non-string policies dropped', () => {
    assert.throws(() => parseEndpointNames('{"error":"NetworkPolicy is not enabled"}'), /no endpoints/);
    assert.throws(() => parseEndpointNames('not json'));
    const m = parseEndpointNames(JSON.stringify({ endpoints: { '10.0.0.1': { ingress: ['a/b'] }, '10.0.0.2': { pod: 'a/c', ingress: ['a/p', 3], egress: 'x' } } }));
    assert.deepEqual([...m], [['10.0.0.2', { pod: 'a/c', ingress: ['a/p'], egress: [] }]]);
  });
});
