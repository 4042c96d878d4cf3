// bvcnictl nat: the masquerade table decoded. Each flow is held twice (the
// pod's outgoing tuple and the reply tuple at the uplink); they are paired
// here into one row per flow.
import { ipv4ToInt } from '../../../loader/codec.js';
import { IPPROTO, NatDir, NatTcpState, natTimeout, type NatEntry, type NatKey } from '../../dataplane/abi.js';
import { openNatMap } from '../../dataplane/maps.js';
import { requirePinDir } from '../inspect.js';
import { formatTable } from '../../common/table.js';
import { CliError, ok, toJson, type CommandSpec } from '../types.js';

export interface NatFlow {
  proto: string;
  podIp: string;
  podPort: number;
  remoteIp: string;
  remotePort: number;
  natIp: string;
  natPort: number;
  tcpState: string;
  ageSeconds: number;
  idleSeconds: number;
  /** Idle longer than its timeout: the programs treat it as gone. */
  stale: boolean;
  /** Which halves exist (a healthy flow has both). */
  halves: 'both' | 'egress-only' | 'ingress-only';
}

const PROTO_NAME: Record<number, string> = { [IPPROTO.TCP]: 'tcp', [IPPROTO.UDP]: 'udp', [IPPROTO.ICMP]: 'icmp' };
const STATE_NAME = Object.fromEntries(Object.entries(NatTcpState).map(([k, v]) => [v, k.toLowerCase()])) as Record<number, string>;

const tupleId = (k: Omit<NatKey, 'dir'>): string => `${k.proto}|${k.saddr}|${k.sport}|${k.daddr}|${k.dport}`;

export function pairNatEntries(entries: Iterable<[NatKey, NatEntry]>, nowNs: bigint): NatFlow[] {
  const ingress = new Map<string, NatEntry>();
  const egress: [NatKey, NatEntry][] = [];
  for (const [k, v] of entries) {
    if (k.dir === NatDir.ingress) ingress.set(tupleId(k), v);
    else egress.push([k, v]);
  }
  const secs = (ns: bigint): number => Number(ns < 0n ? 0n : ns / 1_000_000n) / 1000;
  const flows: NatFlow[] = [];
  const used = new Set<string>();
  for (const [k, v] of egress) {
    const replyId = tupleId({ proto: k.proto, saddr: k.daddr, sport: k.dport, daddr: v.to_addr, dport: v.to_port });
    const reply = ingress.get(replyId);
    if (reply) used.add(replyId);
    const state = reply?.tcp_state ?? v.tcp_state;
    const lastSeen = reply && reply.last_seen_ns > v.last_seen_ns ? reply.last_seen_ns : v.last_seen_ns;
    const idle = nowNs - lastSeen;
    flows.push({
      proto: PROTO_NAME[k.proto] ?? String(k.proto),
      podIp: k.saddr,
      podPort: k.sport,
      remoteIp: k.daddr,
      remotePort: k.dport,
      natIp: v.to_addr,
      natPort: v.to_port,
      tcpState: k.proto === IPPROTO.TCP ? (STATE_NAME[state] ?? String(state)) : '-',
      ageSeconds: secs(nowNs - v.created_ns),
      idleSeconds: secs(idle),
      stale: idle > natTimeout(k.proto, state),
      halves: reply ? 'both' : 'egress-only',
    });
  }
  for (const [id, v] of ingress) {
    if (used.has(id)) continue;
    const [proto, saddr, sport, daddr, dport] = id.split('|');
    const p = Number(proto);
    const idle = nowNs - v.last_seen_ns;
    flows.push({
      proto: PROTO_NAME[p] ?? String(p),
      podIp: v.to_addr,
      podPort: v.to_port,
      remoteIp: saddr!,
      remotePort: Number(sport),
      natIp: daddr!,
      natPort: Number(dport),
      tcpState: p === IPPROTO.TCP ? (STATE_NAME[v.tcp_state] ?? String(v.tcp_state)) : '-',
      ageSeconds: secs(nowNs - v.created_ns),
      idleSeconds: secs(idle),
      stale: idle > natTimeout(p, v.tcp_state),
      halves: 'ingress-only',
    });
  }
  return flows.sort(
    (a, b) => ipv4ToInt(a.podIp) - ipv4ToInt(b.podIp) || a.podPort - b.podPort || a.proto.localeCompare(b.proto),
  );
}

export const nat: CommandSpec = {
  name: 'nat',
  description: 'the masquerade table decoded, one row per flow (filter with --pod)',
  options: [
    { flags: '--pod <ip>', description: 'only flows of this pod IP' },
    { flags: '--include-stale', description: 'also show entries idle beyond their timeout', defaultValue: false },
  ],
  async run(opts) {
    const pod = opts.pod as string | undefined;
    if (pod !== undefined) {
      try {
        ipv4ToInt(pod);
      } catch {
        throw new CliError(`--pod: ${JSON.stringify(pod)} is not an IPv4 address`);
      }
    }
    requirePinDir(opts.pinDir);
    let flows: NatFlow[];
    try {
      using m = openNatMap(opts.pinDir);
      // bpf_ktime_get_ns and process.hrtime both read CLOCK_MONOTONIC.
      flows = pairNatEntries(m.entries(), process.hrtime.bigint());
    } catch (e) {
      throw new CliError(`cannot read the NAT map in ${opts.pinDir}: ${(e as Error).message}`, 'run bvcnictl doctor');
    }
    if (pod) flows = flows.filter((f) => f.podIp === pod);
    const staleCount = flows.filter((f) => f.stale).length;
    if (!opts.includeStale) flows = flows.filter((f) => !f.stale);
    if (opts.json) return ok(toJson({ flows, hiddenStale: opts.includeStale ? 0 : staleCount }));
    let out = formatTable(
      ['PROTO', 'POD', 'REMOTE', 'NAT', 'STATE', 'AGE', 'IDLE', 'HALVES'],
      flows.map((f) => [
        f.proto,
        `${f.podIp}:${f.podPort}`,
        `${f.remoteIp}:${f.remotePort}`,
        `${f.natIp}:${f.natPort}`,
        f.stale ? `${f.tcpState} (stale)` : f.tcpState,
        `${f.ageSeconds.toFixed(1)}s`,
        `${f.idleSeconds.toFixed(1)}s`,
        f.halves,
      ]),
    );
    out += `\n${flows.length} flow${flows.length === 1 ? '' : 's'}`;
    if (!opts.includeStale && staleCount) out += ` (${staleCount} stale hidden; --include-stale shows them)`;
    return ok(out + '\n');
  },
};
