// The node's dataplane: devices, sysctls, the cluster route, programs and the
// config map. Idempotent and restartable: every step adopts what exists, so a
// new bvcnid (or an upgrade) applies only the difference and never resets flows.
import { existsSync, readdirSync, renameSync, unlinkSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  BpfObject,
  BpfProgram,
  attachCgroupPinned,
  netnsCookie,
  u32,
  u64,
  attachTc,
  detachTc,
  maybeInNetns,
  type TcAttachment,
  type TcDirection,
} from '../../loader/index.js';
import { run } from '../common/exec.js';
import { ConfigFlags, type ConfigValue } from './abi.js';
import { cidrContains, cidrsOverlap, firstHost, formatCidr, parseCidr, type Cidr } from '../common/cidr.js';
import { attachPodProgram } from './endpoint.js';
import { isolateBridgePort } from '../netlink/rtnl.js';
import { NetlinkSocket, socketIn } from '../netlink/socket.js';
import { cgroup2Root, DEFAULT_PIN_DIR, OBJECTS, Programs, SockProgram, TC_HANDLE, TC_PRIORITY, programPin, type ProgramSlot } from './layout.js';
import { openConfigMap, openDataplaneMaps, readDataplaneConfig, type DataplaneMaps } from './maps.js';
import { bufferToMac, intToIpv4, ipv4ToInt } from '../../loader/codec.js';
import { currentProgramDir } from './features.js';

export interface NodeDataplaneConfig {
  pinDir: string;
  /** The program set's directory (features.ts, programSet()); default: the one this kernel loads now. */
  objDir?: string;
  /** Path of the node's network namespace; default: the current one. */
  netns?: string;
  bridge: string;
  vxlanDev: string;
  vxlanPort: number;
  vni: number;
  uplink: string;
  nodeIp: string;
  podCidr: string;
  clusterCidr: string;
  /** Pod/bridge/VXLAN MTU; default uplink MTU - 50 (the VXLAN overhead). */
  mtu?: number;
  natPortMin?: number;
  natPortMax?: number;
  /** Masquerade traffic leaving the cluster CIDR (default true). */
  masquerade?: boolean;
  /**
   * The Service ClusterIP range: pod traffic to it goes up the host stack for
   * kube-proxy to translate, never masqueraded. '' disables the pass-through.
   */
  serviceCidr?: string;
  /**
   * The cgroup v2 directory whose sockets (those of the node's namespace) reach
   * hostPorts through bpf_sock.c: default the cgroup v2 root as mounted (/sys/fs/cgroup,
   * or /sys/fs/cgroup/unified on a hybrid host). '' attaches nothing.
   */
  cgroup?: string;
}

export const NodeDefaults = {
  pinDir: DEFAULT_PIN_DIR,
  bridge: 'cni0',
  vxlanDev: 'vxlan.1',
  vxlanPort: 8472,
  vni: 1,
  clusterCidr: '10.244.0.0/16',
  /** kubeadm's and kube-apiserver's default --service-cluster-ip-range. */
  serviceCidr: '10.96.0.0/12',
  /** Above Linux's default ephemeral range (32768-60999), and reserved anyway. */
  natPortMin: 61000,
  natPortMax: 65000,
} as const;

export const VXLAN_OVERHEAD = 50;

export interface NodeAttachments {
  uplinkIngress: TcAttachment;
  overlayIngress: TcAttachment;
  overlayEgress: TcAttachment;
}

export interface NodeDataplane {
  cfg: NodeDataplaneConfig;
  maps: DataplaneMaps;
  mtu: number;
  gatewayIp: string;
  gatewayMac: string;
  attachments: NodeAttachments;
  /** Program ids now attached, by slot. */
  programIds: Record<ProgramSlot, number>;
  /** Endpoints whose veth got the (new) pod program re-attached. */
  reattached: number;
  /** The node's own sockets reach hostPorts (bpf_sock.c attached), or why not: the rest works without it. */
  nodeHostPorts: { attached: true } | { attached: false; reason: string };
  /** Releases our file descriptors; the dataplane stays in place. */
  close(): void;
}

interface LinkInfo {
  ifindex: number;
  mtu: number;
  address: string;
  linkinfo?: { info_kind?: string; info_data?: { external?: boolean; port?: number } };
}

/**
 * A stable locally administered MAC derived from an IPv4 address (0a:58 +
 * address, as OVN does), so the gateway MAC survives bridge re-creation and
 * never follows a port's MAC.
 */
export function macForIp(ip: string): string {
  const n = ipv4ToInt(ip);
  return bufferToMac(Buffer.from([0x0a, 0x58, (n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]));
}

async function linkShow(name: string, netns?: string): Promise<LinkInfo | undefined> {
  const r = await run(['ip', '-d', '-j', 'link', 'show', 'dev', name], { netns, allowFail: true });
  if (r.code !== 0) return undefined;
  return (JSON.parse(r.stdout) as LinkInfo[])[0];
}

interface Validated {
  pod: Cidr;
  cluster: Cidr;
  service?: Cidr;
  natMin: number;
  natMax: number;
}

function validate(cfg: NodeDataplaneConfig): Validated {
  ipv4ToInt(cfg.nodeIp);
  const pod = parseCidr(cfg.podCidr, { what: 'podCidr', strict: true });
  const cluster = parseCidr(cfg.clusterCidr, { what: 'clusterCidr', strict: true });
  if (!cidrContains(cluster, pod)) throw new TypeError(`podCidr ${cfg.podCidr} is not inside clusterCidr ${cfg.clusterCidr}`);
  const serviceText = cfg.serviceCidr ?? NodeDefaults.serviceCidr;
  const service = serviceText ? parseCidr(serviceText, { what: 'serviceCidr', strict: true }) : undefined;
  if (service && cidrsOverlap(service, cluster)) {
    throw new TypeError(`serviceCidr ${serviceText} overlaps clusterCidr ${cfg.clusterCidr}`);
  }
  firstHost(pod);
  const natMin = cfg.natPortMin ?? NodeDefaults.natPortMin;
  const natMax = cfg.natPortMax ?? NodeDefaults.natPortMax;
  if (!(natMin >= 1024 && natMax <= 65535 && natMin <= natMax)) {
    throw new TypeError(`NAT port range ${natMin}-${natMax} must lie within 1024-65535`);
  }
  if (!Number.isInteger(cfg.vni) || cfg.vni < 1 || cfg.vni > 0xffffff) throw new TypeError(`bad VNI ${cfg.vni}`);
  if (!Number.isInteger(cfg.vxlanPort) || cfg.vxlanPort < 1 || cfg.vxlanPort > 65535) {
    throw new TypeError(`bad VXLAN port ${cfg.vxlanPort}`);
  }
  for (const [k, v] of [['bridge', cfg.bridge], ['vxlanDev', cfg.vxlanDev], ['uplink', cfg.uplink]] as const) {
    if (!/^[A-Za-z0-9_.-]{1,15}$/.test(v)) throw new TypeError(`${k}: bad interface name ${JSON.stringify(v)}`);
  }
  return { pod, cluster, service, natMin, natMax };
}

async function sysctl(netns: string | undefined, key: string, value: string): Promise<void> {
  // Read first: in the DaemonSet /proc/sys is read-only (unprivileged container), so
  // values its init container already set must not be written again.
  const cur = await run(['sysctl', '-n', key], { netns, allowFail: true });
  if (cur.code === 0 && cur.stdout.trim() === value) return;
  await run(['sysctl', '-q', '-w', `${key}=${value}`], { netns });
}

/** Adds our NAT range to ip_local_reserved_ports (keeping what is there), so node sockets never pick those ports. */
async function reservePorts(netns: string | undefined, min: number, max: number): Promise<void> {
  const cur = (await run(['sysctl', '-n', 'net.ipv4.ip_local_reserved_ports'], { netns })).stdout.trim();
  // The kernel reports the union, merged ("61000-65535" after adding 61000-65000 to
  // 65001-65535): look for coverage, not for our own string.
  if (portsCovered(cur, min, max)) return;
  await sysctl(netns, 'net.ipv4.ip_local_reserved_ports', cur ? `${cur},${min}-${max}` : `${min}-${max}`);
}

/** Whether every port of min..max is in a ip_local_reserved_ports list ("1,3-5,…"). */
export function portsCovered(list: string, min: number, max: number): boolean {
  const ranges = list
    .split(',')
    .filter(Boolean)
    .map((r) => r.split('-').map(Number))
    .map(([lo, hi]) => [lo!, hi ?? lo!] as const)
    .sort((a, b) => a[0] - b[0]);
  let next = min;
  for (const [lo, hi] of ranges) {
    if (lo > next) break;
    if (hi >= next) next = hi + 1;
    if (next > max) return true;
  }
  return next > max;
}

async function ensureBridge(cfg: NodeDataplaneConfig, gw: string, prefix: number, mtu: number): Promise<LinkInfo> {
  const ns = cfg.netns;
  let link = await linkShow(cfg.bridge, ns);
  if (link && link.linkinfo?.info_kind !== 'bridge') throw new Error(`${cfg.bridge} exists and is not a bridge`);
  if (!link) await run(['ip', 'link', 'add', cfg.bridge, 'type', 'bridge'], { netns: ns });
  // An explicit MAC: otherwise the bridge takes its lowest port's MAC and the gateway MAC changes under the pods.
  await run(['ip', 'link', 'set', cfg.bridge, 'address', macForIp(gw), 'mtu', String(mtu), 'up'], { netns: ns });
  await run(['ip', 'addr', 'replace', `${gw}/${prefix}`, 'dev', cfg.bridge], { netns: ns });
  link = await linkShow(cfg.bridge, ns);
  if (!link) throw new Error(`bridge ${cfg.bridge} vanished`);
  return link;
}

async function ensureVxlan(cfg: NodeDataplaneConfig, mtu: number): Promise<LinkInfo> {
  const ns = cfg.netns;
  let link = await linkShow(cfg.vxlanDev, ns);
  const ok = link?.linkinfo?.info_kind === 'vxlan' && link.linkinfo.info_data?.external === true && link.linkinfo.info_data.port === cfg.vxlanPort;
  if (link && !ok) {
    // Wrong kind or port: only a device we would have created carries this name; replace it.
    await run(['ip', 'link', 'del', cfg.vxlanDev], { netns: ns });
    link = undefined;
  }
  if (!link) {
    await run(['ip', 'link', 'add', cfg.vxlanDev, 'type', 'vxlan', 'external', 'dstport', String(cfg.vxlanPort), 'nolearning'], { netns: ns });
  }
  // No IPv6 address on the device, so no router solicitation or MLD goes into the overlay: addrgenmode
  // (netlink) works where /proc/sys is read-only, as in the DaemonSet, and must precede `up`, which
  // makes the link-local address; a flush takes one an earlier start left. disable_ipv6 where /proc/sys
  // is writable also stops the device's IPv6 receive.
  await run(['ip', 'link', 'set', cfg.vxlanDev, 'addrgenmode', 'none'], { netns: ns });
  // NOARP: the node routes the cluster CIDR here and the egress program picks the remote node; no neighbour entries.
  await run(['ip', 'link', 'set', cfg.vxlanDev, 'mtu', String(mtu), 'arp', 'off', 'up'], { netns: ns });
  await run(['ip', '-6', 'addr', 'flush', 'dev', cfg.vxlanDev], { netns: ns });
  await run(['sysctl', '-q', '-w', `net.ipv6.conf.${cfg.vxlanDev.replace(/\./g, '/')}.disable_ipv6=1`], { netns: ns, allowFail: true });
  link = await linkShow(cfg.vxlanDev, ns);
  if (!link) throw new Error(`VXLAN device ${cfg.vxlanDev} vanished`);
  return link;
}

/**
 * Pins prog at path, replacing an older pin atomically where bpffs allows
 * (pin beside, then rename), so a concurrent plugin never sees no program.
 */
function pinReplacing(prog: BpfProgram, path: string): void {
  const tmp = `${path}_new`; // bpffs refuses names with a dot
  unlinkIfExists(tmp);
  prog.pin(tmp);
  try {
    renameSync(tmp, path);
  } catch {
    unlinkIfExists(path);
    renameSync(tmp, path);
  }
}

/** Loads the three objects (adopting pinned maps), pins their programs. */
function loadPrograms(pinDir: string, objDir: string): Map<ProgramSlot, BpfProgram> {
  const progs = new Map<ProgramSlot, BpfProgram>();
  try {
    for (const file of OBJECTS) {
      using obj = BpfObject.open(join(objDir, file), { pinDir });
      obj.load();
      for (const [slot, p] of Object.entries(Programs) as [ProgramSlot, (typeof Programs)[ProgramSlot]][]) {
        if (p.object !== file) continue;
        const prog = obj.program(p.program);
        progs.set(slot, prog);
        pinReplacing(prog, programPin(pinDir, slot));
      }
    }
    return progs;
  } catch (e) {
    progs.forEach((p) => p.close());
    throw e;
  }
}

/**
 * hostPorts for the node's own processes (bpf/bpf_sock.c): the program learns
 * the node namespace's cookie, then goes into the pinned cgroup link (created
 * on first use; replaced in place later, as the tc programs are). Best effort:
 * without it (no cgroup v2, a kernel below 5.14 for the cookie, a container
 * without the host's cgroup root) everything else works, and the caller says so.
 */
function attachSockProgram(cfg: NodeDataplaneConfig, objDir: string): NodeDataplane['nodeHostPorts'] {
  const cgroup = cfg.cgroup ?? cgroup2Root();
  if (!cgroup) return { attached: false, reason: cfg.cgroup === '' ? 'no cgroup configured' : 'no cgroup v2 hierarchy mounted' };
  try {
    using obj = BpfObject.open(join(objDir, SockProgram.object), { pinDir: cfg.pinDir });
    obj.load();
    using netnsMap = obj.map(SockProgram.netnsMap, u32, u64);
    netnsMap.update(0, netnsCookie(cfg.netns));
    using prog = obj.program(SockProgram.program);
    attachCgroupPinned(prog, { cgroup, type: 'inet4Connect', linkPin: join(cfg.pinDir, SockProgram.linkPin) });
    return { attached: true };
  } catch (e) {
    return { attached: false, reason: (e as Error).message };
  }
}

function attach(netns: string | undefined, ifindex: number, direction: TcDirection, prog: BpfProgram): TcAttachment {
  return attachTc({ ifindex, netns, direction, program: prog, handle: TC_HANDLE, priority: TC_PRIORITY });
}

/**
 * The node's uplink: the interface that holds its InternalIP, else the one of
 * the default route. On hosts with several NICs (a VM with a NAT adapter and
 * a private network, say) the default route often uses another interface
 * than the one the cluster talks over.
 */
export async function findUplink(nodeIp: string, netns?: string): Promise<string> {
  const addrs = await run(['ip', '-j', '-4', 'addr', 'show'], { netns, allowFail: true });
  const links = JSON.parse(addrs.stdout || '[]') as { ifname: string; addr_info?: { local?: string }[] }[];
  const holder = links.find((l) => l.addr_info?.some((a) => a.local === nodeIp))?.ifname;
  if (holder) return holder;
  const routes = await run(['ip', '-j', '-4', 'route', 'show', 'default'], { netns, allowFail: true });
  const dev = (JSON.parse(routes.stdout || '[]') as { dev?: string }[]).find((r) => r.dev)?.dev;
  if (!dev) throw new Error(`no interface holds ${nodeIp} and there is no default route: pass --iface`);
  return dev;
}

export async function ensureNodeDataplane(cfg: NodeDataplaneConfig): Promise<NodeDataplane> {
  const v = validate(cfg);
  const ns = cfg.netns;
  // Not told (the simulator, tests): the set this kernel loads now (features.ts, programSet()).
  const objDir = cfg.objDir ?? (await currentProgramDir());
  for (const f of OBJECTS) if (!existsSync(join(objDir, f))) throw new Error(`missing BPF object ${join(objDir, f)}`);

  const uplink = await linkShow(cfg.uplink, ns);
  if (!uplink) throw new Error(`uplink ${cfg.uplink} not found${ns ? ` in ${ns}` : ''}`);
  const mtu = cfg.mtu ?? uplink.mtu - VXLAN_OVERHEAD;
  if (mtu < 576 || mtu > uplink.mtu) throw new TypeError(`MTU ${mtu} must be between 576 and the uplink's ${uplink.mtu}`);
  const gw = firstHost(v.pod);

  await sysctl(ns, 'net.ipv4.ip_forward', '1');
  await reservePorts(ns, v.natMin, v.natMax);
  const bridge = await ensureBridge(cfg, gw, v.pod.prefix, mtu);
  const vxlan = await ensureVxlan(cfg, mtu);
  for (const dev of [cfg.bridge, cfg.vxlanDev]) {
    await sysctl(ns, `net.ipv4.conf.${dev.replace(/\./g, '/')}.rp_filter`, '0');
  }
  // One route for the whole cluster CIDR (the local podCIDR's connected route on the bridge is more specific).
  await run(['ip', 'route', 'replace', formatCidr(v.cluster), 'dev', cfg.vxlanDev, 'src', cfg.nodeIp], { netns: ns });
  // The node talks to its own pods from its node IP (what kubelet probes and host-network pods should show), not the gateway's.
  await run(['ip', 'route', 'replace', formatCidr(v.pod), 'dev', cfg.bridge, 'proto', 'kernel', 'scope', 'link', 'src', cfg.nodeIp], { netns: ns });

  const progs = loadPrograms(cfg.pinDir, objDir);
  let maps: DataplaneMaps | undefined;
  try {
    const attachments: NodeAttachments = {
      uplinkIngress: attach(ns, uplink.ifindex, 'ingress', progs.get('uplinkIngress')!),
      overlayIngress: attach(ns, vxlan.ifindex, 'ingress', progs.get('overlayIngress')!),
      overlayEgress: attach(ns, vxlan.ifindex, 'egress', progs.get('overlayEgress')!),
    };
    maps = openDataplaneMaps(cfg.pinDir);

    // Pods registered before an upgrade get the new program in place (tc replace: no flow reset),
    // and their bridge ports the MAC pinning a pod of this release gets at ADD (bpf/lib/l2.h):
    // a pod of an earlier release would otherwise keep a port that learns and floods.
    let reattached = 0;
    const rtnl = ns ? socketIn(ns) : new NetlinkSocket();
    try {
      for (const [key, ep] of maps.endpoints.entries()) {
        try {
          attachPodProgram(cfg.pinDir, { ifindex: ep.ifindex, netns: ns });
          isolateBridgePort(rtnl, { index: ep.ifindex, mac: ep.pod_mac });
          reattached++;
        } catch {
          // Its veth is gone: the plugin's DEL or GC removes the entry.
          void key;
        }
      }
    } finally {
      rtnl.close();
    }

    const config: ConfigValue = {
      node_ip: cfg.nodeIp,
      pod_cidr: intToIpv4(v.pod.addr),
      pod_prefix: v.pod.prefix,
      cluster_cidr: intToIpv4(v.cluster.addr),
      cluster_prefix: v.cluster.prefix,
      vxlan_ifindex: vxlan.ifindex,
      uplink_ifindex: uplink.ifindex,
      bridge_ifindex: bridge.ifindex,
      vni: cfg.vni,
      nat_port_min: v.natMin,
      nat_port_max: v.natMax,
      bridge_mac: bridge.address,
      uplink_mac: uplink.address,
      mtu,
      flags: ConfigFlags.ready | (cfg.masquerade === false ? 0 : ConfigFlags.masquerade),
      service_cidr: intToIpv4(v.service?.addr ?? 0),
      service_prefix: v.service?.prefix ?? 0,
      vxlan_port: cfg.vxlanPort,
    };
    // Last: READY is what lets the programs act.
    maps.config.update(0, config);
    const nodeHostPorts = attachSockProgram(cfg, objDir);

    const programIds = Object.fromEntries([...progs].map(([slot, p]) => [slot, p.id])) as Record<ProgramSlot, number>;
    progs.forEach((p) => p.close());
    const m = maps;
    return {
      cfg,
      maps: m,
      mtu,
      gatewayIp: gw,
      gatewayMac: bridge.address,
      attachments,
      programIds,
      reattached,
      nodeHostPorts,
      close: () => m.close(),
    };
  } catch (e) {
    progs.forEach((p) => p.close());
    maps?.close();
    throw e;
  }
}

/** True when the config map says READY and every program is pinned. */
export function dataplaneReady(pinDir: string): boolean {
  try {
    for (const slot of Object.keys(Programs) as ProgramSlot[]) if (!existsSync(programPin(pinDir, slot))) return false;
    using config = openConfigMap(pinDir);
    const c = config.lookup(0);
    return !!c && (c.flags & ConfigFlags.ready) !== 0;
  } catch {
    return false;
  }
}

/**
 * Uninstall: detach everything we attached, delete the bridge and the VXLAN
 * device (their filters go with them), unpin every map and program. Tolerant
 * of any part already gone.
 */
/** Uninstall. Without `uplink`, the one the dataplane attached to, as its pinned config records it. */
export async function removeNodeDataplane(
  cfg: Pick<NodeDataplaneConfig, 'pinDir' | 'netns' | 'bridge' | 'vxlanDev'> & { uplink?: string },
): Promise<void> {
  const ns = cfg.netns;
  const errors: unknown[] = [];
  const attempt = (fn: () => void): void => {
    try {
      fn();
    } catch (e) {
      errors.push(e);
    }
  };
  // Pod veths keep their filter otherwise (with a dangling program until they die).
  if (existsSync(cfg.pinDir)) {
    attempt(() => {
      using maps = openDataplaneMaps(cfg.pinDir);
      for (const [, ep] of maps.endpoints.entries()) {
        try {
          detachTc({ ifindex: ep.ifindex, netns: ns, direction: 'ingress', handle: TC_HANDLE, priority: TC_PRIORITY });
        } catch {
          // veth already gone
        }
      }
    });
  }
  const uplinkIndex = cfg.uplink ? undefined : readDataplaneConfig(cfg.pinDir)?.uplink_ifindex;
  if (cfg.uplink || uplinkIndex) {
    const uplink = cfg.uplink ? { ifname: cfg.uplink } : { ifindex: uplinkIndex };
    attempt(() => detachTc({ ...uplink, netns: ns, direction: 'ingress', handle: TC_HANDLE, priority: TC_PRIORITY }));
  }
  for (const dev of [cfg.vxlanDev, cfg.bridge]) {
    const r = await run(['ip', 'link', 'del', dev], { netns: ns, allowFail: true });
    if (r.code !== 0 && !/Cannot find device|does not exist/i.test(r.stderr)) errors.push(new Error(`ip link del ${dev}: ${r.stderr.trim()}`));
  }
  attempt(() => unpinAll(cfg.pinDir));
  if (errors.length) throw new AggregateError(errors, `removeNodeDataplane: ${errors.length} step(s) failed: ${String(errors[0])}`);
}

function unlinkIfExists(path: string): void {
  // Not rmSync: its lstat gets EPERM on bpffs for a missing file.
  if (existsSync(path)) unlinkSync(path);
}

function unpinAll(pinDir: string): void {
  if (!existsSync(pinDir)) return;
  for (const name of readdirSync(pinDir)) unlinkSync(join(pinDir, name));
  rmdirSync(pinDir);
}


