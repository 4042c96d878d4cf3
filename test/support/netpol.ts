// The upstream NetworkPolicy e2e model (kubernetes/kubernetes test/e2e/network/netpol):
// namespaces x, y, z, each with pods a, b, c labelled pod=<name>, every pod serving
// ports 80 and 81 on TCP, UDP and SCTP (containerPorts named serve-<port>-<proto>),
// spread over two nodes so peers are both local and remote. The conformance cases
// in test/fixtures/netpol are data over this model; this module loads them,
// applies their steps to a cluster state and expands their expectations into the
// whole 9x9 truth table. The model runs them in unit tests; the dataplane can run
// the same data in the simulator.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  parseNamespace,
  parseNetworkPolicy,
  parseNode,
  parsePod,
  PROTO_NUMBER,
  type ClusterState,
  type Namespace,
  type NetworkPolicy,
  type Pod,
  type Protocol,
} from '../../src/policy/index.js';
import type { KubeObject } from '../../src/sim/kube-resources.js';

export const NAMESPACES = ['x', 'y', 'z'] as const;
export const POD_NAMES = ['a', 'b', 'c'] as const;
export const SERVED_PORTS = [80, 81] as const;
export const SERVED_PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];
export const NODES = [
  { name: 'netpol-n1', ip: '192.168.50.11', podCidr: '10.244.1.0/24' },
  { name: 'netpol-n2', ip: '192.168.50.12', podCidr: '10.244.2.0/24' },
] as const;

/** "x/a" for every pod of the model, in the truth table's order. */
export const ALL_PODS: readonly string[] = NAMESPACES.flatMap((ns) => POD_NAMES.map((p) => `${ns}/${p}`));

/** Pods alternate between the two nodes: x/a n1, x/b n2, x/c n1, y/a n2, … */
export function placement(pod: string): { node: (typeof NODES)[number]; ip: string } {
  const i = ALL_PODS.indexOf(pod);
  if (i < 0) throw new Error(`no pod ${pod} in the model`);
  const node = NODES[i % 2]!;
  const base = node.podCidr.split('.').slice(0, 3).join('.');
  return { node, ip: `${base}.${10 + i}` };
}

export function podIp(pod: string): string {
  return placement(pod).ip;
}

/** A node of a cluster the model runs on: the unit tests' NODES, or a simulated cluster's nodes. */
export interface ModelNode {
  readonly name: string;
  readonly ip: string;
  readonly podCidr: string;
}

/** Where each pod of the model is, and its address: fixed for the unit tests, the plugin's choice in the simulator. */
export interface Placement {
  readonly nodes: readonly ModelNode[];
  where(pod: string): { node: ModelNode; ip: string };
}

export const MODEL_PLACEMENT: Placement = { nodes: NODES, where: placement };

export function rawNamespace(ns: string, extra: Record<string, string> = {}): KubeObject {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: { ...extra, 'kubernetes.io/metadata.name': ns } } };
}

export function rawPod(pod: string, labels?: Record<string, string>, at: { node: ModelNode; ip: string } = placement(pod)): KubeObject {
  const [ns, name] = pod.split('/') as [string, string];
  const { node, ip } = at;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, labels: labels ?? { pod: name } },
    spec: {
      nodeName: node.name,
      containers: SERVED_PORTS.flatMap((port) =>
        SERVED_PROTOCOLS.map((proto) => ({
          name: `cont-${port}-${proto.toLowerCase()}`,
          image: 'registry.k8s.io/e2e-test-images/agnhost:2.53',
          ports: [{ containerPort: port, name: `serve-${port}-${proto.toLowerCase()}`, protocol: proto }],
        })),
      ),
    },
    status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] },
  };
}

export function rawNode(n: ModelNode): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: n.name },
    spec: { podCIDR: n.podCidr },
    status: { addresses: [{ type: 'InternalIP', address: n.ip }] },
  };
}

/** A mutable cluster state the steps of a case change. */
export class ModelCluster {
  namespaces = new Map<string, Namespace>();
  pods = new Map<string, Pod>();
  policies = new Map<string, NetworkPolicy>();

  constructor(readonly placement: Placement = MODEL_PLACEMENT) {
    for (const ns of NAMESPACES) this.namespaces.set(ns, parseNamespace(rawNamespace(ns)));
    for (const p of ALL_PODS) this.pods.set(p, parsePod(rawPod(p, undefined, placement.where(p))));
  }

  state(): ClusterState {
    return {
      namespaces: [...this.namespaces.values()],
      pods: [...this.pods.values()],
      policies: [...this.policies.values()],
      nodes: this.placement.nodes.map((n) => parseNode(rawNode(n))),
    };
  }

  /** A fixture object with "{{x/a}}" replaced by the pod's address in this cluster. */
  substitute(v: unknown): unknown {
    return substitute(v, (p) => this.placement.where(p).ip);
  }

  apply(action: Action): void {
    if ('create' in action || 'update' in action) {
      const raw = this.substitute('create' in action ? action.create : action.update);
      const pol = parseNetworkPolicy({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', ...(raw as object) });
      const key = `${pol.namespace}/${pol.name}`;
      if ('create' in action && this.policies.has(key)) throw new Error(`policy ${key} exists already`);
      if ('update' in action && !this.policies.has(key)) throw new Error(`policy ${key} does not exist`);
      this.policies.set(key, pol);
    } else if ('delete' in action) {
      if (!this.policies.delete(action.delete)) throw new Error(`policy ${action.delete} does not exist`);
    } else if ('deleteAllPolicies' in action) {
      this.policies.clear();
    } else if ('labelNamespace' in action) {
      const old = this.namespaces.get(action.labelNamespace);
      if (!old) throw new Error(`no namespace ${action.labelNamespace}`);
      this.namespaces.set(old.name, parseNamespace(rawNamespace(old.name, { ...old.labels, ...action.labels })));
    } else if ('labelPod' in action) {
      const old = this.pods.get(action.labelPod);
      if (!old) throw new Error(`no pod ${action.labelPod}`);
      this.pods.set(action.labelPod, parsePod(rawPod(action.labelPod, { ...old.labels, ...action.labels }, this.placement.where(action.labelPod))));
    } else {
      throw new Error(`unknown action ${JSON.stringify(action)}`);
    }
  }
}

export type Action =
  | { create: unknown }
  | { update: unknown }
  | { delete: string }
  | { deleteAllPolicies: true }
  | { labelNamespace: string; labels: Record<string, string> }
  | { labelPod: string; labels: Record<string, string> };

export interface Probe {
  protocol: Protocol;
  port: number;
  /** "FROM -> TO allow|deny", applied in order over an all-allowed table; FROM/TO: *, ns or ns/pod. */
  expect: string[];
}

export interface Step {
  apply: Action[];
  probes: Probe[];
}

export interface ConformanceCase {
  name: string;
  steps: Step[];
}

export interface Suite {
  suite: string;
  cases: ConformanceCase[];
  file: string;
}

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'netpol');

export function loadSuites(): Suite[] {
  return ['tcp.json', 'udp.json', 'sctp.json'].map((f) => ({ ...(JSON.parse(readFileSync(join(FIXTURES, f), 'utf8')) as Omit<Suite, 'file'>), file: f }));
}

export function loadFixture<T>(name: string): T {
  return JSON.parse(readFileSync(join(FIXTURES, name), 'utf8')) as T;
}

/** Replaces "{{x/a}}" with that pod's address (the model's placement unless told), anywhere in a fixture object. */
export function substitute(v: unknown, ipOf: (pod: string) => string = podIp): unknown {
  if (typeof v === 'string') return v.replace(/\{\{([xyz]\/[abc])\}\}/g, (_, p: string) => ipOf(p));
  if (Array.isArray(v)) return v.map((x) => substitute(x, ipOf));
  if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, substitute(x, ipOf)]));
  return v;
}

function selects(spec: string, pod: string): boolean {
  if (spec === '*') return true;
  return spec.includes('/') ? spec === pod : pod.startsWith(`${spec}/`);
}

/** The whole truth table a probe's expectations describe: "from>to" -> allowed. */
export function expandExpect(expect: readonly string[]): Map<string, boolean> {
  const table = new Map<string, boolean>();
  for (const from of ALL_PODS) for (const to of ALL_PODS) table.set(`${from}>${to}`, true);
  for (const line of expect) {
    const m = /^(\S+) -> (\S+) (allow|deny)$/.exec(line);
    if (!m) throw new Error(`bad expectation ${JSON.stringify(line)}`);
    const [, fromSpec, toSpec, verdict] = m as unknown as [string, string, string, string];
    let hit = 0;
    for (const from of ALL_PODS)
      for (const to of ALL_PODS)
        if (selects(fromSpec, from) && selects(toSpec, to)) {
          table.set(`${from}>${to}`, verdict === 'allow');
          hit++;
        }
    if (hit === 0) throw new Error(`expectation ${JSON.stringify(line)} selects no pair`);
  }
  return table;
}

/** The truth table as upstream prints it (X: blocked, .: allowed), for failure messages. */
export function formatTable(table: ReadonlyMap<string, boolean>, mark?: ReadonlyMap<string, boolean>): string {
  const rows = ['-\t' + ALL_PODS.join('\t')];
  for (const from of ALL_PODS) {
    const cells = ALL_PODS.map((to) => {
      const k = `${from}>${to}`;
      const c = table.get(k) ? '.' : 'X';
      return mark && mark.get(k) !== table.get(k) ? `*${c}*` : c;
    });
    rows.push(`${from}\t${cells.join('\t')}`);
  }
  return rows.join('\n');
}

export function protoNumber(p: Protocol): number {
  return PROTO_NUMBER[p];
}
