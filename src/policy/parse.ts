// From API objects (JSON, as list and watch deliver them) to the model's types,
// refusing what the API server's validation refuses and applying its defaults:
// - policyTypes absent or empty: Ingress, plus Egress when `egress` has a rule
//   (an empty `egress: []` does not make a policy an egress policy);
// - a port's protocol defaults to TCP;
// - `from`/`to`/`ports` empty or absent mean "all"; `ingress`/`egress` empty or
//   absent mean "no rule", i.e. nothing allowed in a direction the policy isolates;
// - a peer is either ipBlock alone, or podSelector and/or namespaceSelector;
// - endPort needs a numeric port and is not below it; except CIDRs lie strictly
//   inside their block.
// IPv6 ipBlocks are valid API and are kept as blocks that match nothing: a
// dual-stack allow-all-egress policy (0.0.0.0/0 and ::/0) must not be refused.
import { parseCidr, cidrContains, type Cidr, CidrError } from '../common/cidr.js';
import { ipv4ToInt } from '../../loader/codec.js';
import { PolicyError } from './errors.js';
import { isLabelValue, isQualifiedName, parseSelector } from './selector.js';
import {
  NAMESPACE_NAME_LABEL,
  PROTOCOLS,
  type ContainerPort,
  type IpBlock,
  type Labels,
  type Namespace,
  type NetworkPolicy,
  type Node,
  type Peer,
  type PortRule,
  type Protocol,
  type Pod,
  type Rule,
} from './types.js';

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function optList(v: unknown, path: string): unknown[] | null {
  if (v === undefined || v === null) return null;
  if (!Array.isArray(v)) throw new PolicyError(path, 'must be a list');
  return v;
}

function meta(raw: unknown, what: string, namespaced: boolean): { name: string; namespace: string; labels: Labels } {
  if (!isRecord(raw)) throw new PolicyError(what, 'must be an object');
  const m = raw.metadata;
  if (!isRecord(m)) throw new PolicyError(`${what}.metadata`, 'missing');
  if (typeof m.name !== 'string' || m.name === '') throw new PolicyError(`${what}.metadata.name`, 'missing');
  const namespace = namespaced ? m.namespace : '';
  if (namespaced && (typeof namespace !== 'string' || namespace === ''))
    throw new PolicyError(`${what}.metadata.namespace`, 'missing');
  return { name: m.name, namespace: namespace as string, labels: parseLabels(m.labels, `${what}.metadata.labels`) };
}

export function parseLabels(raw: unknown, path: string): Labels {
  if (raw === undefined || raw === null) return {};
  if (!isRecord(raw)) throw new PolicyError(path, 'must be a map of strings');
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (!isQualifiedName(k)) throw new PolicyError(path, `invalid label key ${JSON.stringify(k)}`);
    if (typeof v !== 'string' || !isLabelValue(v)) throw new PolicyError(`${path}[${k}]`, `invalid label value ${JSON.stringify(v)}`);
    out[k] = v;
  }
  return out;
}

/** IANA_SVC_NAME, as a named port must be. */
export function isPortName(s: string): boolean {
  return s.length >= 1 && s.length <= 15 && /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(s) && /[a-z]/.test(s) && !s.includes('--');
}

function parseProtocol(v: unknown, path: string): Protocol {
  if (v === undefined || v === null) return 'TCP';
  if (typeof v !== 'string' || !PROTOCOLS.includes(v as Protocol))
    throw new PolicyError(path, `must be one of TCP, UDP, SCTP, not ${JSON.stringify(v)}`);
  return v as Protocol;
}

function parsePortNumber(v: unknown, path: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535)
    throw new PolicyError(path, `must be a port number between 1 and 65535, not ${JSON.stringify(v)}`);
  return v;
}

function parsePortRule(raw: unknown, path: string): PortRule {
  if (!isRecord(raw)) throw new PolicyError(path, 'must be an object');
  const protocol = parseProtocol(raw.protocol, `${path}.protocol`);
  let port: number | string | null = null;
  if (raw.port !== undefined && raw.port !== null) {
    if (typeof raw.port === 'string') {
      // An IntOrString that holds digits is still a name to the API; a name must contain a letter.
      if (!isPortName(raw.port)) throw new PolicyError(`${path}.port`, `invalid port name ${JSON.stringify(raw.port)}`);
      port = raw.port;
    } else port = parsePortNumber(raw.port, `${path}.port`);
  }
  let endPort: number | null = null;
  if (raw.endPort !== undefined && raw.endPort !== null) {
    if (port === null) throw new PolicyError(`${path}.endPort`, 'may not be specified when port is not specified');
    if (typeof port === 'string') throw new PolicyError(`${path}.endPort`, 'may not be specified when port is a named port');
    endPort = parsePortNumber(raw.endPort, `${path}.endPort`);
    if (endPort < port) throw new PolicyError(`${path}.endPort`, `must be greater than or equal to port (${port})`);
  }
  return { protocol, port, endPort };
}

function parseCidrField(text: unknown, path: string): Cidr | null {
  if (typeof text !== 'string' || text === '') throw new PolicyError(path, 'must be a CIDR');
  try {
    return parseCidr(text, { what: path, strict: false });
  } catch (e) {
    if (e instanceof CidrError && e.ipv6) {
      if (!/^[0-9a-fA-F:.]+\/\d{1,3}$/.test(text) || Number(text.split('/')[1]) > 128)
        throw new PolicyError(path, `invalid CIDR ${JSON.stringify(text)}`);
      return null;
    }
    throw new PolicyError(path, e instanceof Error ? e.message : String(e));
  }
}

function parseIpBlock(raw: unknown, path: string): IpBlock {
  if (!isRecord(raw)) throw new PolicyError(path, 'must be an object');
  const cidr = parseCidrField(raw.cidr, `${path}.cidr`);
  const except: Cidr[] = [];
  (optList(raw.except, `${path}.except`) ?? []).forEach((e, i) => {
    const p = `${path}.except[${i}]`;
    const c = parseCidrField(e, p);
    if ((c === null) !== (cidr === null)) throw new PolicyError(p, 'must be of the same IP family as cidr');
    if (c === null || cidr === null) return;
    if (!cidrContains(cidr, c) || c.prefix <= cidr.prefix)
      throw new PolicyError(p, `must be a strict subset of cidr ${String(raw.cidr)}`);
    except.push(c);
  });
  return { cidr, except, text: String(raw.cidr) };
}

function parsePeer(raw: unknown, path: string): Peer {
  if (!isRecord(raw)) throw new PolicyError(path, 'must be an object');
  const has = (k: string): boolean => raw[k] !== undefined && raw[k] !== null;
  if (has('ipBlock')) {
    if (has('podSelector') || has('namespaceSelector'))
      throw new PolicyError(path, 'may not specify both ipBlock and another peer');
    return { kind: 'ipBlock', block: parseIpBlock(raw.ipBlock, `${path}.ipBlock`) };
  }
  if (!has('podSelector') && !has('namespaceSelector')) throw new PolicyError(path, 'must specify a peer');
  return {
    kind: 'pods',
    podSelector: has('podSelector') ? parseSelector(raw.podSelector, `${path}.podSelector`) : null,
    namespaceSelector: has('namespaceSelector') ? parseSelector(raw.namespaceSelector, `${path}.namespaceSelector`) : null,
  };
}

function parseRule(raw: unknown, path: string, peersField: 'from' | 'to'): Rule {
  if (!isRecord(raw)) throw new PolicyError(path, 'must be an object');
  const peersRaw = optList(raw[peersField], `${path}.${peersField}`);
  const portsRaw = optList(raw.ports, `${path}.ports`);
  const peers = peersRaw === null || peersRaw.length === 0 ? null : peersRaw.map((p, i) => parsePeer(p, `${path}.${peersField}[${i}]`));
  const ports = portsRaw === null || portsRaw.length === 0 ? null : portsRaw.map((p, i) => parsePortRule(p, `${path}.ports[${i}]`));
  return { peers, ports };
}

export function parseNetworkPolicy(raw: unknown): NetworkPolicy {
  const m = meta(raw, 'NetworkPolicy', true);
  const where = `NetworkPolicy ${m.namespace}/${m.name}`;
  const spec = (raw as Record<string, unknown>).spec;
  if (!isRecord(spec)) throw new PolicyError(`${where}: spec`, 'missing');
  if (!isRecord(spec.podSelector)) throw new PolicyError(`${where}: spec.podSelector`, 'required (use {} to select every pod)');
  const podSelector = parseSelector(spec.podSelector, `${where}: spec.podSelector`);
  const ingressRaw = optList(spec.ingress, `${where}: spec.ingress`) ?? [];
  const egressRaw = optList(spec.egress, `${where}: spec.egress`) ?? [];
  const ingress = ingressRaw.map((r, i) => parseRule(r, `${where}: spec.ingress[${i}]`, 'from'));
  const egress = egressRaw.map((r, i) => parseRule(r, `${where}: spec.egress[${i}]`, 'to'));
  const typesRaw = optList(spec.policyTypes, `${where}: spec.policyTypes`) ?? [];
  let ingressType: boolean;
  let egressType: boolean;
  if (typesRaw.length === 0) {
    ingressType = true;
    egressType = egress.length > 0;
  } else {
    if (typesRaw.length > 2) throw new PolicyError(`${where}: spec.policyTypes`, 'may not have more than 2 entries');
    for (const t of typesRaw)
      if (t !== 'Ingress' && t !== 'Egress')
        throw new PolicyError(`${where}: spec.policyTypes`, `must be Ingress or Egress, not ${JSON.stringify(t)}`);
    ingressType = typesRaw.includes('Ingress');
    egressType = typesRaw.includes('Egress');
  }
  return { namespace: m.namespace, name: m.name, podSelector, ingressType, egressType, ingress, egress };
}

export function parseNamespace(raw: unknown): Namespace {
  const m = meta(raw, 'Namespace', false);
  // The API server sets this label on every Namespace and refuses a different value.
  return { name: m.name, labels: { ...m.labels, [NAMESPACE_NAME_LABEL]: m.name } };
}

export function parsePod(raw: unknown): Pod {
  const m = meta(raw, 'Pod', true);
  const r = raw as Record<string, unknown>;
  const spec = isRecord(r.spec) ? r.spec : {};
  const status = isRecord(r.status) ? r.status : {};
  const containerPorts: ContainerPort[] = [];
  for (const list of [spec.containers, spec.initContainers]) {
    if (!Array.isArray(list)) continue;
    for (const c of list) {
      if (!isRecord(c) || !Array.isArray(c.ports)) continue;
      for (const p of c.ports) {
        if (!isRecord(p) || typeof p.containerPort !== 'number') continue;
        containerPorts.push({
          name: typeof p.name === 'string' && p.name !== '' ? p.name : null,
          port: p.containerPort,
          protocol: typeof p.protocol === 'string' && PROTOCOLS.includes(p.protocol as Protocol) ? (p.protocol as Protocol) : 'TCP',
        });
      }
    }
  }
  let ip: string | null = typeof status.podIP === 'string' && status.podIP !== '' ? status.podIP : null;
  if (ip !== null) {
    try {
      ipv4ToInt(ip);
    } catch {
      ip = null; // IPv6 or garbage: not an address this IPv4 model can place
    }
  }
  return {
    namespace: m.namespace,
    name: m.name,
    labels: m.labels,
    ip,
    nodeName: typeof spec.nodeName === 'string' && spec.nodeName !== '' ? spec.nodeName : null,
    hostNetwork: spec.hostNetwork === true,
    terminated: status.phase === 'Succeeded' || status.phase === 'Failed',
    containerPorts,
  };
}

export function parseNode(raw: unknown): Node {
  const m = meta(raw, 'Node', false);
  const status = isRecord((raw as Record<string, unknown>).status) ? ((raw as Record<string, unknown>).status as Record<string, unknown>) : {};
  const addresses: string[] = [];
  if (Array.isArray(status.addresses)) {
    for (const a of status.addresses) {
      if (!isRecord(a) || typeof a.address !== 'string') continue;
      if (a.type !== 'InternalIP' && a.type !== 'ExternalIP') continue;
      try {
        ipv4ToInt(a.address);
        addresses.push(a.address);
      } catch {
        /* IPv6 */
      }
    }
  }
  return { name: m.name, addresses };
}
