// From Node objects to the tunnel map this node must hold. Pure: no I/O, so
// every rule about which Node is usable is unit-tested here.
import { intToIpv4 } from '../../loader/codec.js';
import { TunnelFlags, type TunnelKey, type TunnelValue } from '../dataplane/abi.js';
import { cidrContains, CidrError, formatCidr, isIpv4, parseCidr, type Cidr } from '../common/cidr.js';

/** The few fields of a Node the daemon reads (structurally compatible with client-node's V1Node). */
export interface NodeLike {
  metadata?: { name?: string; creationTimestamp?: Date | string; resourceVersion?: string };
  spec?: { podCIDR?: string; podCIDRs?: string[] };
  status?: { addresses?: { type: string; address: string }[] };
}

export const SkipReason = {
  noPodCidr: 'no_podcidr',
  invalidPodCidr: 'invalid_podcidr',
  ipv6Only: 'ipv6_only',
  noInternalIp: 'no_internal_ip',
  overlappingPodCidr: 'overlapping_podcidr',
  outsideClusterCidr: 'outside_cluster_cidr',
  duplicateInternalIp: 'duplicate_internal_ip',
} as const;
export type SkipReason = (typeof SkipReason)[keyof typeof SkipReason];

export interface ParsedNode {
  name: string;
  podCidr: Cidr;
  internalIp: string;
}

export type NodeParse = { ok: true; node: ParsedNode } | { ok: false; name: string; reason: SkipReason; detail: string };

/** Reads one Node: its IPv4 podCIDR and its IPv4 InternalIP. */
export function parseNode(n: NodeLike): NodeParse {
  const name = n.metadata?.name ?? '';
  const texts = n.spec?.podCIDRs?.length ? n.spec.podCIDRs : n.spec?.podCIDR ? [n.spec.podCIDR] : [];
  if (texts.length === 0) return { ok: false, name, reason: SkipReason.noPodCidr, detail: 'no spec.podCIDR(s) assigned' };
  let podCidr: Cidr | undefined;
  let sawV6 = false;
  const errors: string[] = [];
  for (const t of texts) {
    try {
      podCidr = parseCidr(String(t), { strict: true });
      break;
    } catch (e) {
      if (!(e instanceof CidrError)) throw e;
      if (e.ipv6) sawV6 = true;
      else errors.push(e.message);
    }
  }
  if (!podCidr) {
    if (errors.length) return { ok: false, name, reason: SkipReason.invalidPodCidr, detail: errors.join('; ') };
    if (sawV6) return { ok: false, name, reason: SkipReason.ipv6Only, detail: `podCIDRs ${texts.join(',')} are IPv6 only` };
  }
  const internal = (n.status?.addresses ?? []).filter((a) => a.type === 'InternalIP').map((a) => a.address);
  const v4 = internal.find((a) => isIpv4(a));
  if (!podCidr) return { ok: false, name, reason: SkipReason.invalidPodCidr, detail: 'no usable podCIDR' };
  if (!v4) {
    if (internal.some((a) => a.includes(':')))
      return { ok: false, name, reason: SkipReason.ipv6Only, detail: `InternalIP ${internal.join(',')} is IPv6 only` };
    return { ok: false, name, reason: SkipReason.noInternalIp, detail: 'no InternalIP address' };
  }
  return { ok: true, node: { name, podCidr, internalIp: v4 } };
}

export interface TunnelEntry {
  key: TunnelKey;
  value: TunnelValue;
}

export interface Skipped {
  name: string;
  reason: SkipReason;
  detail: string;
}

export interface DesiredState {
  /** Keyed by "a.b.c.d/len". */
  entries: Map<string, TunnelEntry>;
  /** Other nodes that made it into the map. */
  nodes: ParsedNode[];
  skipped: Skipped[];
  /** This node, parsed, when usable. */
  self?: ParsedNode;
  selfProblem?: Skipped;
}

export function entryKey(k: TunnelKey): string {
  return `${k.addr}/${k.prefixlen}`;
}

function creationOrder(n: NodeLike): number {
  const t = n.metadata?.creationTimestamp;
  const ms = t instanceof Date ? t.getTime() : t ? Date.parse(t) : NaN;
  return Number.isFinite(ms) ? ms : Number.MAX_SAFE_INTEGER;
}

/**
 * Whether two versions of a Node give computeDesired the same input: its
 * parse (name, podCIDR, InternalIP, or why it is skipped) and its creation
 * time. A kubelet's status updates change neither, and with 5,000 Nodes each
 * one would otherwise cost a whole reconcile.
 */
export function sameTunnelInputs(a: NodeLike, b: NodeLike): boolean {
  return creationOrder(a) === creationOrder(b) && JSON.stringify(parseNode(a)) === JSON.stringify(parseNode(b));
}

/**
 * The tunnel map for node `self`: for every other usable node, its podCIDR and
 * its own InternalIP/32 (flagged, for node ↔ pod traffic through the overlay)
 * → its InternalIP. When podCIDRs overlap (or two nodes claim one IP), the
 * older Node keeps its entries and the newer one is skipped, so an error in a
 * new Node can never take traffic away from an existing one; this node's own
 * podCIDR always wins.
 */
export function computeDesired(all: Iterable<NodeLike>, selfName: string, clusterCidr?: Cidr): DesiredState {
  const skipped: Skipped[] = [];
  let self: ParsedNode | undefined;
  let selfProblem: Skipped | undefined;
  const candidates: { order: number; node: ParsedNode }[] = [];
  for (const n of all) {
    const p = parseNode(n);
    const name = n.metadata?.name ?? '';
    if (name === selfName) {
      if (p.ok) self = p.node;
      else selfProblem = { name, reason: p.reason, detail: p.detail };
      continue;
    }
    if (!p.ok) {
      skipped.push({ name, reason: p.reason, detail: p.detail });
      continue;
    }
    if (clusterCidr && !cidrContains(clusterCidr, p.node.podCidr)) {
      skipped.push({
        name,
        reason: SkipReason.outsideClusterCidr,
        detail: `podCIDR ${formatCidr(p.node.podCidr)} is outside the cluster CIDR ${formatCidr(clusterCidr)}`,
      });
      continue;
    }
    candidates.push({ order: creationOrder(n), node: p.node });
  }
  candidates.sort((a, b) => a.order - b.order || (a.node.name < b.node.name ? -1 : a.node.name > b.node.name ? 1 : 0));

  // Overlap test in O(33) per node: `claimed[p]` holds the accepted CIDRs of
  // prefix length p, `covered[p]` every strict supernet of length p of an
  // accepted CIDR, each keyed by the network bits alone (a small integer for
  // p ≤ 30). The test allocates nothing: with a CIDR object and a boxed key per
  // supernet, every reconcile of 5,000 nodes churned through 500,000 objects.
  const claimed: Map<number, string>[] = [];
  const covered: Map<number, string>[] = [];
  for (let p = 0; p <= 32; p++) {
    claimed.push(new Map());
    covered.push(new Map());
  }
  const bits = (addr: number, p: number): number => (p === 0 ? 0 : addr >>> (32 - p));
  const claim = (c: Cidr, owner: string): void => {
    claimed[c.prefix]!.set(bits(c.addr, c.prefix), owner);
    for (let p = 0; p < c.prefix; p++) covered[p]!.set(bits(c.addr, p), owner);
  };
  const conflict = (c: Cidr): string | undefined => {
    const k = covered[c.prefix]!.get(bits(c.addr, c.prefix));
    if (k !== undefined) return k;
    for (let p = 0; p <= c.prefix; p++) {
      const o = claimed[p]!.get(bits(c.addr, p));
      if (o !== undefined) return o;
    }
    return undefined;
  };
  const ips = new Map<string, string>();
  if (self) {
    claim(self.podCidr, self.name);
    ips.set(self.internalIp, self.name);
  }
  const entries = new Map<string, TunnelEntry>();
  const nodes: ParsedNode[] = [];
  for (const { node } of candidates) {
    const other = conflict(node.podCidr);
    if (other !== undefined) {
      skipped.push({
        name: node.name,
        reason: SkipReason.overlappingPodCidr,
        detail: `podCIDR ${formatCidr(node.podCidr)} overlaps node ${other}'s`,
      });
      continue;
    }
    const ipOwner = ips.get(node.internalIp);
    if (ipOwner !== undefined) {
      skipped.push({
        name: node.name,
        reason: SkipReason.duplicateInternalIp,
        detail: `InternalIP ${node.internalIp} is also node ${ipOwner}'s`,
      });
      continue;
    }
    claim(node.podCidr, node.name);
    ips.set(node.internalIp, node.name);
    nodes.push(node);
    const cidrEntry: TunnelEntry = {
      key: { prefixlen: node.podCidr.prefix, addr: intToIpv4(node.podCidr.addr) },
      value: { node_ip: node.internalIp, flags: 0 },
    };
    entries.set(entryKey(cidrEntry.key), cidrEntry);
  }
  // Node /32s go in after all podCIDRs so that a podCIDR never loses to a /32 of the same key.
  for (const node of nodes) {
    const ipEntry: TunnelEntry = {
      key: { prefixlen: 32, addr: node.internalIp },
      value: { node_ip: node.internalIp, flags: TunnelFlags.nodeIp },
    };
    const k = entryKey(ipEntry.key);
    if (!entries.has(k)) entries.set(k, ipEntry);
  }
  return { entries, nodes, skipped, self, selfProblem };
}
