// The reference semantics: "is this connection allowed?" answered straight from
// the objects, the way the NetworkPolicy API documents it, with no cleverness.
// The compiler (compile.ts) must agree with this on every probe; the conformance
// cases (test/fixtures/netpol) and the property test hold both to it.
//
// A connection is allowed when the source may send it (egress) and the
// destination may receive it (ingress):
// - a pod no policy selects for a direction is not isolated in it;
// - an isolated pod allows what at least one rule of one selecting policy
//   allows (policies add up, there is no deny);
// - a rule allows a peer on a port when one of its peers matches (none given:
//   every peer) and one of its ports matches (none given: every port and protocol);
// - named ports resolve against the destination pod's containerPorts (name and
//   protocol), so they never match a destination that is not a pod;
// - ipBlock matches any address in cidr and in no except, pods' addresses too;
// - a node's own traffic to its local pods is always allowed (kubelet probes
//   work under default-deny); other nodes are addresses like any other.
// Only IPv4; loopback inside a pod never reaches a dataplane and is not modelled.
import { containsIp } from '../common/cidr.js';
import { ipv4ToInt } from '../../loader/codec.js';
import { matches } from './selector.js';
import {
  NAMESPACE_NAME_LABEL,
  PROTO_NUMBER,
  type ClusterState,
  type Connection,
  type Direction,
  type IpBlock,
  type Labels,
  type NetworkPolicy,
  type Peer,
  type Pod,
  type PortRule,
  type Rule,
} from './types.js';

/** Lookups the model and the compiler share, so both read the state the same way. */
export class StateIndex {
  readonly podByIp = new Map<number, Pod>();
  readonly nsLabels = new Map<string, Labels>();
  readonly policiesByNs = new Map<string, NetworkPolicy[]>();
  readonly nodeByIp = new Map<number, string>();

  constructor(readonly state: ClusterState) {
    for (const ns of state.namespaces) this.nsLabels.set(ns.name, ns.labels);
    for (const p of state.pods) {
      if (!isEndpoint(p)) continue;
      const ip = ipv4ToInt(p.ip!);
      // Two live pods never share an address; if the cache says so, the first keeps it.
      if (!this.podByIp.has(ip)) this.podByIp.set(ip, p);
    }
    for (const pol of state.policies) {
      const list = this.policiesByNs.get(pol.namespace);
      if (list) list.push(pol);
      else this.policiesByNs.set(pol.namespace, [pol]);
    }
    for (const n of state.nodes) for (const a of n.addresses) this.nodeByIp.set(ipv4ToInt(a), n.name);
  }

  /** A Namespace not (yet) seen has only the label the API server would give it. */
  namespaceLabels(name: string): Labels {
    return this.nsLabels.get(name) ?? { [NAMESPACE_NAME_LABEL]: name };
  }

  /** The policies that isolate `pod` in `dir`. */
  policiesFor(pod: Pod, dir: Direction): NetworkPolicy[] {
    const list = this.policiesByNs.get(pod.namespace) ?? [];
    return list.filter((p) => (dir === 'ingress' ? p.ingressType : p.egressType) && matches(p.podSelector, pod.labels));
  }
}

/** A pod the dataplane treats as an endpoint: has an address, its own network, and is alive. */
export function isEndpoint(p: Pod): boolean {
  return p.ip !== null && !p.hostNetwork && !p.terminated;
}

export function ipBlockMatches(block: IpBlock, ip: number): boolean {
  if (block.cidr === null || !containsIp(block.cidr, ip)) return false;
  return !block.except.some((e) => containsIp(e, ip));
}

/** Whether a pods peer (podSelector/namespaceSelector) of a policy in `policyNs` selects `pod`. */
export function podPeerMatches(
  peer: Extract<Peer, { kind: 'pods' }>,
  policyNs: string,
  podNs: string,
  podLabels: Labels,
  nsLabels: Labels,
): boolean {
  if (peer.namespaceSelector === null) {
    if (podNs !== policyNs) return false;
  } else if (!matches(peer.namespaceSelector, nsLabels)) return false;
  return peer.podSelector === null || matches(peer.podSelector, podLabels);
}

/** Whether a port entry allows (protocol, port) to a destination pod (null: not a pod). */
export function portMatches(pr: PortRule, protocol: number, port: number, dstPod: Pod | null): boolean {
  if (PROTO_NUMBER[pr.protocol] !== protocol) return false;
  if (pr.port === null) return true;
  if (typeof pr.port === 'number') return pr.endPort === null ? port === pr.port : port >= pr.port && port <= pr.endPort;
  if (dstPod === null) return false;
  return dstPod.containerPorts.some((cp) => cp.name === pr.port && cp.protocol === pr.protocol && cp.port === port);
}

export interface DirectionVerdict {
  /** Some policy selects the pod for this direction. */
  readonly isolated: boolean;
  readonly allowed: boolean;
  /** "namespace/name" of each policy with a rule that allows the connection. */
  readonly allowedBy: readonly string[];
  /** Allowed because it is between the pod and its own node. */
  readonly host?: boolean;
}

export interface Verdict {
  readonly allowed: boolean;
  /** null when the source is not a pod (egress policy does not apply). */
  readonly egress: DirectionVerdict | null;
  /** null when the destination is not a pod. */
  readonly ingress: DirectionVerdict | null;
}

function ruleAllows(
  idx: StateIndex,
  pol: NetworkPolicy,
  rule: Rule,
  peerIp: number,
  peerPod: Pod | null,
  conn: Connection,
  dstPod: Pod | null,
): boolean {
  if (rule.ports !== null && !rule.ports.some((pr) => portMatches(pr, conn.protocol, conn.port, dstPod))) return false;
  if (rule.peers === null) return true;
  return rule.peers.some((peer) => {
    if (peer.kind === 'ipBlock') return ipBlockMatches(peer.block, peerIp);
    if (peerPod === null) return false;
    return podPeerMatches(peer, pol.namespace, peerPod.namespace, peerPod.labels, idx.namespaceLabels(peerPod.namespace));
  });
}

function direction(
  idx: StateIndex,
  dir: Direction,
  subject: Pod,
  peerIp: number,
  peerPod: Pod | null,
  conn: Connection,
  dstPod: Pod | null,
): DirectionVerdict {
  const pols = idx.policiesFor(subject, dir);
  if (pols.length === 0) return { isolated: false, allowed: true, allowedBy: [] };
  // "Traffic to and from the node where a Pod is running is always allowed" (the API's documentation).
  if (subject.nodeName !== null && idx.nodeByIp.get(peerIp) === subject.nodeName)
    return { isolated: true, allowed: true, allowedBy: [], host: true };
  const allowedBy = pols
    .filter((pol) => (dir === 'ingress' ? pol.ingress : pol.egress).some((r) => ruleAllows(idx, pol, r, peerIp, peerPod, conn, dstPod)))
    .map((pol) => `${pol.namespace}/${pol.name}`);
  return { isolated: true, allowed: allowedBy.length > 0, allowedBy };
}

export function evaluate(idx: StateIndex, conn: Connection): Verdict {
  const src = ipv4ToInt(conn.src);
  const dst = ipv4ToInt(conn.dst);
  const srcPod = idx.podByIp.get(src) ?? null;
  const dstPod = idx.podByIp.get(dst) ?? null;
  const egress = srcPod ? direction(idx, 'egress', srcPod, dst, dstPod, conn, dstPod) : null;
  const ingress = dstPod ? direction(idx, 'ingress', dstPod, src, srcPod, conn, dstPod) : null;
  return { allowed: (egress?.allowed ?? true) && (ingress?.allowed ?? true), egress, ingress };
}

/** Convenience for one-off questions; build a StateIndex once for many. */
export function isAllowed(state: ClusterState, conn: Connection): boolean {
  return evaluate(new StateIndex(state), conn).allowed;
}
