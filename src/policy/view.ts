// What `bvcnictl policy --pod NS/NAME` shows, as bvcnid serves it (GET /policy
// on its loopback health listener): one endpoint's compiled rules with each
// peer identity described, so the CLI (which may not import the daemon) and
// the daemon share one shape.
import { formatCidr } from '../common/cidr.js';
import { ID_ANY, PROTO_ANY, type EndpointPolicy, type Identity, type PolicyEntry } from './compile.js';

export interface PolicyViewEntry {
  readonly peer: number;
  /** "any", "this node", "world", "cidr 10.0.0.0/8", "pod ns {app=web}" */
  readonly peerText: string;
  readonly proto: number;
  readonly port: number;
  readonly portPrefix: number;
  /** "TCP 80", "UDP 1024-2047", "TCP any", "any" */
  readonly portText: string;
}

export interface PolicyView {
  readonly pod: string;
  readonly ip: string;
  readonly identity: number;
  readonly identityText: string;
  readonly ingress: { readonly isolated: boolean; readonly entries: readonly PolicyViewEntry[] };
  readonly egress: { readonly isolated: boolean; readonly entries: readonly PolicyViewEntry[] };
}

const PROTO_NAMES: Readonly<Record<number, string>> = { 6: 'TCP', 17: 'UDP', 132: 'SCTP' };

export function describeIdentity(id: number, ident: Identity | undefined): string {
  if (id === ID_ANY) return 'any';
  if (!ident) return `identity ${id}`;
  const labels = Object.entries(ident.labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  switch (ident.kind) {
    case 'pod':
      return `pod ${ident.namespace} {${labels}}${ident.cidrClass ? ` in ${formatCidr(ident.cidrClass)}` : ''}`;
    case 'host':
      return 'this node';
    case 'world':
      return 'world';
    case 'cidr':
      return `cidr ${formatCidr(ident.cidrClass!)}`;
  }
}

export function describePorts(e: PolicyEntry): string {
  if (e.proto === PROTO_ANY) return 'any';
  const p = PROTO_NAMES[e.proto] ?? `proto ${e.proto}`;
  if (e.portPrefix === 0) return `${p} any`;
  const size = 2 ** (16 - e.portPrefix);
  return size === 1 ? `${p} ${e.port}` : `${p} ${e.port}-${e.port + size - 1}`;
}

export function policyView(ep: EndpointPolicy, identity: (id: number) => Identity | undefined): PolicyView {
  const entries = (es: readonly PolicyEntry[]): PolicyViewEntry[] =>
    es.map((e) => ({ ...e, peerText: describeIdentity(e.peer, identity(e.peer)), portText: describePorts(e) }));
  return {
    pod: `${ep.namespace}/${ep.name}`,
    ip: ep.ip,
    identity: ep.identity,
    identityText: describeIdentity(ep.identity, identity(ep.identity)),
    ingress: { isolated: ep.ingress.isolated, entries: entries(ep.ingress.entries) },
    egress: { isolated: ep.egress.isolated, entries: entries(ep.egress.entries) },
  };
}
