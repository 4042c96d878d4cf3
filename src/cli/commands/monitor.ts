// bvcnictl monitor: drop events as they happen, from the node's ring buffer
// (bpf/lib/monitor.h). Streams until ^C (or --count events, or a reader that
// closed the pipe); the node builds events only while a monitor holds its lease.
import { hostname } from 'node:os';
import { basename } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { EventFlags, Hook, hookName, IPPROTO, Reason, REASON_MAX, reasonCode, reasonName, Direction, type EndpointValue } from '../../dataplane/abi.js';
import { openEndpointsMap } from '../../dataplane/maps.js';
import { DropMonitor, MonitorBusy, MonitorUnavailable, MONITOR_DEFAULT_BURST, MONITOR_DEFAULT_RATE, type TimedDropEvent } from '../../dataplane/monitor.js';
import { readStats } from '../../dataplane/stats.js';
import { daemonGet, requirePinDir } from '../inspect.js';
import { Defaults } from '../../common/defaults.js';
import { CliError, ok, type CommandIo, type CommandSpec, type OptionValues } from '../types.js';

/** How often the ring buffer is read: events reach the terminal at most this late. */
const POLL_MS = 100;
/** How often the pod table (endpoint map) is read again, for pods added meanwhile. */
const PODS_EVERY_MS = 2000;
/** How often bvcnid's names are asked for again; an event about an unknown IP asks sooner, at most this often. */
const NAMES_EVERY_MS = 5000;
const NAMES_UNKNOWN_MS = 1000;

const PROTO: Record<number, string> = { [IPPROTO.TCP]: 'tcp', [IPPROTO.UDP]: 'udp', [IPPROTO.ICMP]: 'icmp', [IPPROTO.SCTP]: 'sctp' };
const ETH_P_ARP = 0x0806;
const ETH_P_IP = 0x0800;

/** One event as printed: the --json line's object. */
export interface MonitorLine {
  time: string;
  node: string;
  /** The pod the drop concerns: NS/NAME where known, else its IP; null when no local pod is involved. */
  pod: string | null;
  hook: string;
  direction: 'ingress' | 'egress';
  ifindex: number;
  reason: string;
  reasonCode: number;
  ethertype: string;
  proto: string | null;
  saddr: string | null;
  daddr: string | null;
  sport: number | null;
  dport: number | null;
  arpOp: number | null;
  len: number;
  /** The policy rule behind a policy drop; null when unknown. */
  ruleRef: number | null;
  policy: string | null;
  /** For DROP_POLICY_INGRESS/EGRESS: the policies isolating the endpoint in that direction (NS/NAME), none of which allowed it; [] when unknown. */
  policies: string[];
}

/** What bvcnid (--network-policy) says of one local endpoint: GET /endpoints. */
export interface EndpointName {
  pod: string;
  ingress: string[];
  egress: string[];
}

/** GET /endpoints' body, checked: IP -> name and isolating policies. Throws on a body of another shape. */
export function parseEndpointNames(body: string): Map<string, EndpointName> {
  const j = JSON.parse(body) as unknown;
  const eps = (j as { endpoints?: unknown } | null)?.endpoints;
  if (typeof eps !== 'object' || eps === null) throw new Error('no endpoints object');
  const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  const out = new Map<string, EndpointName>();
  for (const [ip, v] of Object.entries(eps as Record<string, unknown>)) {
    const e = v as { pod?: unknown; ingress?: unknown; egress?: unknown } | null;
    if (typeof e?.pod !== 'string') continue;
    out.set(ip, { pod: e.pod, ingress: strings(e.ingress), egress: strings(e.egress) });
  }
  return out;
}

/** The pods of this node, by IP and by host interface (what a pod's own drops are seen on). */
export class PodTable {
  #byIp = new Map<string, EndpointValue>();
  #byIfindex = new Map<number, string>();
  #names: ReadonlyMap<string, EndpointName>;
  constructor(names: ReadonlyMap<string, EndpointName> = new Map()) {
    this.#names = names;
  }

  /** bvcnid's names (GET /endpoints); an empty map: IPs only. */
  setNames(names: ReadonlyMap<string, EndpointName>): void {
    this.#names = names;
  }

  load(entries: Iterable<[{ ip: string }, EndpointValue]>): void {
    this.#byIp.clear();
    this.#byIfindex.clear();
    for (const [k, v] of entries) {
      this.#byIp.set(k.ip, v);
      this.#byIfindex.set(v.ifindex, k.ip);
    }
  }

  label(ip: string): string {
    return this.#names.get(ip)?.pod ?? ip;
  }

  /** Whether bvcnid named this IP (an IP of a local pod it did not name means its table is stale). */
  named(ip: string): boolean {
    return this.#names.has(ip);
  }

  /** The policies isolating the endpoint at ip in a direction ([] when unknown or not isolated). */
  policies(ip: string, dir: 'ingress' | 'egress'): string[] {
    return this.#names.get(ip)?.[dir] ?? [];
  }

  /** The local pod at an event's address (for policy drops: whose isolation denied it). */
  isLocal(ip: string): boolean {
    return this.#byIp.has(ip);
  }

  /**
   * The local pod an event is about: for a pod's own hook, the pod on that
   * interface (its source may be a lie: a spoofed address names a victim, not
   * the sender); for a policy drop, the pod whose isolation denied it (the
   * source for egress, wherever it was decided: bpf_to_pod decides a Service
   * client's egress on the backend's host end); elsewhere the destination if
   * local, else the source.
   */
  podOf(ev: TimedDropEvent): string | null {
    if (ev.hook === Hook.pod) {
      const ip = this.#byIfindex.get(ev.ifindex);
      if (ip) return this.label(ip);
    }
    if (ev.flags & EventFlags.ipv4) {
      if (ev.reason === Reason.DROP_POLICY_EGRESS && this.#byIp.has(ev.saddr)) return this.label(ev.saddr);
      if (ev.reason === Reason.DROP_POLICY_INGRESS && this.#byIp.has(ev.daddr)) return this.label(ev.daddr);
    }
    if (ev.flags & (EventFlags.ipv4 | EventFlags.arp)) {
      if (this.#byIp.has(ev.daddr)) return this.label(ev.daddr);
      if (this.#byIp.has(ev.saddr)) return this.label(ev.saddr);
    }
    return null;
  }
}

export function describeEvent(ev: TimedDropEvent, node: string, pods: PodTable): MonitorLine {
  const ip = (ev.flags & EventFlags.ipv4) !== 0;
  const arp = (ev.flags & EventFlags.arp) !== 0;
  const ports = (ev.flags & EventFlags.ports) !== 0;
  // A policy drop is the isolation of one endpoint: the destination's for ingress, the source's for egress.
  const policies =
    ip && ev.reason === Reason.DROP_POLICY_INGRESS
      ? pods.policies(ev.daddr, 'ingress')
      : ip && ev.reason === Reason.DROP_POLICY_EGRESS
        ? pods.policies(ev.saddr, 'egress')
        : [];
  return {
    time: new Date(ev.timeMs).toISOString(),
    node,
    pod: pods.podOf(ev),
    hook: hookName(ev.hook),
    direction: ev.dir === Direction.egress ? 'egress' : 'ingress',
    ifindex: ev.ifindex,
    reason: reasonName(ev.reason),
    reasonCode: ev.reason,
    ethertype: ev.ethertype === ETH_P_IP ? 'ipv4' : ev.ethertype === ETH_P_ARP ? 'arp' : `0x${ev.ethertype.toString(16).padStart(4, '0')}`,
    proto: ip ? (PROTO[ev.proto] ?? String(ev.proto)) : null,
    saddr: ip || arp ? ev.saddr : null,
    daddr: ip || arp ? ev.daddr : null,
    sport: ip && ports ? ev.sport : null,
    dport: ip && ports ? ev.dport : null,
    arpOp: arp ? ev.sport : null,
    len: ev.len,
    ruleRef: ev.rule_ref || null,
    policy: policies.length ? policies.join(', ') : null,
    policies,
  };
}

export function formatLine(l: MonitorLine): string {
  const ep = (addr: string | null, port: number | null): string => (addr ? (port !== null && l.proto !== 'icmp' ? `${addr}:${port}` : addr) : '?');
  let what: string;
  if (l.proto) {
    what = `${l.proto} ${ep(l.saddr, l.sport)} -> ${ep(l.daddr, l.dport)}`;
    if (l.proto === 'icmp' && l.sport !== null) what += ` type ${l.sport} code ${l.dport}`;
  } else if (l.arpOp !== null) what = `arp ${l.arpOp === 1 ? 'request' : l.arpOp === 2 ? 'reply' : `op ${l.arpOp}`} ${l.saddr} -> ${l.daddr}`;
  else what = `ethertype ${l.ethertype}`;
  const rule = l.policies.length ? ` denied: no rule of ${l.policies.join(', ')} allows it` : l.ruleRef ? ` rule ${l.ruleRef}` : '';
  return `${l.time} ${l.node} ${l.pod ?? '-'} ${l.hook}/${l.direction} ${what} ${l.reason}${rule} (${l.len} B)\n`;
}

/** --pod: the event's pod, or its source or destination, by IP or by the name bvcnid gives it. */
export function concerns(l: MonitorLine, pod: string, pods: PodTable): boolean {
  if (l.pod === pod) return true;
  return [l.saddr, l.daddr].some((a) => a !== null && (a === pod || pods.label(a) === pod));
}

/** --reason: names (DROP_SPOOFED, spoofed, drop_spoofed) or numbers, comma-separated. */
export function parseReasons(spec: string): Set<number> {
  const out = new Set<number>();
  for (const raw of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const code = /^\d+$/.test(raw) ? Number(raw) : (reasonCode(raw) ?? reasonCode(`DROP_${raw}`));
    if (code === undefined || code >= REASON_MAX || code === Reason.FORWARD)
      throw new CliError(`unknown drop reason ${JSON.stringify(raw)}`, `reasons: ${Object.keys(Reason).filter((r) => r.startsWith('DROP_')).join(', ')}`, 2);
    out.add(code);
  }
  return out;
}

function parseCount(v: string | boolean | undefined, what: string, dflt: number): number {
  if (v === undefined || v === false) return dflt;
  const n = Number(v);
  if (!/^\d+$/.test(String(v)) || !Number.isSafeInteger(n)) throw new CliError(`--${what} must be a non-negative integer, not ${JSON.stringify(v)}`, undefined, 2);
  return n;
}

function monitorCounters(pinDir: string): { suppressed: bigint; lost: bigint } {
  let suppressed = 0n;
  let lost = 0n;
  for (const r of readStats(pinDir)) {
    if (r.reason === 'MONITOR_SUPPRESSED') suppressed += r.packets;
    if (r.reason === 'MONITOR_LOST') lost += r.packets;
  }
  return { suppressed, lost };
}

async function stream(opts: OptionValues, io: CommandIo): Promise<number> {
  const reasons = typeof opts.reason === 'string' ? parseReasons(opts.reason) : undefined;
  const pod = typeof opts.pod === 'string' ? opts.pod : undefined;
  const max = parseCount(opts.count, 'count', 0);
  const rate = parseCount(opts.rate, 'rate', MONITOR_DEFAULT_RATE);
  const burst = parseCount(opts.burst, 'burst', MONITOR_DEFAULT_BURST);
  const node = typeof opts.node === 'string' && opts.node ? opts.node : opts.netns ? basename(opts.netns) : hostname();
  const pods = new PodTable();
  const healthAddr = typeof opts.healthAddr === 'string' ? opts.healthAddr : Defaults.healthAddr;
  let namesAt = 0;
  // Whether bvcnid answered last time: without it, an unknown IP does not ask again before the periodic refresh.
  let namesServed = false;
  // One request at a time; the periodic refresh runs beside the ring's reads, and ends with the monitor.
  let namesInFlight: Promise<void> | undefined;
  const namesAbort = new AbortController();
  // bvcnid's names: without it (or without --network-policy) the table stays empty and IPs print, no error.
  const loadNames = (): Promise<void> => {
    if (namesInFlight) return namesInFlight;
    namesAt = Date.now();
    if (healthAddr === 'none') return Promise.resolve();
    namesInFlight = (async () => {
      const r = await daemonGet(healthAddr, '/endpoints', opts.netns, namesAbort.signal);
      namesServed = false;
      if ('error' in r || r.status !== 200) return;
      try {
        pods.setNames(parseEndpointNames(r.body));
        namesServed = true;
      } catch {
        // Another bvcnid's answer: keep what was known.
      }
    })().finally(() => (namesInFlight = undefined));
    return namesInFlight;
  };
  const loadPods = (): void => {
    try {
      using m = openEndpointsMap(opts.pinDir);
      pods.load(m.entries());
    } catch {
      // No endpoint map: events still print, with IPs only.
    }
  };

  let monitor: DropMonitor;
  try {
    monitor = DropMonitor.open(opts.pinDir, { rate, burst });
  } catch (e) {
    if (e instanceof MonitorBusy) throw new CliError(e.message, 'stop it first, or read its output');
    if (e instanceof MonitorUnavailable) throw new CliError(e.message, 'bvcnid of this release creates it at start (ABI 2): upgrade or restart bvcnid');
    if (e instanceof RangeError) throw new CliError(e.message, undefined, 2);
    throw e;
  }
  const before = monitorCounters(opts.pinDir);
  let shown = 0;
  let why = '';
  try {
    loadPods();
    await loadNames();
    let podsAt = Date.now();
    let stopReason: string | undefined;
    void io.untilStopped().then((w) => (stopReason = w));
    io.note(`listening for drops on ${node} (${opts.pinDir}): at most ${burst} events at once and ${rate}/s per CPU; ^C to stop`);
    const emit = async (events: TimedDropEvent[]): Promise<boolean> => {
      for (const ev of events) {
        if (reasons && !reasons.has(ev.reason)) continue;
        let line = describeEvent(ev, node, pods);
        // A pod bvcnid has not named to us yet (added since): ask again, at most once a second, and wait for the answer.
        const unnamed = [line.saddr, line.daddr].some((a) => a !== null && pods.isLocal(a) && !pods.named(a));
        if (unnamed && namesServed && Date.now() - namesAt > NAMES_UNKNOWN_MS) {
          await loadNames();
          line = describeEvent(ev, node, pods);
        }
        if (pod && !concerns(line, pod, pods)) continue;
        io.write(opts.json ? `${JSON.stringify(line)}\n` : formatLine(line));
        shown++;
        if (max && shown >= max) return true;
      }
      return false;
    };
    for (;;) {
      if (Date.now() - podsAt > PODS_EVERY_MS) {
        loadPods();
        podsAt = Date.now();
      }
      if (Date.now() - namesAt > NAMES_EVERY_MS) void loadNames();
      if (await emit(monitor.poll())) {
        why = 'count';
        break;
      }
      if (stopReason) {
        // What was submitted before the stop is still shown.
        await emit(monitor.poll());
        why = stopReason;
        break;
      }
      await sleep(POLL_MS);
    }
  } finally {
    namesAbort.abort();
    await namesInFlight;
    monitor.close();
  }
  const after = monitorCounters(opts.pinDir);
  io.note(
    `monitor stopped (${why}): ${shown} events shown; while listening ${after.suppressed - before.suppressed} were suppressed by the rate limit and ${after.lost - before.lost} lost to a full ring buffer`,
  );
  return 0;
}

export const monitor: CommandSpec = {
  name: 'monitor',
  description: 'stream drop events live: time, node, pod, direction, 5-tuple, reason (until ^C)',
  options: [
    { flags: '--pod <pod>', description: 'only drops concerning this pod (NS/NAME where bvcnid names it, or its IP), or with this source or destination (IP or NS/NAME)' },
    { flags: '--reason <reasons>', description: 'only these reasons, comma-separated (DROP_SPOOFED, spoofed, or numbers)' },
    { flags: '--count <n>', description: 'stop after n events' },
    { flags: '--rate <n>', description: `events per second per CPU the programs may emit (token bucket refill; default ${MONITOR_DEFAULT_RATE})` },
    { flags: '--burst <n>', description: `events each CPU may emit at once (bucket depth; default ${MONITOR_DEFAULT_BURST})` },
    { flags: '--health-addr <host:port>', description: "bvcnid's health listener, whose /endpoints names pods and policies ('none': IPs only)", defaultValue: Defaults.healthAddr },
    { flags: '--node <name>', description: 'the node name to print (default: the --netns name, else the host name)' },
  ],
  async run(opts, io) {
    requirePinDir(opts.pinDir);
    if (!io) throw new CliError('bvcnictl monitor streams: it needs a terminal or a pipe');
    return { ...ok(''), exitCode: await stream(opts, io) };
  },
};
