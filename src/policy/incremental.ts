// The compiler, incrementally: the same tables as compileNode (compile.ts) for
// one node, kept up to date object by object, so a change costs what it can
// affect instead of a pass over 100,000 Pods.
//
// What a change can affect, and what is redone:
// - a Pod: the identity of its address (and of any address it shares), so its
//   ipcache /32; if an identity appears or disappears, the peer selections
//   that hold it, and the local endpoints' tables; a local pod: its own tables;
// - a Namespace's labels: the namespaceSelector peers, and the local tables;
// - a NetworkPolicy: the policies of the local endpoints' namespaces, so the
//   local tables; if its ipBlock prefixes or egress named ports change the
//   global CIDR classes or names, the identities of the addresses inside the
//   prefixes that came or went (or of the pods carrying those names);
// - this node's addresses: the host identities and their /32s.
// Local tables are recomputed per endpoint (a node holds ~100) from cached peer
// selections; the diff covers only what was touched. The property test
// (test/unit/policy-incremental.test.ts) holds the result equal to compileNode
// after every step of random change sequences.
import { maskOf, type Cidr } from '../common/cidr.js';
import { intToIpv4, ipv4ToInt } from '../../loader/codec.js';
import {
  cidrIdentityKey,
  diffTable,
  endpointPolicy,
  hostIdentityKey,
  ID_HOST,
  ID_WORLD,
  IdentityAllocator,
  peerSelects,
  podIdentityKey,
  policyInputs,
  type CompiledNode,
  type DirectionTable,
  type EndpointPolicy,
  type Identity,
  type IpCacheEntry,
  type NodeDiff,
  type TableDiff,
  type TableInputs,
} from './compile.js';
import { isEndpoint } from './model.js';
import { matches } from './selector.js';
import { NAMESPACE_NAME_LABEL, type Direction, type Labels, type Namespace, type NetworkPolicy, type Node, type Peer, type Pod, type Protocol } from './types.js';

/** A prefix as one number (address × 33 + length < 2^53), as diffNode keys them. */
const numKey = (c: Cidr): number => c.addr * 33 + c.prefix;
const fromNumKey = (k: number): Cidr => ({ addr: Math.floor(k / 33), prefix: k % 33 });

export interface FlushResult {
  readonly diff: NodeDiff;
  /** Local endpoints that appeared or whose own identity changed: IP -> identity. */
  readonly endpointIdentity: ReadonlyMap<string, number>;
  /** What the flush recomputed (for logs and the benchmark). */
  readonly work: { pods: number; endpoints: number; identitiesAdded: number; identitiesRemoved: number };
}

interface PodRec {
  pod: Pod;
  /** First-seen order: on an address clash the earliest pod keeps it, as StateIndex decides. */
  seq: number;
}

export class IncrementalCompiler {
  readonly allocator: IdentityAllocator;
  private readonly pods = new Map<string, PodRec>();
  private seq = 0;
  private readonly nsLabels = new Map<string, Labels>();
  private readonly policies = new Map<string, NetworkPolicy>();
  private readonly policiesByNs = new Map<string, Map<string, NetworkPolicy>>();
  private nodeAddrs: number[] = [];

  // Derived state.
  private prefixByLen = new Map<number, Map<number, Cidr>>();
  private prefixLens: number[] = [];
  private egressNames = new Map<string, { name: string; proto: Protocol }>();
  private names: string[] = [];
  /** Endpoint pods by address: one key, or a set on a clash (rare: a Set per address would cost ~100 MiB at 100,000 Pods). */
  private readonly claimants = new Map<number, string | Set<string>>();
  private readonly ipOwner = new Map<number, { key: string; id: number }>();
  private readonly identities = new Map<number, Identity>();
  private readonly podRefs = new Map<number, number>();
  private readonly podIdsByNs = new Map<string, Set<number>>();
  private readonly cidrIds = new Map<number, number>();
  private hostIds = new Map<number, number>();
  private worldPresent = false;
  /** Prefix (numKey) -> identity. */
  private readonly ipcache = new Map<number, number>();
  private readonly endpoints = new Map<string, EndpointPolicy>();
  private readonly localIps = new Set<number>();
  private readonly peerSel = new Map<Peer, { ns: string; ids: Map<number, Identity> }>();
  /** What each local endpoint's tables read: the peers' selections, and every pod's named ports. */
  private readonly epDeps = new Map<number, { peers: Set<Peer>; anyNamed: boolean }>();
  /** Identities removed during the current flush (what they were, for the named-ports check). */
  private readonly removedIdents = new Map<number, Identity>();

  /** The pinned ipcache's numbers (prefix -> identity), taken back by the next flush's new keys. */
  private pinned: Map<number, number> | null = null;

  // Pending since the last flush.
  private readonly dirtyIps = new Set<number>();
  private policiesChanged = false;
  private namespacesChanged = false;
  private nodesChanged = false;
  private readonly stalePeers: Peer[] = [];
  /** Namespaces whose policies changed: a policy selects, and its peers serve, only pods of its own namespace. */
  private readonly policyNs = new Set<string>();

  constructor(
    readonly node: string,
    opts: { allocator?: IdentityAllocator } = {},
  ) {
    this.allocator = opts.allocator ?? new IdentityAllocator();
  }

  // ---- Changes -----------------------------------------------------------

  setPod(pod: Pod): void {
    const key = `${pod.namespace}/${pod.name}`;
    const old = this.pods.get(key);
    if (old) this.unclaim(key, old.pod);
    this.pods.set(key, { pod, seq: old?.seq ?? ++this.seq });
    if (isEndpoint(pod)) {
      const ip = ipv4ToInt(pod.ip!);
      const c = this.claimants.get(ip);
      if (c === undefined || c === key) this.claimants.set(ip, key);
      else if (typeof c === 'string') this.claimants.set(ip, new Set([c, key]));
      else c.add(key);
      this.dirtyIps.add(ip);
    }
  }

  deletePod(namespace: string, name: string): void {
    const key = `${namespace}/${name}`;
    const old = this.pods.get(key);
    if (!old) return;
    this.unclaim(key, old.pod);
    this.pods.delete(key);
  }

  getPod(namespace: string, name: string): Pod | undefined {
    return this.pods.get(`${namespace}/${name}`)?.pod;
  }

  private unclaim(key: string, pod: Pod): void {
    if (!isEndpoint(pod)) return;
    const ip = ipv4ToInt(pod.ip!);
    const c = this.claimants.get(ip);
    if (c === key) this.claimants.delete(ip);
    else if (typeof c === 'object') {
      c.delete(key);
      if (c.size === 1) this.claimants.set(ip, [...c][0]!);
    }
    this.dirtyIps.add(ip);
  }

  setNamespace(ns: Namespace): void {
    const old = this.nsLabels.get(ns.name);
    if (old && sameLabels(old, ns.labels)) return;
    this.nsLabels.set(ns.name, ns.labels);
    this.namespacesChanged = true;
  }

  deleteNamespace(name: string): void {
    if (this.nsLabels.delete(name)) this.namespacesChanged = true;
  }

  setPolicy(pol: NetworkPolicy): void {
    const key = `${pol.namespace}/${pol.name}`;
    this.forgetPolicy(key);
    this.policies.set(key, pol);
    let m = this.policiesByNs.get(pol.namespace);
    if (!m) this.policiesByNs.set(pol.namespace, (m = new Map()));
    m.set(key, pol);
    this.policiesChanged = true;
    this.policyNs.add(pol.namespace);
  }

  deletePolicy(namespace: string, name: string): void {
    if (this.forgetPolicy(`${namespace}/${name}`)) {
      this.policiesChanged = true;
      this.policyNs.add(namespace);
    }
  }

  private forgetPolicy(key: string): boolean {
    const old = this.policies.get(key);
    if (!old) return false;
    this.policies.delete(key);
    this.policiesByNs.get(old.namespace)?.delete(key);
    for (const r of [...old.ingress, ...old.egress]) for (const p of r.peers ?? []) this.stalePeers.push(p);
    return true;
  }

  /** The cluster's Nodes; only this node's addresses matter (its host identities). */
  setNodes(nodes: readonly Node[]): void {
    const addrs = nodes.filter((n) => n.name === this.node).flatMap((n) => n.addresses.map((a) => ipv4ToInt(a)));
    if (addrs.length === this.nodeAddrs.length && addrs.every((a, i) => a === this.nodeAddrs[i])) return;
    this.nodeAddrs = addrs;
    this.nodesChanged = true;
  }

  /**
   * What the maps held before this process (a restart): the next flush gives
   * each identity key the number the pinned ipcache has for its address or
   * prefix, when that number is free, so a restarted bvcnid rewrites nothing.
   */
  adoptPinned(ipcache: readonly IpCacheEntry[]): void {
    this.pinned = new Map(ipcache.map((e) => [numKey(e.cidr), e.identity]));
    this.allocator.reserve(this.pinned.values());
  }

  private idFor(key: string, at: number): number {
    if (this.pinned && this.allocator.peek(key) === undefined) {
      const id = this.pinned.get(at);
      if (id !== undefined) this.allocator.seed(key, id);
    }
    return this.allocator.idFor(key);
  }

  get pending(): boolean {
    return this.dirtyIps.size > 0 || this.policiesChanged || this.namespacesChanged || this.nodesChanged;
  }

  /** Every object as a ClusterState would hold them, in the order a full compilation would see them. */
  state(nodes: readonly Node[] = []): { namespaces: Namespace[]; pods: Pod[]; policies: NetworkPolicy[]; nodes: readonly Node[] } {
    return {
      namespaces: [...this.nsLabels].map(([name, labels]) => ({ name, labels })),
      pods: [...this.pods.values()].map((r) => r.pod),
      policies: [...this.policies.values()],
      nodes,
    };
  }

  get podCount(): number {
    return this.pods.size;
  }
  get namespaceCount(): number {
    return this.nsLabels.size;
  }
  get policyCount(): number {
    return this.policies.size;
  }

  // ---- Lookups -----------------------------------------------------------

  private classOf(ip: number): Cidr | null {
    for (const len of this.prefixLens) {
      const c = this.prefixByLen.get(len)!.get((ip & maskOf(len)) >>> 0);
      if (c) return c;
    }
    return null;
  }

  private namespaceLabels = (ns: string): Labels => this.nsLabels.get(ns) ?? { [NAMESPACE_NAME_LABEL]: ns };

  /** The policies isolating a pod in a direction, as NAMESPACE/NAME, sorted (what `bvcnictl monitor` names for a policy drop). */
  isolatingPolicies(pod: Pod, dir: Direction): string[] {
    return this.policiesFor(pod, dir)
      .map((p) => `${p.namespace}/${p.name}`)
      .sort();
  }

  private policiesFor(pod: Pod, dir: Direction): NetworkPolicy[] {
    const out: NetworkPolicy[] = [];
    for (const p of this.policiesByNs.get(pod.namespace)?.values() ?? [])
      if ((dir === 'ingress' ? p.ingressType : p.egressType) && matches(p.podSelector, pod.labels)) out.push(p);
    return out;
  }

  private selected(peer: Peer, policyNs: string): Iterable<Identity> {
    let e = this.peerSel.get(peer);
    if (!e) {
      const ids = new Map<number, Identity>();
      const consider = (i: Identity): void => {
        if (peerSelects(peer, policyNs, i, this.namespaceLabels)) ids.set(i.id, i);
      };
      if (peer.kind === 'ipBlock') for (const i of this.identities.values()) consider(i);
      else {
        const nss = peer.namespaceSelector === null ? [policyNs] : [...this.podIdsByNs.keys()];
        for (const ns of nss) {
          if (peer.namespaceSelector !== null && !matches(peer.namespaceSelector, this.namespaceLabels(ns))) continue;
          for (const id of this.podIdsByNs.get(ns) ?? []) consider(this.identities.get(id)!);
        }
      }
      this.peerSel.set(peer, (e = { ns: policyNs, ids }));
    }
    return e.ids.values();
  }

  // ---- Flush -------------------------------------------------------------

  /** Applies every change since the last flush; returns what to write. */
  flush(): FlushResult {
    const idDelta = new Map<number, Identity | null>(); // id -> added identity, or null: removed
    const touched = new Set<number>();
    const dirtyEps = new Set<number>();
    let allEps = false;
    const addId = (i: Identity): void => {
      this.identities.set(i.id, i);
      if (idDelta.get(i.id) === null) idDelta.delete(i.id); // removed and back: no change
      else idDelta.set(i.id, i);
    };
    const removeId = (id: number): void => {
      const gone = this.identities.get(id);
      if (gone) this.removedIdents.set(id, gone);
      this.identities.delete(id);
      if (idDelta.has(id) && idDelta.get(id) !== null) idDelta.delete(id); // added and gone: no change
      else idDelta.set(id, null);
    };

    if (this.policiesChanged) {
      for (const ip of this.localIps) {
        const o = this.ipOwner.get(ip);
        const ns = o && this.pods.get(o.key)?.pod.namespace;
        // A pod deleted since (ns undefined) is redone with its address anyway.
        if (ns === undefined || this.policyNs.has(ns)) dirtyEps.add(ip);
      }
      this.policyNs.clear();
      const prefixes = new Map<number, Cidr>();
      const egressNames = new Map<string, { name: string; proto: Protocol }>();
      for (const pol of this.policies.values()) policyInputs(pol, (c) => prefixes.set(numKey(c), c), (k, v) => egressNames.set(k, v));
      const oldPrefixes = new Map<number, Cidr>();
      for (const m of this.prefixByLen.values()) for (const c of m.values()) oldPrefixes.set(numKey(c), c);
      const changed: Cidr[] = [];
      for (const [k, c] of prefixes) if (!oldPrefixes.has(k)) changed.push(c);
      for (const [k, c] of oldPrefixes) if (!prefixes.has(k)) changed.push(c);
      const names = [...egressNames.keys()].sort();
      const changedNames = new Set([...names.filter((n) => !this.egressNames.has(n)), ...this.names.filter((n) => !egressNames.has(n))]);
      if (changed.length) {
        this.prefixByLen = new Map();
        for (const c of prefixes.values()) {
          let m = this.prefixByLen.get(c.prefix);
          if (!m) this.prefixByLen.set(c.prefix, (m = new Map()));
          m.set(c.addr, c);
        }
        this.prefixLens = [...this.prefixByLen.keys()].sort((a, b) => b - a);
        for (const c of changed) {
          const k = numKey(c);
          touched.add(k);
          const had = this.cidrIds.get(k);
          if (had !== undefined) {
            this.cidrIds.delete(k);
            removeId(had);
          }
          if (prefixes.has(k)) {
            // A /32 prefix on a pod's or this node's address: the pinned number there is theirs.
            const shadowed = c.prefix === 32 && (this.claimants.has(c.addr) || this.nodeAddrs.includes(c.addr));
            const id = shadowed ? this.allocator.idFor(cidrIdentityKey(c)) : this.idFor(cidrIdentityKey(c), k);
            this.cidrIds.set(k, id);
            addId({ id, kind: 'cidr', namespace: null, labels: {}, cidrClass: c, namedPorts: new Map() });
          }
        }
        // Addresses inside a prefix that came or went may have another class now.
        for (const ip of this.claimants.keys())
          if (changed.some((c) => ((ip & maskOf(c.prefix)) >>> 0) === c.addr)) this.dirtyIps.add(ip);
        this.nodesChanged = true;
      }
      if (changedNames.size) {
        for (const [ip, keys] of this.claimants)
          for (const k of typeof keys === 'string' ? [keys] : keys) {
            const pod = this.pods.get(k)!.pod;
            if (pod.containerPorts.some((cp) => cp.name !== null && changedNames.has(`${cp.name}/${cp.protocol}`))) this.dirtyIps.add(ip);
          }
      }
      this.egressNames = egressNames;
      this.names = names;
      const world = this.classOf(0) === null;
      if (world !== this.worldPresent) {
        this.worldPresent = world;
        touched.add(0);
        if (world) addId({ id: ID_WORLD, kind: 'world', namespace: null, labels: {}, cidrClass: null, namedPorts: new Map() });
        else removeId(ID_WORLD);
      }
      for (const p of this.stalePeers) this.peerSel.delete(p);
      this.stalePeers.length = 0;
      this.policiesChanged = false;
    }

    if (this.namespacesChanged) {
      allEps = true;
      for (const p of [...this.peerSel.keys()]) if (p.kind === 'pods' && p.namespaceSelector !== null) this.peerSel.delete(p);
      this.namespacesChanged = false;
    }

    const podsRedone = this.dirtyIps.size;
    for (const ip of this.dirtyIps) {
      const c = this.claimants.get(ip);
      let owner: { key: string; rec: PodRec } | null = null;
      for (const key of c === undefined ? [] : typeof c === 'string' ? [c] : c) {
        const rec = this.pods.get(key)!;
        if (!owner || rec.seq < owner.rec.seq) owner = { key, rec };
      }
      const old = this.ipOwner.get(ip);
      if (owner) {
        const pod = owner.rec.pod;
        const cls = this.classOf(ip);
        const { key, namedPorts } = podIdentityKey(pod, cls, this.names, this.egressNames);
        const id = this.idFor(key, ip * 33 + 32);
        const refs = this.podRefs.get(id) ?? 0;
        this.podRefs.set(id, refs + 1);
        if (refs === 0) {
          addId({ id, kind: 'pod', namespace: pod.namespace, labels: pod.labels, cidrClass: cls, namedPorts });
          let s = this.podIdsByNs.get(pod.namespace);
          if (!s) this.podIdsByNs.set(pod.namespace, (s = new Set()));
          s.add(id);
        }
        this.ipOwner.set(ip, { key: owner.key, id });
        if (pod.nodeName === this.node) this.localIps.add(ip);
        else this.localIps.delete(ip);
      } else {
        this.ipOwner.delete(ip);
        this.localIps.delete(ip);
      }
      if (old) {
        const refs = this.podRefs.get(old.id)! - 1;
        if (refs > 0) this.podRefs.set(old.id, refs);
        else {
          const ns = this.identities.get(old.id)!.namespace!;
          this.podRefs.delete(old.id);
          removeId(old.id);
          const s = this.podIdsByNs.get(ns)!;
          s.delete(old.id);
          if (s.size === 0) this.podIdsByNs.delete(ns);
        }
      }
      touched.add(ip * 33 + 32);
      dirtyEps.add(ip);
    }
    this.dirtyIps.clear();

    if (this.nodesChanged) {
      const next = new Map<number, number>();
      for (const ip of this.nodeAddrs) {
        const cls = this.classOf(ip);
        next.set(ip, cls === null ? ID_HOST : this.idFor(hostIdentityKey(cls), ip * 33 + 32));
      }
      const before = new Set(this.hostIds.values());
      const after = new Set(next.values());
      for (const id of before) if (!after.has(id)) removeId(id);
      for (const [ip, id] of next)
        if (!before.has(id) && !this.identities.has(id))
          addId({ id, kind: 'host', namespace: null, labels: {}, cidrClass: this.classOf(ip), namedPorts: new Map() });
      for (const ip of new Set([...this.hostIds.keys(), ...next.keys()])) if (this.hostIds.get(ip) !== next.get(ip)) touched.add(ip * 33 + 32);
      if (before.size !== after.size || [...before].some((id) => !after.has(id))) allEps = true;
      this.hostIds = next;
      this.nodesChanged = false;
    }

    // A CIDR identity of a /32 shadowed by a pod or this node is no identity at all (compileNode says why).
    for (const k of touched) {
      if (k % 33 !== 32) continue;
      const id = this.cidrIds.get(k);
      if (id === undefined) continue;
      const visible = this.ipcacheValueAt(k) === id;
      if (visible && !this.identities.has(id))
        addId({ id, kind: 'cidr', namespace: null, labels: {}, cidrClass: fromNumKey(k), namedPorts: new Map() });
      else if (!visible && this.identities.has(id)) removeId(id);
    }

    // Peer selections follow the identities that came and went; the endpoints whose
    // tables read a selection that changed (or every pod's named ports) are redone.
    if (idDelta.size) {
      const changedPeers = new Set<Peer>();
      for (const [peer, e] of this.peerSel)
        for (const [id, ident] of idDelta) {
          const had = e.ids.delete(id);
          if (ident !== null && peerSelects(peer, e.ns, ident, this.namespaceLabels)) {
            e.ids.set(id, ident);
            if (!had) changedPeers.add(peer);
          } else if (had) changedPeers.add(peer);
        }
      let namedChanged = false;
      for (const [id, ident] of idDelta) {
        const i = ident ?? this.removedIdents.get(id);
        if (i === undefined || (i.kind === 'pod' && i.namedPorts.size > 0)) namedChanged = true;
      }
      for (const ip of this.localIps) {
        const deps = this.epDeps.get(ip);
        if (!deps || (namedChanged && deps.anyNamed) || [...deps.peers].some((p) => changedPeers.has(p))) dirtyEps.add(ip);
      }
    }
    this.removedIdents.clear();

    // The ipcache entries touched.
    const ipcacheUpsert: IpCacheEntry[] = [];
    const ipcacheDelete: Cidr[] = [];
    for (const k of touched) {
      const id = this.ipcacheValueAt(k);
      const old = this.ipcache.get(k);
      if (id === undefined) {
        if (old !== undefined) {
          this.ipcache.delete(k);
          ipcacheDelete.push(fromNumKey(k));
        }
      } else if (old !== id) {
        this.ipcache.set(k, id);
        ipcacheUpsert.push({ cidr: fromNumKey(k), identity: id });
      }
    }

    // The local endpoints' tables.
    let deps = { peers: new Set<Peer>(), anyNamed: false };
    const inputs: TableInputs = {
      policiesFor: (p, d) => this.policiesFor(p, d),
      hostIds: [...new Set(this.hostIds.values())],
      selected: (p, ns) => (deps.peers.add(p), this.selected(p, ns)),
      podIds: () => ((deps.anyNamed = true), [...this.identities.values()].filter((i) => i.kind === 'pod')),
    };
    const endpoints = new Map<string, { ingress: TableDiff; egress: TableDiff } | 'deleted'>();
    const endpointIdentity = new Map<string, number>();
    const redo = allEps ? new Set([...this.localIps, ...dirtyEps]) : dirtyEps;
    let epsRedone = 0;
    for (const ip of redo) {
      const owner = this.ipOwner.get(ip);
      const local = owner !== undefined && this.localIps.has(ip);
      const ipText = intToIpv4(ip);
      const prev = this.endpoints.get(ipText);
      if (!local) {
        this.epDeps.delete(ip);
        if (prev) {
          this.endpoints.delete(ipText);
          endpoints.set(ipText, 'deleted');
        }
        continue;
      }
      epsRedone++;
      const pod = this.pods.get(owner.key)!.pod;
      deps = { peers: new Set(), anyNamed: false };
      const next = endpointPolicy(pod, owner.id, inputs);
      this.epDeps.set(ip, deps);
      this.endpoints.set(ipText, next);
      if (prev?.identity !== next.identity) endpointIdentity.set(ipText, next.identity);
      const ingress = diffTable(prev?.ingress, next.ingress);
      const egress = diffTable(prev?.egress, next.egress);
      const changed = (d: TableDiff, o: DirectionTable | undefined): boolean => d.add.length > 0 || d.remove.length > 0 || o?.isolated !== d.isolated;
      if (changed(ingress, prev?.ingress) || changed(egress, prev?.egress)) endpoints.set(ipText, { ingress, egress });
    }

    this.pinned = null;
    let added = 0;
    for (const v of idDelta.values()) if (v) added++;
    return {
      diff: { ipcacheUpsert, ipcacheDelete, endpoints },
      endpointIdentity,
      work: { pods: podsRedone, endpoints: epsRedone, identitiesAdded: added, identitiesRemoved: idDelta.size - added },
    };
  }

  private ipcacheValueAt(k: number): number | undefined {
    const { addr, prefix } = fromNumKey(k);
    if (prefix === 32) {
      const h = this.hostIds.get(addr);
      if (h !== undefined) return h;
      const o = this.ipOwner.get(addr);
      if (o) return o.id;
    }
    const c = this.cidrIds.get(k);
    if (c !== undefined) return c;
    if (k === 0 && this.worldPresent) return ID_WORLD;
    return undefined;
  }

  // ---- Reading -----------------------------------------------------------

  /** The whole compiled node, as compileNode returns it (for the property test and the CLI's view). */
  snapshot(): CompiledNode {
    const ipcache = [...this.ipcache]
      .map(([k, identity]) => ({ cidr: fromNumKey(k), identity }))
      .sort((a, b) => b.cidr.prefix - a.cidr.prefix || a.cidr.addr - b.cidr.addr);
    return { node: this.node, identities: new Map(this.identities), ipcache, endpoints: new Map(this.endpoints) };
  }

  endpoint(ip: string): EndpointPolicy | undefined {
    return this.endpoints.get(ip);
  }

  get endpointMap(): ReadonlyMap<string, EndpointPolicy> {
    return this.endpoints;
  }

  get identityCount(): number {
    return this.identities.size;
  }

  get ipcacheSize(): number {
    return this.ipcache.size;
  }

  identity(id: number): Identity | undefined {
    return this.identities.get(id);
  }
}

function sameLabels(a: Labels, b: Labels): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}
