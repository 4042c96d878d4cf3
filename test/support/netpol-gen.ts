// The seeded random cluster states of the policy property tests (compiler ==
// model, incremental == full): namespaces, nodes, pods (some host-network, some
// terminated, with named containerPorts) and NetworkPolicies with every kind of
// selector, peer, ipBlock/except, port, named port and endPort range, as raw API
// objects through the parser, plus probes around every rule's edges.
import {
  parseNamespace,
  parseNetworkPolicy,
  parseNode,
  parsePod,
  type ClusterState,
  type Connection,
} from '../../src/policy/index.js';
import { rng } from './rng.js';

export class Gen {
  constructor(readonly r: () => number) {}
  int(n: number): number {
    return Math.floor(this.r() * n);
  }
  chance(p: number): boolean {
    return this.r() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  some<T>(xs: readonly T[], max = xs.length): T[] {
    if (xs.length === 0) return [];
    const n = this.int(max + 1);
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(this.pick(xs));
    return [...new Set(out)];
  }
}

export const POD_LABELS: Record<string, readonly string[]> = { app: ['web', 'db', 'cache'], tier: ['front', 'back'], v: ['1', '2'] };
export const NS_LABELS: Record<string, readonly string[]> = { team: ['a', 'b'], env: ['prod', 'dev'] };
export const PORTS = [53, 80, 81, 443, 8080, 9090];
export const NAMES = ['http', 'dns', 'metrics'];
export const PROTOS = ['TCP', 'UDP', 'SCTP'] as const;

export function labels(g: Gen, space: Record<string, readonly string[]>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(space)) if (g.chance(0.6)) out[k] = g.pick(space[k]!);
  return out;
}

export function selector(g: Gen, space: Record<string, readonly string[]>): object {
  const s: { matchLabels?: Record<string, string>; matchExpressions?: object[] } = {};
  if (g.chance(0.3)) return s; // {}: everything
  if (g.chance(0.6)) s.matchLabels = Object.fromEntries(g.some(Object.keys(space), 2).map((k) => [k, g.pick(space[k]!)]));
  if (g.chance(0.5)) {
    s.matchExpressions = g.some(Object.keys(space), 2).map((key) => {
      const op = g.pick(['In', 'NotIn', 'Exists', 'DoesNotExist'] as const);
      return op === 'In' || op === 'NotIn' ? { key, operator: op, values: [g.pick(space[key]!), ...g.some(space[key]!, 1)] } : { key, operator: op };
    });
  }
  return s;
}

export function cidrs(g: Gen, podIps: string[], nodeIps: string[]): { cidr: string; except?: string[] } {
  const base = g.pick([
    () => `${g.pick(podIps)}/32`,
    () => '10.244.0.0/16',
    () => `10.244.${g.int(3)}.0/24`,
    () => `10.244.${g.int(3)}.${g.pick([0, 64, 128])}/26`,
    () => '0.0.0.0/0',
    () => '192.168.60.0/24',
    () => `${g.pick(nodeIps)}/32`,
    () => '198.51.100.0/24',
  ])();
  const [addr, len] = base.split('/') as [string, string];
  const prefix = Number(len);
  if (prefix >= 32 || !g.chance(0.5)) return { cidr: base };
  // Excepts strictly inside the block: a pod's /32 that falls in it, or a sub-prefix.
  const inside = podIps.concat(nodeIps).filter((ip) => {
    const toInt = (s: string): number => s.split('.').reduce((a, o) => a * 256 + Number(o), 0);
    const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
    return ((toInt(ip) & mask) >>> 0) === ((toInt(addr) & mask) >>> 0);
  });
  const except = g.some(inside, 2).map((ip) => (g.chance(0.7) ? `${ip}/32` : `${ip.split('.').slice(0, 3).join('.')}.0/${Math.max(prefix + 1, 25)}`));
  const valid = except.filter((e) => Number(e.split('/')[1]) > prefix);
  return valid.length ? { cidr: base, except: [...new Set(valid)] } : { cidr: base };
}

export function ports(g: Gen): object[] | undefined {
  if (g.chance(0.3)) return g.chance(0.5) ? undefined : [];
  return Array.from({ length: 1 + g.int(3) }, () => {
    const p: { protocol?: string; port?: number | string; endPort?: number } = {};
    if (g.chance(0.7)) p.protocol = g.pick(PROTOS);
    const kind = g.int(4);
    if (kind === 1) p.port = g.pick(PORTS);
    else if (kind === 2) p.port = g.pick(NAMES);
    else if (kind === 3) {
      p.port = g.pick(PORTS);
      p.endPort = p.port + g.pick([0, 1, 7, 100, 1000]);
    }
    return p;
  });
}

export function randomState(seed: number): { state: ClusterState; probes: Connection[] } {
  const g = new Gen(rng(seed));
  const nsNames = Array.from({ length: 2 + g.int(3) }, (_, i) => `ns${i}`);
  const namespaces = nsNames.map((n) => parseNamespace({ metadata: { name: n, labels: labels(g, NS_LABELS) } }));
  const nodes = Array.from({ length: 2 + g.int(2) }, (_, i) => ({ name: `n${i}`, ip: `192.168.60.${i + 1}` }));
  const podIps: string[] = [];
  const pods = Array.from({ length: 6 + g.int(14) }, (_, i) => {
    const node = g.int(nodes.length);
    const hostNetwork = g.chance(0.05);
    const ip = hostNetwork ? nodes[node]!.ip : `10.244.${node}.${10 + i}`;
    if (!hostNetwork) podIps.push(ip);
    return parsePod({
      metadata: { name: `p${i}`, namespace: g.pick(nsNames), labels: labels(g, POD_LABELS) },
      spec: {
        nodeName: nodes[node]!.name,
        hostNetwork,
        containers: [{ name: 'c', ports: g.some(NAMES, 3).map((name) => ({ name, containerPort: g.pick(PORTS), protocol: g.pick(PROTOS) })) }],
      },
      status: { phase: g.chance(0.05) ? 'Succeeded' : 'Running', podIP: ip },
    });
  });
  const nodeIps = nodes.map((n) => n.ip);
  const peer = (): object => {
    const k = g.int(4);
    if (k === 0) return { podSelector: selector(g, POD_LABELS) };
    if (k === 1) return { namespaceSelector: selector(g, NS_LABELS) };
    if (k === 2) return { podSelector: selector(g, POD_LABELS), namespaceSelector: selector(g, NS_LABELS) };
    return { ipBlock: cidrs(g, podIps, nodeIps) };
  };
  const rules = (field: 'from' | 'to'): object[] | undefined => {
    if (g.chance(0.15)) return g.chance(0.5) ? undefined : [];
    return Array.from({ length: 1 + g.int(3) }, () => {
      const r: Record<string, unknown> = {};
      if (!g.chance(0.2)) r[field] = g.chance(0.1) ? [] : Array.from({ length: 1 + g.int(3) }, peer);
      const p = ports(g);
      if (p !== undefined) r.ports = p;
      return r;
    });
  };
  const policies = Array.from({ length: 1 + g.int(6) }, (_, i) => {
    const spec: Record<string, unknown> = { podSelector: selector(g, POD_LABELS) };
    const ing = rules('from');
    const eg = rules('to');
    if (ing !== undefined) spec.ingress = ing;
    if (eg !== undefined) spec.egress = eg;
    if (g.chance(0.6)) spec.policyTypes = g.pick([['Ingress'], ['Egress'], ['Ingress', 'Egress']]);
    return parseNetworkPolicy({ metadata: { name: `pol${i}`, namespace: g.pick(nsNames) }, spec });
  });
  const state: ClusterState = {
    namespaces,
    pods,
    policies,
    nodes: nodes.map((n) => parseNode({ metadata: { name: n.name }, status: { addresses: [{ type: 'InternalIP', address: n.ip }] } })),
  };
  const addrs = [...podIps, ...nodeIps, '198.51.100.7', '10.244.9.9', '192.168.60.200'];
  const probePorts = [...new Set(PORTS.flatMap((p) => [p - 1, p, p + 1, p + 7, p + 8, p + 100, p + 1000, p + 1001]))];
  const probes = Array.from({ length: 300 }, () => ({
    src: g.pick(addrs),
    dst: g.pick(addrs),
    protocol: g.pick([6, 17, 132, 1]),
    port: g.chance(0.9) ? g.pick(probePorts) : 1 + g.int(65535),
  }));
  return { state, probes };
}

