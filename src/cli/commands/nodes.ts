// bvcnictl nodes: the tunnel map decoded (remote podCIDR or node IP -> remote
// node). With --kubeconfig, compared with what the API's Node objects say the
// map must hold (the daemon's own computeDesired), and every difference marked.
import { hostname } from 'node:os';
import { ipv4ToInt } from '../../../loader/codec.js';
import { TunnelFlags } from '../../dataplane/abi.js';
import { openTunnelMap } from '../../dataplane/maps.js';
import { computeDesired, entryKey, type DesiredState, type NodeLike } from '../../kube/desired.js';
import { loadKubeConfig, nodeApi } from '../../kube/client.js';
import { readConfig, requirePinDir } from '../inspect.js';
import { formatTable } from '../../common/table.js';
import { CliError, toJson, type CommandSpec } from '../types.js';

export type NodeRowState = 'ok' | 'stale' | 'wrong-ip' | 'missing' | 'unchecked';

export interface NodeRow {
  prefix: string;
  nodeIp: string;
  kind: 'podCIDR' | 'node IP';
  node: string | null;
  state: NodeRowState;
  /** What the API says, when it differs. */
  expectedNodeIp?: string;
}

/** Nodes from the API server; separate so tests can hand in Node objects. */
export async function listApiNodes(kubeconfig: string | undefined): Promise<NodeLike[]> {
  const via = kubeconfig ?? 'the in-cluster service account';
  try {
    return (await nodeApi(loadKubeConfig(kubeconfig)).list()).items;
  } catch (e) {
    throw new CliError(`cannot list Nodes through ${via}: ${(e as Error).message}`, 'check the kubeconfig and that the API server is reachable');
  }
}

export function compareTunnels(
  actual: { prefix: string; nodeIp: string; flags: number }[],
  desired: DesiredState | undefined,
): NodeRow[] {
  const owner = new Map<string, string>();
  for (const n of desired?.nodes ?? []) owner.set(n.internalIp, n.name);
  const rows: NodeRow[] = actual.map((a) => {
    const kind = a.flags & TunnelFlags.nodeIp ? ('node IP' as const) : ('podCIDR' as const);
    if (!desired) return { prefix: a.prefix, nodeIp: a.nodeIp, kind, node: null, state: 'unchecked' as const };
    const want = desired.entries.get(a.prefix);
    if (!want) return { prefix: a.prefix, nodeIp: a.nodeIp, kind, node: owner.get(a.nodeIp) ?? null, state: 'stale' as const };
    const node = owner.get(want.value.node_ip) ?? null;
    if (want.value.node_ip !== a.nodeIp)
      return { prefix: a.prefix, nodeIp: a.nodeIp, kind, node, state: 'wrong-ip' as const, expectedNodeIp: want.value.node_ip };
    return { prefix: a.prefix, nodeIp: a.nodeIp, kind, node, state: 'ok' as const };
  });
  const present = new Set(actual.map((a) => a.prefix));
  for (const [prefix, e] of desired?.entries ?? []) {
    if (present.has(prefix)) continue;
    rows.push({
      prefix,
      nodeIp: e.value.node_ip,
      kind: e.value.flags & TunnelFlags.nodeIp ? 'node IP' : 'podCIDR',
      node: owner.get(e.value.node_ip) ?? null,
      state: 'missing',
    });
  }
  const addr = (p: string): number => ipv4ToInt(p.split('/')[0]!);
  return rows.sort((a, b) => addr(a.prefix) - addr(b.prefix) || a.prefix.localeCompare(b.prefix));
}

/** This node's name: given, else NODE_NAME, else the Node whose InternalIP is the config's node IP, else the hostname. */
function selfName(given: string | undefined, nodes: NodeLike[], nodeIp: string | undefined): string {
  if (given) return given;
  if (process.env.NODE_NAME) return process.env.NODE_NAME;
  const byIp = nodes.find((n) => n.status?.addresses?.some((a) => a.type === 'InternalIP' && a.address === nodeIp));
  return byIp?.metadata?.name ?? hostname();
}

export function makeNodesCommand(fetchNodes: (kubeconfig: string | undefined) => Promise<NodeLike[]> = listApiNodes): CommandSpec {
  return {
    name: 'nodes',
    description: 'the tunnel map decoded; with --kubeconfig, marked where it disagrees with the API',
    options: [
      { flags: '--kubeconfig <path>', description: 'compare with the Node objects from this API server (in a pod: the in-cluster one by default)' },
      { flags: '--no-api', description: 'do not compare with the API, even in a pod' },
      { flags: '--node-name <name>', description: 'this node (default: NODE_NAME, or the Node owning the node IP)' },
    ],
    async run(opts) {
      requirePinDir(opts.pinDir);
      let actual: { prefix: string; nodeIp: string; flags: number }[];
      try {
        using m = openTunnelMap(opts.pinDir);
        actual = [...m.entries()].map(([k, v]) => ({ prefix: entryKey(k), nodeIp: v.node_ip, flags: Number(v.flags) }));
      } catch (e) {
        throw new CliError(`cannot read the tunnel map in ${opts.pinDir}: ${(e as Error).message}`, 'run bvcnictl doctor');
      }
      let desired: DesiredState | undefined;
      let self: string | undefined;
      // commander's --no-api sets api=false; in a pod the service account is there to use.
      const compare = opts.api !== false && (typeof opts.kubeconfig === 'string' || !!process.env.KUBERNETES_SERVICE_HOST);
      if (compare) {
        const config = readConfig(opts.pinDir);
        const apiNodes = await fetchNodes(opts.kubeconfig as string | undefined);
        self = selfName(opts.nodeName as string | undefined, apiNodes, config?.node_ip);
        const cluster = config ? { addr: ipv4ToInt(config.cluster_cidr), prefix: Number(config.cluster_prefix) } : undefined;
        desired = computeDesired(apiNodes, self, cluster);
      }
      const rows = compareTunnels(actual, desired);
      const disagreements = rows.filter((r) => r.state !== 'ok' && r.state !== 'unchecked').length;
      const exitCode = disagreements ? 1 : 0;
      if (opts.json)
        return {
          output: toJson({
            self: self ?? null,
            compared: !!desired,
            disagreements,
            entries: rows,
            skippedNodes: desired?.skipped ?? [],
          }),
          exitCode,
        };
      let out = formatTable(
        desired ? ['PREFIX', 'NODE IP', 'KIND', 'NODE', 'STATE'] : ['PREFIX', 'NODE IP', 'KIND'],
        rows.map((r) =>
          desired
            ? [
                r.prefix,
                r.nodeIp,
                r.kind,
                r.node ?? '-',
                r.state === 'ok'
                  ? 'ok'
                  : r.state === 'stale'
                    ? 'STALE (no such Node in the API)'
                    : r.state === 'missing'
                      ? 'MISSING (in the API, not in the map)'
                      : `WRONG IP (API says ${r.expectedNodeIp})`,
              ]
            : [r.prefix, r.nodeIp, r.kind],
        ),
      );
      if (desired) {
        for (const s of desired.skipped) out += `skipped Node ${s.name}: ${s.reason} (${s.detail})\n`;
        out += disagreements
          ? `\n${disagreements} entr${disagreements === 1 ? 'y disagrees' : 'ies disagree'} with the API (self: ${self}); bvcnid reconciles on its next event or restart\n`
          : `\nthe tunnel map agrees with the API (self: ${self})\n`;
      }
      return { output: out, exitCode };
    },
  };
}

export const nodes = makeNodesCommand();
