// The node's dataplane: devices, sysctls, the cluster route, programs and the
// config map. Idempotent and restartable: every step adopts what exists, so a
// new bvcnid (or an upgrade) applies only the difference and never resets flows.
import { existsSync } from 'node:fs';
import { pinReplacing, unlinkIfExists, unpinTree } from './pins.js';
import { migratePinnedMaps, type MigrationReport, type MigrationStep } from './migrate.js';
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
  queryNetkit,
  queryTc,
  type TcAttachment,
  type TcDirection,
} from '../../loader/index.js';
import { Defaults, VXLAN_OVERHEAD } from '../common/defaults.js';
import { ConfigFlags, MapName, type ConfigValue } from './abi.js';
import { cidrContains, cidrsOverlap, firstHost, parseCidr, type Cidr } from '../common/cidr.js';
import { attachPodProgram, detachPodProgram, detachToPodProgram, endpointDevice, listEndpoints } from './endpoint.js';
import {
  createVxlan,
  defaultRouteLink,
  deleteLink,
  disableIpv6Addresses,
  flushAddrs,
  getLink,
  getLinkByIndex,
  isolateBridgePort,
  listAddrs,
  listLinks,
  replaceRoute,
  setLink,
  setProxyArp,
  type Link,
} from '../netlink/rtnl.js';
import { ensureBridge as ensureBridgeLink, macForIp } from '../netlink/bridge.js';
import { ensureSysctl, readSysctl } from '../netlink/sysctl.js';
import { NetlinkSocket, socketIn } from '../netlink/socket.js';
import { AF_INET6, RTPROT_KERNEL } from '../netlink/message.js';
import { cgroup2Root, OBJECTS, Programs, REQUIRED_SLOTS, SockProgram, TC_HANDLE, TC_PRIORITY, programPin, type ProgramSlot } from './layout.js';
import { mapPin, openConfigMap, openDataplaneMaps, readDataplaneConfig, type DataplaneMaps } from './maps.js';
import { intToIpv4, ipv4ToInt } from '../../loader/codec.js';
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
  /**
   * One MTU for pods, bridge and VXLAN (as flannel's). Default: the overlay's,
   * uplink MTU - 50 (the VXLAN overhead), only where the tunnel is (the VXLAN
   * device, and pods' routes to what crosses it); pods and the bridge get the uplink's.
   */
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
  /** Called after each step of a map migration (tests kill bvcnid there). */
  onMigrationStep?: (step: MigrationStep) => void;
}

export interface NodeAttachments {
  uplinkIngress: TcAttachment;
  overlayIngress: TcAttachment;
  overlayEgress: TcAttachment;
}

export interface NodeDataplane {
  cfg: NodeDataplaneConfig;
  maps: DataplaneMaps;
  /** What pods and the bridge get. */
  mtu: number;
  /** The VXLAN device's, and the config map's: what pods' routes through the tunnel carry. */
  overlayMtu: number;
  gatewayIp: string;
  gatewayMac: string;
  attachments: NodeAttachments;
  /** Program ids now attached, by slot. */
  programIds: Record<ProgramSlot, number>;
  /** Endpoints whose veth got the (new) pod program re-attached. */
  reattached: number;
  /** The node's own sockets reach hostPorts (bpf_sock.c attached), or why not: the rest works without it. */
  nodeHostPorts: { attached: true } | { attached: false; reason: string };
  /** What the map migration did (nothing converted when every layout was already this release's). */
  migration: MigrationReport;
  /** What set-up changed that an operator should hear about (a device recreated, the VNI changed). */
  notes: string[];
  /** Releases our file descriptors; the dataplane stays in place. */
  close(): void;
}

/** Re-exported: the rule lives with the one bridge-creation path (src/netlink/bridge.ts). */
export { macForIp };

/** An rtnetlink socket in the node's namespace (or this one). */
function openSocket(netns?: string): NetlinkSocket {
  return netns ? socketIn(netns) : new NetlinkSocket();
}

/** VXLAN's VNI field is 24 bits (RFC 7348); 0 is left unused, as flannel and the kernel's own default do. */
export const MAX_VNI = 0xffffff;

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
  const serviceText = cfg.serviceCidr ?? Defaults.serviceCidr;
  const service = serviceText ? parseCidr(serviceText, { what: 'serviceCidr', strict: true }) : undefined;
  if (service && cidrsOverlap(service, cluster)) {
    throw new TypeError(`serviceCidr ${serviceText} overlaps clusterCidr ${cfg.clusterCidr}`);
  }
  firstHost(pod);
  const natMin = cfg.natPortMin ?? Defaults.natPortMin;
  const natMax = cfg.natPortMax ?? Defaults.natPortMax;
  if (!(natMin >= 1024 && natMax <= 65535 && natMin <= natMax)) {
    throw new TypeError(`NAT port range ${natMin}-${natMax} must lie within 1024-65535`);
  }
  if (!Number.isInteger(cfg.vni) || cfg.vni < 1 || cfg.vni > MAX_VNI)
    throw new TypeError(`VNI ${cfg.vni} is out of range: a VXLAN network identifier is 24 bits, 1..${MAX_VNI}`);
  if (!Number.isInteger(cfg.vxlanPort) || cfg.vxlanPort < 1 || cfg.vxlanPort > 65535) {
    throw new TypeError(`bad VXLAN port ${cfg.vxlanPort}`);
  }
  for (const [k, v] of [['bridge', cfg.bridge], ['vxlanDev', cfg.vxlanDev], ['uplink', cfg.uplink]] as const) {
    if (!/^[A-Za-z0-9_.-]{1,15}$/.test(v)) throw new TypeError(`${k}: bad interface name ${JSON.stringify(v)}`);
  }
  return { pod, cluster, service, natMin, natMax };
}

/** Adds our NAT range to ip_local_reserved_ports (keeping what is there), so node sockets never pick those ports. */
function reservePorts(netns: string | undefined, min: number, max: number): void {
  const cur = readSysctl('net/ipv4/ip_local_reserved_ports', netns);
  // The kernel reports the union, merged ("61000-65535" after adding 61000-65000 to
  // 65001-65535): look for coverage, not for our own string.
  if (portsCovered(cur, min, max)) return;
  ensureSysctl('net/ipv4/ip_local_reserved_ports', cur ? `${cur},${min}-${max}` : `${min}-${max}`, netns);
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

/**
 * The VXLAN device: collect_md ("external"), so it holds no VNI of its own
 * (the kernel refuses a VNI on an external device): the programs put cfg.vni
 * in every packet's header from the config map. A device of ours under the
 * name with another port, or a device with a fixed VNI there, is recreated,
 * as flannel recreates a device "with incompatible configuration" (the name
 * is bvcnid's, --vxlan-dev, and what holds it is what an earlier or
 * misconfigured run left; refusing would keep the node NotReady for what
 * bvcnid can put right itself); `notes` says what was replaced. Another
 * device already up on the port is not ours to delete: the kernel gives a
 * UDP port to one VXLAN device per namespace, so that is a clear error.
 */
function ensureVxlan(s: NetlinkSocket, cfg: NodeDataplaneConfig, mtu: number, notes: string[]): Link {
  let link = getLink(s, cfg.vxlanDev);
  const ok = link?.kind === 'vxlan' && link.vxlan?.external === true && link.vxlan.port === cfg.vxlanPort;
  if (link && !ok) {
    notes.push(`${cfg.vxlanDev} existed as ${describeLink(link)}; recreated as an external (collect_md) VXLAN device on UDP port ${cfg.vxlanPort}`);
    deleteLink(s, cfg.vxlanDev);
    link = undefined;
  }
  const clash = listLinks(s).find((l) => l.kind === 'vxlan' && l.name !== cfg.vxlanDev && l.up && l.vxlan?.port === cfg.vxlanPort);
  if (clash) {
    throw new Error(
      `UDP port ${cfg.vxlanPort} is taken by ${describeLink(clash)} "${clash.name}": the kernel gives a port to one VXLAN device per namespace, ` +
        `and bvcni needs its own (${cfg.vxlanDev}, external, VNI ${cfg.vni} in each packet). Remove that device or give bvcnid another --vxlan-port (every node the same)`,
    );
  }
  if (!link) {
    createVxlan(s, { name: cfg.vxlanDev, port: cfg.vxlanPort });
    link = getLink(s, cfg.vxlanDev);
    if (!link) throw new Error(`VXLAN device ${cfg.vxlanDev} vanished after creation`);
  }
  // No IPv6 address on the device, so no router solicitation or MLD goes into the overlay: addrgenmode
  // (netlink) works where /proc/sys is read-only, as in the DaemonSet, and must precede `up`, which
  // makes the link-local address; a flush takes one an earlier start left. disable_ipv6 where /proc/sys
  // is writable also stops the device's IPv6 receive.
  disableIpv6Addresses(s, link.index);
  // NOARP: the node routes the cluster CIDR here and the egress program picks the remote node; no neighbour entries.
  setLink(s, link.index, { mtu, noarp: true, up: true });
  flushAddrs(s, link.index, AF_INET6);
  try {
    ensureSysctl(`net/ipv6/conf/${cfg.vxlanDev}/disable_ipv6`, '1', cfg.netns);
  } catch {
    // Read-only /proc/sys (the DaemonSet) or a kernel without IPv6: addrgenmode above suffices.
  }
  const now = getLinkByIndex(s, link.index);
  if (!now) throw new Error(`VXLAN device ${cfg.vxlanDev} vanished`);
  return now;
}

/** A device as the notes and errors name it: its kind, and for VXLAN its mode, VNI and port. */
function describeLink(l: Link): string {
  if (l.kind !== 'vxlan' || !l.vxlan) return `a ${l.kind ?? 'plain'} device`;
  return `a VXLAN device ${l.vxlan.external ? 'in external mode' : `with VNI ${l.vxlan.vni}`} on UDP port ${l.vxlan.port}`;
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
        // Replaced atomically: a concurrent plugin never finds no program.
        pinReplacing((at) => prog.pin(at), programPin(pinDir, slot));
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
  using s = openSocket(netns);
  const holder = listAddrs(s).find((a) => a.ip === nodeIp);
  const link = holder ? getLinkByIndex(s, holder.index) : defaultRouteLink(s);
  if (!link) throw new Error(`no interface holds ${nodeIp} and there is no default route: pass --iface`);
  return link.name;
}

export interface NodeLinks {
  uplink: Link;
  bridge: Link;
  vxlan: Link;
  /** Pods' and the bridge's. */
  mtu: number;
  /** The VXLAN device's. */
  overlayMtu: number;
  gatewayIp: string;
  /** What set-up changed that an operator should hear about (a device replaced). */
  notes: string[];
}

/**
 * The node's devices, addresses, routes and sysctls (everything but the
 * programs and maps), through rtnetlink and /proc/sys. Idempotent.
 */
export function ensureNodeLinks(cfg: NodeDataplaneConfig, rtnl?: NetlinkSocket): NodeLinks {
  const v = validate(cfg);
  const ns = cfg.netns;
  using own = rtnl ? undefined : openSocket(ns);
  const s = rtnl ?? own!;
  const uplink = getLink(s, cfg.uplink);
  if (!uplink) throw new Error(`uplink ${cfg.uplink} not found${ns ? ` in ${ns}` : ''}`);
  // Only what crosses the tunnel pays its overhead: a pod talking to the world, or to a pod of its
  // own node, keeps the uplink's MTU, and its routes to other nodes' pods and to ClusterIPs carry
  // the overlay's (cni/commands/add.ts). Measured: 50 bytes less MTU cost a stream 20-30% more CPU
  // per byte. An explicit MTU keeps everything at that one (an underlay narrower than its uplink).
  const overlayMtu = cfg.mtu ?? uplink.mtu - VXLAN_OVERHEAD;
  const mtu = cfg.mtu ?? uplink.mtu;
  if (overlayMtu < 576 || overlayMtu > uplink.mtu) throw new TypeError(`MTU ${overlayMtu} must be between 576 and the uplink's ${uplink.mtu}`);
  const gw = firstHost(v.pod);

  ensureSysctl('net/ipv4/ip_forward', '1', ns);
  reservePorts(ns, v.natMin, v.natMax);
  const bridge = ensureBridgeLink(s, { name: cfg.bridge, gatewayIp: gw, prefix: v.pod.prefix, mtu, configureExisting: true });
  const notes: string[] = [];
  const vxlan = ensureVxlan(s, cfg, overlayMtu, notes);
  for (const dev of [cfg.bridge, cfg.vxlanDev]) ensureSysctl(`net/ipv4/conf/${dev}/rp_filter`, '0', ns);
  // Netkit pods (cni/commands/add.ts) are no bridge ports: a veth pod on this node that ARPs for one
  // (its /24 is on-link) is answered by the node, which holds the pod's /32 route on another device.
  // Proxy ARP answers only for addresses routed off the bridge, so veth pods still answer for
  // themselves. Through rtnetlink: /proc/sys is read-only in bvcnid's container, and the bridge
  // does not exist yet when its init container runs.
  setProxyArp(s, bridge.index, true);
  // One route for the whole cluster CIDR (the local podCIDR's connected route on the bridge is more specific).
  replaceRoute(s, { dst: intToIpv4(v.cluster.addr), dstLen: v.cluster.prefix, oif: vxlan.index, prefsrc: cfg.nodeIp });
  // The node talks to its own pods from its node IP (what kubelet probes and host-network pods should show), not the gateway's.
  replaceRoute(s, { dst: intToIpv4(v.pod.addr), dstLen: v.pod.prefix, oif: bridge.index, prefsrc: cfg.nodeIp, protocol: RTPROT_KERNEL });
  return { uplink, bridge, vxlan, mtu, overlayMtu, gatewayIp: gw, notes };
}

export async function ensureNodeDataplane(cfg: NodeDataplaneConfig): Promise<NodeDataplane> {
  const v = validate(cfg);
  const ns = cfg.netns;
  // Not told (the simulator, tests): the set this kernel loads now (features.ts, programSet()).
  const objDir = cfg.objDir ?? (await currentProgramDir());
  for (const f of OBJECTS) if (!existsSync(join(objDir, f))) throw new Error(`missing BPF object ${join(objDir, f)}`);

  using rtnl = openSocket(ns);
  const { uplink, bridge, vxlan, mtu, overlayMtu, gatewayIp: gw, notes } = ensureNodeLinks(cfg, rtnl);

  // Maps pinned by another ABI version (an upgrade, or an interrupted migration): converted in
  // place first, or refused with nothing touched (migrate.ts).
  const migration = migratePinnedMaps({ pinDir: cfg.pinDir, objDir, netns: ns, onStep: cfg.onMigrationStep });
  const progs = loadPrograms(cfg.pinDir, objDir);
  let maps: DataplaneMaps | undefined;
  try {
    const attachments: NodeAttachments = {
      uplinkIngress: attach(ns, uplink.index, 'ingress', progs.get('uplinkIngress')!),
      overlayIngress: attach(ns, vxlan.index, 'ingress', progs.get('overlayIngress')!),
      overlayEgress: attach(ns, vxlan.index, 'egress', progs.get('overlayEgress')!),
    };
    maps = openDataplaneMaps(cfg.pinDir);

    // Pods registered before an upgrade get the new program in place (tc replace: no flow reset),
    // and their bridge ports the MAC pinning a pod of this release gets at ADD (bpf/lib/l2.h):
    // a pod of an earlier release would otherwise keep a port that learns and floods.
    let reattached = 0;
    for (const [key, ep] of maps.endpoints.entries()) {
      try {
        const device = endpointDevice(Number(ep.flags));
        attachPodProgram(cfg.pinDir, { ifindex: ep.ifindex, netns: ns, device });
        // A netkit pod is no bridge port: nothing on the bridge to pin.
        if (device === 'veth') isolateBridgePort(rtnl, { index: ep.ifindex, mac: ep.pod_mac });
        reattached++;
      } catch {
        // Its veth is gone: the plugin's DEL or GC removes the entry.
        void key;
      }
    }

    const config: ConfigValue = {
      node_ip: cfg.nodeIp,
      pod_cidr: intToIpv4(v.pod.addr),
      pod_prefix: v.pod.prefix,
      cluster_cidr: intToIpv4(v.cluster.addr),
      cluster_prefix: v.cluster.prefix,
      vxlan_ifindex: vxlan.index,
      uplink_ifindex: uplink.index,
      bridge_ifindex: bridge.index,
      vni: cfg.vni,
      nat_port_min: v.natMin,
      nat_port_max: v.natMax,
      bridge_mac: bridge.mac,
      uplink_mac: uplink.mac,
      mtu: overlayMtu,
      flags: ConfigFlags.ready | (cfg.masquerade === false ? 0 : ConfigFlags.masquerade),
      service_cidr: intToIpv4(v.service?.addr ?? 0),
      service_prefix: v.service?.prefix ?? 0,
      vxlan_port: cfg.vxlanPort,
    };
    // The VNI is the config map's, not the device's: adopting a dataplane set up with another one
    // switches this node over at once (as flannel's recreated device does); it then reaches only
    // nodes that use the new one.
    const was = maps.config.lookup(0);
    if (was && (was.flags & ConfigFlags.ready) !== 0 && was.vni !== cfg.vni)
      notes.push(`VNI changed from ${was.vni} to ${cfg.vni}: this node now reaches only nodes that use VNI ${cfg.vni} (every node needs the same --vni)`);
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
      overlayMtu,
      gatewayIp: gw,
      gatewayMac: bridge.mac,
      attachments,
      programIds,
      reattached,
      nodeHostPorts,
      migration,
      notes,
      close: () => m.close(),
    };
  } catch (e) {
    progs.forEach((p) => p.close());
    maps?.close();
    throw e;
  }
}

/**
 * `bvcnid --prepare-downgrade`'s part for bpf/bpf_to_pod.c, which ABI 1 has no
 * build of: once the ABI 1 programs run, it is unpinned (so no ADD attaches it
 * any more) and detached from every pod's host end. Left attached, v0.1.0
 * (which knows nothing of it) would keep it deciding NetworkPolicy on maps no
 * one writes any more. Idempotent; how many pods it was detached from (-1:
 * nothing was pinned or attached).
 */
export function removeToPodProgram(pinDir: string, netns?: string): number {
  const pin = programPin(pinDir, 'toPod');
  const pinned = existsSync(pin);
  unlinkIfExists(pin);
  let detached = 0;
  for (const ep of existsSync(mapPin(pinDir, MapName.endpoints)) ? listEndpoints(pinDir) : []) {
    const target = { ifindex: ep.ifindex, netns, device: endpointDevice(Number(ep.flags)) };
    try {
      const was = target.device === 'netkit' ? queryNetkit({ ...target, side: 'primary' }).length > 0 : queryTc({ ...target, direction: 'egress', handle: TC_HANDLE, priority: TC_PRIORITY }) !== undefined;
      detachToPodProgram(target);
      if (was) detached++;
    } catch {
      // Its device is gone: nothing attached to it any more.
    }
  }
  return pinned || detached ? detached : -1;
}

/** True when the config map says READY and every program is pinned. */
export function dataplaneReady(pinDir: string): boolean {
  try {
    for (const slot of REQUIRED_SLOTS) if (!existsSync(programPin(pinDir, slot))) return false;
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
          detachPodProgram({ ifindex: ep.ifindex, netns: ns, device: endpointDevice(Number(ep.flags)) });
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
  attempt(() => {
    using s = openSocket(ns);
    for (const dev of [cfg.vxlanDev, cfg.bridge]) {
      try {
        deleteLink(s, dev); // false when already gone
      } catch (e) {
        errors.push(e);
      }
    }
  });
  attempt(() => unpinTree(cfg.pinDir));
  if (errors.length) throw new AggregateError(errors, `removeNodeDataplane: ${errors.length} step(s) failed: ${String(errors[0])}`);
}



