// The network configuration on stdin. The original bvcni config
// ({"cniVersion","name","type","podcidr"}) is valid as is; everything else
// has a default. Unknown fields are ignored, a bad known field is refused
// with code 7 naming it.
import { isAbsolute } from 'node:path';
import { validIfname } from './env.js';
import { Code, CniError, invalidConfig } from './errors.js';
import { isSupported, type CniVersion } from './version.js';
import { parseCidr, type Cidr } from '../common/cidr.js';
import { Defaults } from '../common/defaults.js';
import type { HostPortMapping, HostPortProtocol } from '../dataplane/hostport.js';

export interface NetConf {
  cniVersion: CniVersion;
  name: string;
  type: string;
  podCidr: Cidr;
  podCidrText: string;
  bridge: string;
  /** Pod MTU; undefined: detect (bridge MTU, else default-route device MTU - 50). */
  mtu?: number;
  dataDir: string;
  pinDir: string;
  /** What pods get: a veth on the bridge (default), or a netkit pair (bvcnid writes it where the kernel has netkit). */
  podDevice: 'veth' | 'netkit';
  /** bvcnid enforces NetworkPolicy (--network-policy): new endpoints start fail-closed until it writes their rules. */
  networkPolicy: boolean;
  prevResult?: Record<string, unknown>;
  validAttachments?: { containerId: string; ifname: string }[];
  raw: Record<string, unknown>;
}

/** The config keys that have defaults, under the plugin's names (src/common/defaults.ts). */
export const DEFAULTS = {
  bridge: Defaults.bridge,
  dataDir: Defaults.stateDir,
  pinDir: Defaults.pinDir,
} as const;

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** Parses only as far as the version: enough to answer with the right cniVersion. */
export function sniffVersion(stdin: string): string | undefined {
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown })?.cniVersion;
    return typeof v === 'string' && isSupported(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

export function decodeObject(stdin: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(stdin);
  } catch (e) {
    throw new CniError(Code.decode, 'cannot decode network configuration', (e as Error).message);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new CniError(Code.decode, 'cannot decode network configuration', 'expected a JSON object');
  return raw as Record<string, unknown>;
}

export function checkVersion(raw: Record<string, unknown>): CniVersion {
  const v = raw.cniVersion;
  if (v === undefined || v === '') throw new CniError(Code.incompatibleVersion, 'incompatible CNI versions', 'config has no cniVersion (0.1.0 assumed), plugin supports 0.3.1, 0.4.0, 1.0.0, 1.1.0');
  if (typeof v !== 'string') throw invalidConfig('cniVersion', 'must be a string');
  if (!isSupported(v)) throw new CniError(Code.incompatibleVersion, 'incompatible CNI versions', `config is "${v.slice(0, 32)}", plugin supports ["0.3.1" "0.4.0" "1.0.0" "1.1.0"]`);
  return v;
}

function optString(raw: Record<string, unknown>, field: string): string | undefined {
  const v = raw[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw invalidConfig(field, 'must be a string');
  return v;
}

function absPath(raw: Record<string, unknown>, field: string, def: string): string {
  const v = optString(raw, field);
  if (v === undefined) return def;
  if (!isAbsolute(v) || v.includes('\0') || v.length > 1024) throw invalidConfig(field, 'must be an absolute path');
  return v.replace(/\/+$/, '') || '/';
}

export function parseConfig(stdin: string): NetConf {
  const raw = decodeObject(stdin);
  const cniVersion = checkVersion(raw);
  const name = raw.name;
  if (typeof name !== 'string' || !NAME_RE.test(name) || name.length > 128)
    throw invalidConfig('name', 'must be a network name of letters, digits, "_", "." and "-"');
  const type = raw.type;
  if (type !== undefined && typeof type !== 'string') throw invalidConfig('type', 'must be a string');

  const cidrText = raw.podcidr ?? raw.podCIDR;
  if (typeof cidrText !== 'string') throw invalidConfig('podcidr', 'is required (an IPv4 CIDR such as 10.244.1.0/24)');
  let podCidr: Cidr;
  try {
    podCidr = parseCidr(cidrText);
  } catch (e) {
    throw invalidConfig('podcidr', `is not an IPv4 CIDR: ${(e as Error).message}`);
  }
  if (podCidr.prefix < 8 || podCidr.prefix > 29) throw invalidConfig('podcidr', 'prefix length must be between 8 and 29');

  const bridge = optString(raw, 'bridge') ?? DEFAULTS.bridge;
  if (!validIfname(bridge)) throw invalidConfig('bridge', 'must be an interface name of at most 15 characters');

  let mtu: number | undefined;
  if (raw.mtu !== undefined && raw.mtu !== null) {
    if (typeof raw.mtu !== 'number' || !Number.isInteger(raw.mtu) || raw.mtu < 576 || raw.mtu > 65535)
      throw invalidConfig('mtu', 'must be an integer between 576 and 65535');
    mtu = raw.mtu;
  }

  const podDevice = optString(raw, 'podDevice') ?? 'veth';
  if (podDevice !== 'veth' && podDevice !== 'netkit') throw invalidConfig('podDevice', 'must be "veth" or "netkit"');

  const np = raw.networkPolicy;
  if (np !== undefined && np !== null && typeof np !== 'boolean') throw invalidConfig('networkPolicy', 'must be true or false');

  const prev = raw.prevResult;
  if (prev !== undefined && prev !== null && (typeof prev !== 'object' || Array.isArray(prev)))
    throw invalidConfig('prevResult', 'must be an object');

  let validAttachments: NetConf['validAttachments'];
  const va = raw['cni.dev/valid-attachments'];
  if (va !== undefined && va !== null) {
    if (!Array.isArray(va)) throw invalidConfig('cni.dev/valid-attachments', 'must be a list');
    validAttachments = va.map((a, i) => {
      const o = a as { containerID?: unknown; ifname?: unknown } | null;
      if (!o || typeof o !== 'object' || typeof o.containerID !== 'string' || typeof o.ifname !== 'string')
        throw invalidConfig('cni.dev/valid-attachments', `entry ${i} needs string containerID and ifname`);
      return { containerId: o.containerID, ifname: o.ifname };
    });
  }

  return {
    cniVersion,
    name,
    type: typeof type === 'string' ? type : 'bvcni',
    podCidr,
    podCidrText: cidrText,
    bridge,
    mtu,
    dataDir: absPath(raw, 'dataDir', DEFAULTS.dataDir),
    pinDir: absPath(raw, 'pinDir', DEFAULTS.pinDir),
    podDevice,
    networkPolicy: np === true,
    prevResult: (prev ?? undefined) as Record<string, unknown> | undefined,
    validAttachments,
    raw,
  };
}

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const PORT_FIELD = 'runtimeConfig.portMappings';

function port(v: unknown, i: number, name: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535)
    throw invalidConfig(PORT_FIELD, `entry ${i}: ${name} must be an integer between 1 and 65535`);
  return v;
}

/**
 * The runtime's port mappings (capability "portMappings"), validated: ports
 * 1-65535, protocol tcp, udp or sctp (default tcp), hostIP absent, "" or
 * 0.0.0.0 (the node IP) or an IPv4 address (that it is the node's, add.ts
 * checks). IPv6 mappings are skipped: pods have no IPv6 address. Parsed on
 * demand, by ADD and CHECK only: DEL must not fail on what it does not need.
 */
export function parsePortMappings(conf: NetConf): HostPortMapping[] {
  const rc = conf.raw.runtimeConfig;
  if (rc === undefined || rc === null) return [];
  if (typeof rc !== 'object' || Array.isArray(rc)) throw invalidConfig('runtimeConfig', 'must be an object');
  const list = (rc as Record<string, unknown>).portMappings;
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw invalidConfig(PORT_FIELD, 'must be a list');
  const out: HostPortMapping[] = [];
  const seen = new Set<string>();
  list.forEach((e: unknown, i) => {
    if (e === null || typeof e !== 'object' || Array.isArray(e)) throw invalidConfig(PORT_FIELD, `entry ${i} must be an object`);
    const o = e as Record<string, unknown>;
    const hostPort = port(o.hostPort, i, 'hostPort');
    const containerPort = port(o.containerPort, i, 'containerPort');
    const p = o.protocol ?? 'tcp';
    if (typeof p !== 'string' || !['tcp', 'udp', 'sctp', ''].includes(p.toLowerCase()))
      throw invalidConfig(PORT_FIELD, `entry ${i}: protocol must be tcp, udp or sctp`);
    const protocol = (p.toLowerCase() || 'tcp') as HostPortProtocol;
    const h = o.hostIP ?? '';
    if (typeof h !== 'string') throw invalidConfig(PORT_FIELD, `entry ${i}: hostIP must be a string`);
    if (h.includes(':')) return; // IPv6: pods are IPv4-only, as portmap skips a mapping of the other family
    if (h !== '' && !IPV4_RE.test(h)) throw invalidConfig(PORT_FIELD, `entry ${i}: hostIP ${JSON.stringify(h.slice(0, 64))} is not an IPv4 address`);
    const hostIp = h === '' ? '0.0.0.0' : h;
    if (protocol === 'sctp' && hostPort !== containerPort)
      throw invalidConfig(PORT_FIELD, `entry ${i}: an SCTP hostPort must equal its containerPort (bvcni cannot rewrite SCTP ports: their CRC32c would need recomputing)`);
    const id = `${hostIp}:${hostPort}/${protocol}`;
    if (seen.has(id)) throw invalidConfig(PORT_FIELD, `entry ${i}: ${id} is mapped twice`);
    seen.add(id);
    out.push({ hostIp, hostPort, containerPort, protocol });
  });
  return out;
}
