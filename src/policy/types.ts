// The NetworkPolicy model's own types: what is left of Pods, Namespaces and
// networking.k8s.io/v1 NetworkPolicies once they are parsed and validated
// (parse.ts). Nothing here knows about the kernel; the compiler (compile.ts)
// turns these into tables a BPF program can look up.
import type { Cidr } from '../common/cidr.js';

export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];
/** IP protocol numbers: what a packet carries and what the compiled tables key on. */
export const PROTO_NUMBER: Readonly<Record<Protocol, number>> = { TCP: 6, UDP: 17, SCTP: 132 };
export const IPPROTO_ICMP = 1;

export type Labels = Readonly<Record<string, string>>;

/** The label every Namespace carries (the API server sets it; the model defaults it the same way). */
export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

export type SelectorOp = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
export interface Requirement {
  readonly key: string;
  readonly op: SelectorOp;
  readonly values: readonly string[];
}
/** A LabelSelector with matchLabels folded into `In [value]` requirements; no requirement selects everything. */
export interface Selector {
  readonly requirements: readonly Requirement[];
}

export interface IpBlock {
  /** null when the block is IPv6: valid API, matches no address of an IPv4-only cluster. */
  readonly cidr: Cidr | null;
  readonly except: readonly Cidr[];
  readonly text: string;
}

/** One `from`/`to` entry. A pods peer has at least one selector; null means "not given". */
export type Peer =
  | { readonly kind: 'pods'; readonly podSelector: Selector | null; readonly namespaceSelector: Selector | null }
  | { readonly kind: 'ipBlock'; readonly block: IpBlock };

export interface PortRule {
  readonly protocol: Protocol;
  /** null: every port of the protocol; a string: a named containerPort. */
  readonly port: number | string | null;
  /** Inclusive end of a numeric range. */
  readonly endPort: number | null;
}

export interface Rule {
  /** null: `from`/`to` empty or absent, which the API defines as every peer. */
  readonly peers: readonly Peer[] | null;
  /** null: `ports` empty or absent, every port of every protocol. */
  readonly ports: readonly PortRule[] | null;
}

export type Direction = 'ingress' | 'egress';

export interface NetworkPolicy {
  readonly namespace: string;
  readonly name: string;
  readonly podSelector: Selector;
  /** After the API's defaulting. */
  readonly ingressType: boolean;
  readonly egressType: boolean;
  readonly ingress: readonly Rule[];
  readonly egress: readonly Rule[];
}

export interface ContainerPort {
  readonly name: string | null;
  readonly port: number;
  readonly protocol: Protocol;
}

export interface Pod {
  readonly namespace: string;
  readonly name: string;
  readonly labels: Labels;
  /** status.podIP; null until the kubelet reports it. */
  readonly ip: string | null;
  readonly nodeName: string | null;
  /** Host-network pods have the node's address: they are not endpoints and no podSelector sees them. */
  readonly hostNetwork: boolean;
  /** Succeeded/Failed pods keep their IP in the API but no longer own it. */
  readonly terminated: boolean;
  readonly containerPorts: readonly ContainerPort[];
}

export interface Namespace {
  readonly name: string;
  readonly labels: Labels;
}

export interface Node {
  readonly name: string;
  /** The node's own IPv4 addresses (InternalIP, ExternalIP). */
  readonly addresses: readonly string[];
}

/** Everything the decision depends on. */
export interface ClusterState {
  readonly namespaces: readonly Namespace[];
  readonly pods: readonly Pod[];
  readonly policies: readonly NetworkPolicy[];
  readonly nodes: readonly Node[];
}

/** One connection's first packet as the dataplane sees it. */
export interface Connection {
  readonly src: string;
  readonly dst: string;
  /** IP protocol number (6, 17, 132, 1, …). */
  readonly protocol: number;
  /** Destination port; ignored for protocols without ports. */
  readonly port: number;
}
