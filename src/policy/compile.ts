// The compiler: from the cluster state to what one node's dataplane needs to
// decide a connection with a few map lookups (design and reasons: README.md).
//
//   ipcache     LPM: address/prefix -> identity           (one per node; all but the
//                                                           local host entry are the same everywhere)
//   endpoints   per local pod, per direction: isolated?, and a set of allow entries
//               (peer identity | ANY, protocol | ANY, port prefix)
//
// An identity is an equivalence class of addresses that no policy in the state
// can tell apart: same kind (pod, this node, other address), same namespace and
// labels, same longest ipBlock prefix containing the address ("CIDR class"),
// and the same resolution of every named port an egress rule uses. Pods of one
// Deployment share an identity; a pod an ipBlock singles out gets its own.
import { cidrContains, formatCidr, maskOf, type Cidr } from '../common/cidr.js';
import { ipv4ToInt } from '../../loader/codec.js';
import { isEndpoint, podPeerMatches, StateIndex } from './model.js';
import { matches } from './selector.js';
import { PROTO_NUMBER, type ClusterState, type Connection, type Direction, type IpBlock, type Labels, type NetworkPolicy, type Peer, type Pod, type Protocol } from './types.js';

/** Reserved identities (Cilium numbers them the same way). */
export const ID_ANY = 0;
export const ID_HOST = 1;
export const ID_WORLD = 2;
export const FIRST_ALLOCATED_ID = 256;
/** Protocol 0 in an entry: every protocol (a rule without ports). */
export const PROTO_ANY = 0;

export type IdentityKind = 'pod' | 'host' | 'cidr' | 'world';

export interface Identity {
  readonly id: number;
  readonly kind: IdentityKind;
  /** Pods only. */
  readonly namespace: string | null;
  readonly labels: Labels;
  /** The longest ipBlock prefix (of any policy) containing the class's addresses. */
  readonly cidrClass: Cidr | null;
  /** Pods only: `name/PROTO` -> ports, for the names egress rules use. */
  readonly namedPorts: ReadonlyMap<string, readonly number[]>;
}

export interface PolicyEntry {
  /** ID_ANY: every peer. */
  readonly peer: number;
  /** PROTO_ANY: every protocol (and then port/portPrefix are 0). */
  readonly proto: number;
  /** Host order; only the top `portPrefix` bits count. */
  readonly port: number;
  /** 0..16 */
  readonly portPrefix: number;
}

export interface DirectionTable {
  readonly isolated: boolean;
  /** Sorted, unique. */
  readonly entries: readonly PolicyEntry[];
}

export interface EndpointPolicy {
  readonly ip: string;
  readonly namespace: string;
  readonly name: string;
  readonly identity: number;
  readonly ingress: DirectionTable;
  readonly egress: DirectionTable;
}

export interface IpCacheEntry {
  readonly cidr: Cidr;
  readonly identity: number;
}

export interface CompiledNode {
  readonly node: string;
  readonly identities: ReadonlyMap<number, Identity>;
  /** Sorted by prefix length, longest first, then address. */
  readonly ipcache: readonly IpCacheEntry[];
  /** By pod IP. */
  readonly endpoints: ReadonlyMap<string, EndpointPolicy>;
}

/**
 * Numbers identities by their defining key and keeps them across compilations,
 * so a recompile after a change renumbers nothing and the maps change only
 * where the policy did.
 */
export class IdentityAllocator {
  private readonly byKey = new Map<string, number>();
  private readonly used = new Set<number>();
  /** Numbers held back for seed() (the pinned ones), never handed out by idFor. */
  private readonly reserved = new Set<number>();
  private next = FIRST_ALLOCATED_ID;
  idFor(key: string): number {
    let id = this.byKey.get(key);
    if (id === undefined) {
      while (this.used.has(this.next) || this.reserved.has(this.next)) this.next++;
      id = this.next++;
      this.byKey.set(key, id);
      this.used.add(id);
    }
    return id;
  }
  /**
   * Gives `key` the number `id` if neither is taken yet (a restarted bvcnid
   * takes back the numbers the pinned ipcache holds, so no entry churns).
   */
  seed(key: string, id: number): boolean {
    if (id < FIRST_ALLOCATED_ID || this.byKey.has(key) || this.used.has(id)) return false;
    this.byKey.set(key, id);
    this.used.add(id);
    this.reserved.delete(id);
    return true;
  }
  /** Keeps numbers for seed() only: a fresh key never takes a number a pinned entry still carries. */
  reserve(ids: Iterable<number>): void {
    for (const id of ids) if (id >= FIRST_ALLOCATED_ID && !this.used.has(id)) this.reserved.add(id);
  }
  /** The number `key` has, without allocating one. */
  peek(key: string): number | undefined {
    return this.byKey.get(key);
  }
  /** An independent copy (the property test compiles from scratch with the same numbering). */
  clone(): IdentityAllocator {
    const c = new IdentityAllocator();
    for (const [k, v] of this.byKey) c.byKey.set(k, v);
    for (const v of this.used) c.used.add(v);
    for (const v of this.reserved) c.reserved.add(v);
    c.next = this.next;
    return c;
  }
  get size(): number {
    return this.byKey.size;
  }
}

/** Splits [from, to] into the fewest aligned prefix blocks (what an LPM on the port can hold). */
export function portRangeToPrefixes(from: number, to: number): { port: number; prefix: number }[] {
  const out: { port: number; prefix: number }[] = [];
  let lo = from;
  while (lo <= to) {
    let size = 1;
    let bits = 0;
    // Grow the block while it stays aligned at lo and inside the range.
    while (bits < 16 && lo % (size * 2) === 0 && lo + size * 2 - 1 <= to) {
      size *= 2;
      bits++;
    }
    out.push({ port: lo, prefix: 16 - bits });
    lo += size;
  }
  return out;
}

function cidrKey(c: Cidr): string {
  return formatCidr(c);
}

/** Longest-prefix lookups over a set of prefixes, by length (at most 33 probes). */
class PrefixSet<V> {
  private readonly byLen = new Map<number, Map<number, V>>();
  private lens: number[] = [];
  set(c: Cidr, v: V): void {
    let m = this.byLen.get(c.prefix);
    if (!m) {
      m = new Map();
      this.byLen.set(c.prefix, m);
      this.lens = [...this.byLen.keys()].sort((a, b) => b - a);
    }
    m.set(c.addr, v);
  }
  lookup(ip: number): { cidr: Cidr; value: V } | null {
    for (const len of this.lens) {
      const addr = (ip & maskOf(len)) >>> 0;
      const v = this.byLen.get(len)!.get(addr);
      if (v !== undefined) return { cidr: { addr, prefix: len }, value: v };
    }
    return null;
  }
  entries(): { cidr: Cidr; value: V }[] {
    const out: { cidr: Cidr; value: V }[] = [];
    for (const len of this.lens) for (const [addr, value] of this.byLen.get(len)!) out.push({ cidr: { addr, prefix: len }, value });
    return out.sort((a, b) => b.cidr.prefix - a.cidr.prefix || a.cidr.addr - b.cidr.addr);
  }
}

export function blockSelectsClass(block: IpBlock, cls: Cidr | null): boolean {
  if (cls === null || block.cidr === null) return false;
  // The class prefix lies inside every ipBlock prefix that contains the address and
  // inside none that does not, so containment of the class decides the block.
  return cidrContains(block.cidr, cls) && !block.except.some((e) => cidrContains(e, cls));
}

/** Parsed objects keep their labels object across compilations: its canonical text is computed once. */
const labelKeys = new WeakMap<Labels, string>();
function labelKey(l: Labels): string {
  let k = labelKeys.get(l);
  if (k === undefined) {
    k = JSON.stringify(Object.entries(l).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    labelKeys.set(l, k);
  }
  return k;
}

const namedKey = (name: string, proto: Protocol): string => `${name}/${proto}`;

export function entryKey(e: PolicyEntry): string {
  return `${e.peer}:${e.proto}:${e.port}/${e.portPrefix}`;
}

function compareEntries(a: PolicyEntry, b: PolicyEntry): number {
  return a.peer - b.peer || a.proto - b.proto || a.port - b.port || a.portPrefix - b.portPrefix;
}

/** What a policy adds to the compilation's global inputs: its ipBlock prefixes (cidr and except) and the named ports its egress rules use. */
export function policyInputs(
  pol: NetworkPolicy,
  prefix: (c: Cidr) => void,
  egressName: (key: string, v: { name: string; proto: Protocol }) => void,
): void {
  for (const [dir, rules] of [['ingress', pol.ingress], ['egress', pol.egress]] as const) {
    for (const r of rules) {
      for (const p of r.peers ?? []) {
        if (p.kind !== 'ipBlock' || p.block.cidr === null) continue;
        prefix(p.block.cidr);
        for (const e of p.block.except) prefix(e);
      }
      if (dir === 'egress')
        for (const pr of r.ports ?? []) if (typeof pr.port === 'string') egressName(namedKey(pr.port, pr.protocol), { name: pr.port, proto: pr.protocol });
    }
  }
}

/** A pod's identity key (what the allocator numbers) and the named ports it carries, given its CIDR class and the egress rules' names (sorted). */
export function podIdentityKey(
  pod: Pod,
  cls: Cidr | null,
  names: readonly string[],
  egressNames: ReadonlyMap<string, { name: string; proto: Protocol }>,
): { key: string; namedPorts: Map<string, number[]> } {
  const namedPorts = new Map<string, number[]>();
  for (const k of names) {
    const { name, proto } = egressNames.get(k)!;
    const ports = pod.containerPorts.filter((cp) => cp.name === name && cp.protocol === proto).map((cp) => cp.port);
    if (ports.length) namedPorts.set(k, [...new Set(ports)].sort((a, b) => a - b));
  }
  const key = `pod|${pod.namespace}|${labelKey(pod.labels)}|${cls ? cidrKey(cls) : ''}|${namedPorts.size ? JSON.stringify([...namedPorts]) : ''}`;
  return { key, namedPorts };
}

export const hostIdentityKey = (cls: Cidr): string => `host|${cidrKey(cls)}`;
export const cidrIdentityKey = (cls: Cidr): string => `cidr|${cidrKey(cls)}`;

/** Whether a peer of a policy in `policyNs` selects an identity (the one rule both compilers use). */
export function peerSelects(peer: Peer, policyNs: string, i: Identity, namespaceLabels: (ns: string) => Labels): boolean {
  if (peer.kind === 'ipBlock') return blockSelectsClass(peer.block, i.cidrClass);
  return i.kind === 'pod' && podPeerMatches(peer, policyNs, i.namespace!, i.labels, namespaceLabels(i.namespace!));
}

export interface TableInputs {
  /** The policies isolating the pod in a direction. */
  policiesFor(pod: Pod, dir: Direction): readonly NetworkPolicy[];
  /** This node's own identities (allowed into every ingress-isolated endpoint). */
  readonly hostIds: Iterable<number>;
  /** The identities a peer of a policy in `policyNs` selects. */
  selected(peer: Peer, policyNs: string): Iterable<Identity>;
  /** Every pod identity (named ports towards any peer). */
  podIds(): Iterable<Identity>;
}

/** One local endpoint's tables, both directions. */
export function endpointPolicy(pod: Pod, identity: number, inp: TableInputs): EndpointPolicy {
  const table = (dir: Direction): DirectionTable => {
    const pols = inp.policiesFor(pod, dir);
    if (pols.length === 0) return { isolated: false, entries: [] };
    const out = new Map<string, PolicyEntry>();
    const put = (e: PolicyEntry): void => {
      out.set(entryKey(e), e);
    };
    for (const h of inp.hostIds) put({ peer: h, proto: PROTO_ANY, port: 0, portPrefix: 0 });
    for (const pol of pols) {
      for (const rule of dir === 'ingress' ? pol.ingress : pol.egress) {
        let peers: Identity[] | null = null; // null: ANY
        if (rule.peers !== null) {
          const set = new Set<Identity>();
          for (const p of rule.peers) for (const i of inp.selected(p, pol.namespace)) set.add(i);
          peers = [...set];
        }
        const peerNums = peers === null ? [ID_ANY] : peers.map((i) => i.id);
        if (rule.ports === null) {
          for (const peer of peerNums) put({ peer, proto: PROTO_ANY, port: 0, portPrefix: 0 });
          continue;
        }
        for (const pr of rule.ports) {
          const proto = PROTO_NUMBER[pr.protocol];
          if (pr.port === null) {
            for (const peer of peerNums) put({ peer, proto, port: 0, portPrefix: 0 });
          } else if (typeof pr.port === 'number') {
            for (const b of portRangeToPrefixes(pr.port, pr.endPort ?? pr.port))
              for (const peer of peerNums) put({ peer, proto, port: b.port, portPrefix: b.prefix });
          } else if (dir === 'ingress') {
            // The destination is this endpoint: resolve the name here.
            const name = pr.port;
            for (const cp of pod.containerPorts)
              if (cp.name === name && cp.protocol === pr.protocol) for (const peer of peerNums) put({ peer, proto, port: cp.port, portPrefix: 16 });
          } else {
            // The destination is the peer: only pods resolve names, each through its identity.
            const k = namedKey(pr.port, pr.protocol);
            for (const i of peers ?? inp.podIds()) for (const port of i.namedPorts.get(k) ?? []) put({ peer: i.id, proto, port, portPrefix: 16 });
          }
        }
      }
    }
    return { isolated: true, entries: [...out.values()].sort(compareEntries) };
  };
  return { ip: pod.ip!, namespace: pod.namespace, name: pod.name, identity, ingress: table('ingress'), egress: table('egress') };
}

export interface CompileOptions {
  /** Keep identity numbers stable across compilations (the daemon keeps one). */
  allocator?: IdentityAllocator;
}

/** Compiles the rule sets of one node's local endpoints. */
export function compileNode(state: StateIndex | ClusterState, node: string, opts: CompileOptions = {}): CompiledNode {
  const idx = state instanceof StateIndex ? state : new StateIndex(state);
  const alloc = opts.allocator ?? new IdentityAllocator();

  // 1. Every IPv4 prefix any ipBlock names (cidr and except): the CIDR classes.
  const prefixes = new PrefixSet<true>();
  const egressNames = new Map<string, { name: string; proto: Protocol }>();
  for (const pol of idx.state.policies) policyInputs(pol, (c) => prefixes.set(c, true), (k, v) => egressNames.set(k, v));
  const classOf = (ip: number): Cidr | null => prefixes.lookup(ip)?.cidr ?? null;
  const names = [...egressNames.keys()].sort();

  // 2. Identities and the ipcache.
  const identities = new Map<number, Identity>();
  const ipcache = new PrefixSet<number>();
  const add = (key: string, make: (id: number) => Identity, fixed?: number): number => {
    const id = fixed ?? alloc.idFor(key);
    if (!identities.has(id)) identities.set(id, make(id));
    return id;
  };
  for (const { cidr } of prefixes.entries()) {
    const id = add(cidrIdentityKey(cidr), (id) => ({ id, kind: 'cidr', namespace: null, labels: {}, cidrClass: cidr, namedPorts: new Map() }));
    ipcache.set(cidr, id);
  }
  if (!ipcache.lookup(0)) {
    add('', (id) => ({ id, kind: 'world', namespace: null, labels: {}, cidrClass: null, namedPorts: new Map() }), ID_WORLD);
    ipcache.set({ addr: 0, prefix: 0 }, ID_WORLD);
  }
  const podIdentity = new Map<Pod, number>();
  for (const [ip, pod] of idx.podByIp) {
    const cls = classOf(ip);
    const { key, namedPorts } = podIdentityKey(pod, cls, names, egressNames);
    const id = add(key, (id) => ({ id, kind: 'pod', namespace: pod.namespace, labels: pod.labels, cidrClass: cls, namedPorts }));
    podIdentity.set(pod, id);
    ipcache.set({ addr: ip, prefix: 32 }, id);
  }
  const hostIds = new Set<number>();
  for (const n of idx.state.nodes) {
    if (n.name !== node) continue;
    for (const a of n.addresses) {
      const ip = ipv4ToInt(a);
      const cls = classOf(ip);
      const mk = (id: number): Identity => ({ id, kind: 'host', namespace: null, labels: {}, cidrClass: cls, namedPorts: new Map() });
      const id = cls === null ? add('', mk, ID_HOST) : add(hostIdentityKey(cls), mk);
      hostIds.add(id);
      ipcache.set({ addr: ip, prefix: 32 }, id);
    }
  }
  // A /32 ipBlock prefix on a pod's or this node's address: that address has the pod's (or host's)
  // identity, which carries the class, so no lookup ever yields the CIDR identity. It would only add
  // entries that can never match, under a number no pinned entry shows (a restart could not take it back).
  for (const ident of [...identities.values()])
    if (ident.kind === 'cidr' && ident.cidrClass!.prefix === 32 && ipcache.lookup(ident.cidrClass!.addr)?.value !== ident.id) identities.delete(ident.id);

  // 3. Which identities each peer selects (computed once per peer object).
  const byNamespace = new Map<string, Identity[]>();
  const podIds: Identity[] = [];
  const addrIds: Identity[] = [];
  for (const ident of identities.values()) {
    if (ident.kind === 'pod') {
      podIds.push(ident);
      const l = byNamespace.get(ident.namespace!);
      if (l) l.push(ident);
      else byNamespace.set(ident.namespace!, [ident]);
    } else addrIds.push(ident);
  }
  const peerCache = new Map<Peer, Identity[]>();
  const selected = (peer: Peer, policyNs: string): Identity[] => {
    let ids = peerCache.get(peer);
    if (ids) return ids;
    if (peer.kind === 'ipBlock') {
      ids = [...podIds, ...addrIds].filter((i) => blockSelectsClass(peer.block, i.cidrClass));
    } else {
      // Namespaces first (a thousand label sets), then only the identities in the ones selected.
      const nsSel = peer.namespaceSelector;
      const namespaces = nsSel === null ? [policyNs] : [...byNamespace.keys()].filter((ns) => matches(nsSel, idx.namespaceLabels(ns)));
      ids = [];
      for (const ns of namespaces)
        for (const i of byNamespace.get(ns) ?? []) if (podPeerMatches(peer, policyNs, ns, i.labels, idx.namespaceLabels(ns))) ids.push(i);
    }
    peerCache.set(peer, ids);
    return ids;
  };

  // 4. Per local endpoint, per direction.
  const endpoints = new Map<string, EndpointPolicy>();
  const inputs: TableInputs = { policiesFor: (p, d) => idx.policiesFor(p, d), hostIds, selected, podIds: () => podIds };
  for (const pod of idx.state.pods) {
    if (pod.nodeName !== node || !isEndpoint(pod)) continue;
    if (idx.podByIp.get(ipv4ToInt(pod.ip!)) !== pod) continue; // lost an address clash
    endpoints.set(pod.ip!, endpointPolicy(pod, podIdentity.get(pod)!, inputs));
  }

  return {
    node,
    identities,
    ipcache: ipcache.entries().map(({ cidr, value }) => ({ cidr, identity: value })),
    endpoints,
  };
}

/**
 * The lookups a BPF program would make, over a compiled node: the ipcache LPM
 * for the peer's identity, then the endpoint's table for (identity | ANY,
 * protocol | ANY, port prefix). Built once per CompiledNode.
 */
export class CompiledLookup {
  private readonly ipcache = new PrefixSet<number>();
  private readonly tables = new Map<string, { isolated: boolean; byPeerProto: Map<string, PolicyEntry[]> }>();

  constructor(readonly compiled: CompiledNode) {
    for (const e of compiled.ipcache) this.ipcache.set(e.cidr, e.identity);
    for (const [ip, ep] of compiled.endpoints) {
      for (const dir of ['ingress', 'egress'] as const) {
        const byPeerProto = new Map<string, PolicyEntry[]>();
        for (const e of ep[dir].entries) {
          const k = `${e.peer}:${e.proto}`;
          const l = byPeerProto.get(k);
          if (l) l.push(e);
          else byPeerProto.set(k, [e]);
        }
        this.tables.set(`${ip}|${dir}`, { isolated: ep[dir].isolated, byPeerProto });
      }
    }
  }

  identityOf(ip: string | number): number {
    const n = typeof ip === 'number' ? ip : ipv4ToInt(ip);
    return this.ipcache.lookup(n)?.value ?? ID_WORLD;
  }

  /** null when `endpoint` is not local to this node; true when it is not isolated in `dir`. */
  allows(endpoint: string, dir: Direction, peerIp: string, protocol: number, port: number): boolean | null {
    const t = this.tables.get(`${endpoint}|${dir}`);
    if (!t) return null;
    if (!t.isolated) return true;
    const id = this.identityOf(peerIp);
    for (const peer of [id, ID_ANY]) {
      if (t.byPeerProto.has(`${peer}:${PROTO_ANY}`)) return true;
      for (const e of t.byPeerProto.get(`${peer}:${protocol}`) ?? []) {
        const shift = 16 - e.portPrefix;
        if (e.portPrefix === 0 || port >>> shift === e.port >>> shift) return true;
      }
    }
    return false;
  }
}

/** A connection decided by the compiled nodes of its source and destination (as the two dataplanes would). */
export function compiledAllowed(lookups: ReadonlyMap<string, CompiledLookup>, conn: Connection): boolean {
  let egress = true;
  let ingress = true;
  for (const l of lookups.values()) {
    const e = l.allows(conn.src, 'egress', conn.dst, conn.protocol, conn.port);
    if (e !== null) egress = e;
    const i = l.allows(conn.dst, 'ingress', conn.src, conn.protocol, conn.port);
    if (i !== null) ingress = i;
  }
  return egress && ingress;
}

export interface NodeDiff {
  readonly ipcacheUpsert: IpCacheEntry[];
  readonly ipcacheDelete: Cidr[];
  /** Endpoint IP -> entries to add/remove per direction, and isolation flips. */
  readonly endpoints: Map<string, { ingress: TableDiff; egress: TableDiff } | 'deleted'>;
}
export interface TableDiff {
  readonly isolated: boolean;
  readonly add: PolicyEntry[];
  readonly remove: PolicyEntry[];
}

export function diffTable(prev: DirectionTable | undefined, next: DirectionTable): TableDiff {
  const before = new Map((prev?.entries ?? []).map((e) => [entryKey(e), e]));
  const after = new Map(next.entries.map((e) => [entryKey(e), e]));
  return {
    isolated: next.isolated,
    add: [...after].filter(([k]) => !before.has(k)).map(([, e]) => e),
    remove: [...before].filter(([k]) => !after.has(k)).map(([, e]) => e),
  };
}

/** What to write to go from one compilation to the next: only the difference. */
export function diffNode(prev: CompiledNode | null, next: CompiledNode): NodeDiff {
  // A number per prefix (address × 33 + length < 2^53): 100,000 entries are not formatted as text.
  const numKey = (c: Cidr): number => c.addr * 33 + c.prefix;
  const before = new Map((prev?.ipcache ?? []).map((e) => [numKey(e.cidr), e]));
  const after = new Map(next.ipcache.map((e) => [numKey(e.cidr), e]));
  const ipcacheUpsert = [...after].filter(([k, e]) => before.get(k)?.identity !== e.identity).map(([, e]) => e);
  const ipcacheDelete = [...before].filter(([k]) => !after.has(k)).map(([, e]) => e.cidr);
  const endpoints = new Map<string, { ingress: TableDiff; egress: TableDiff } | 'deleted'>();
  for (const [ip, ep] of next.endpoints) {
    const old = prev?.endpoints.get(ip);
    const ingress = diffTable(old?.ingress, ep.ingress);
    const egress = diffTable(old?.egress, ep.egress);
    const changed = (d: TableDiff, o: DirectionTable | undefined): boolean => d.add.length > 0 || d.remove.length > 0 || o?.isolated !== d.isolated;
    if (changed(ingress, old?.ingress) || changed(egress, old?.egress)) endpoints.set(ip, { ingress, egress });
  }
  for (const ip of prev?.endpoints.keys() ?? []) if (!next.endpoints.has(ip)) endpoints.set(ip, 'deleted');
  return { ipcacheUpsert, ipcacheDelete, endpoints };
}

export function entryCount(c: CompiledNode): number {
  let n = 0;
  for (const ep of c.endpoints.values()) n += ep.ingress.entries.length + ep.egress.entries.length;
  return n;
}


