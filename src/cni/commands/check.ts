// CHECK: the attachment is as prevResult says — pod interface, address,
// default route and the routes that carry the overlay's MTU inside the pod;
// host veth on the bridge (learning and unicast flooding off, the pod's MAC a
// static sticky FDB entry on it, the pod program and bpf_to_pod attached) or
// netkit primary (peer policy drop, the same programs attached, the node's
// route to the pod); reservation, endpoint entry and the hostPort mappings
// runtimeConfig names. The first mismatch is the error.
import { intToIpv4 } from '../../../loader/codec.js';
import { getBridgeFdb, getLink, listAddrs, listRoutes } from '../../netlink/rtnl.js';
import { NETKIT_DROP, NTF_STICKY, NUD_NOARP } from '../../netlink/message.js';
import { EndpointFlags } from '../../dataplane/abi.js';
import { firstHost } from '../../common/cidr.js';
import { hostNetkitName, hostPortOwner, hostVethName, type Invocation } from '../context.js';
import { parsePortMappings } from '../config.js';
import { overlayRoutes } from '../overlay-routes.js';
import { Code, CniError } from '../errors.js';
import { findByAttachment } from '../ipam/allocator.js';

function fail(msg: string): never {
  throw new CniError(Code.checkFailed, `check failed: ${msg}`);
}

interface PrevIface {
  name?: unknown;
  mac?: unknown;
  sandbox?: unknown;
}
interface PrevIp {
  address?: unknown;
  interface?: unknown;
}

export function cmdCheck({ env, conf, svc }: Invocation): void {
  const prev = conf.prevResult;
  if (!prev) throw new CniError(Code.invalidConfig, 'invalid config: field "prevResult" is required for CHECK');
  const ifaces = (Array.isArray(prev.interfaces) ? prev.interfaces : []) as PrevIface[];
  const ips = (Array.isArray(prev.ips) ? prev.ips : []) as PrevIp[];
  const podIdx = ifaces.findIndex((i) => i?.name === env.ifname && typeof i.sandbox === 'string');
  if (podIdx < 0) fail(`prevResult lists no interface ${env.ifname} with a sandbox`);
  const podPrev = ifaces[podIdx]!;
  const ipPrev = ips.find((i) => i?.interface === podIdx) ?? ips[0];
  if (!ipPrev || typeof ipPrev.address !== 'string') fail('prevResult lists no address');
  const [addr, plen] = ipPrev.address.split('/');

  const store = svc.store(conf);
  store.lock();
  let reserved: string | undefined;
  try {
    const r = findByAttachment(store, env.containerId, env.ifname);
    reserved = r ? intToIpv4(r.ip) : undefined;
  } finally {
    store.unlock();
  }
  if (reserved !== addr) fail(`address ${addr} is not reserved for ${env.containerId}/${env.ifname} (reserved: ${reserved ?? 'none'})`);

  let pod;
  try {
    pod = svc.podSocket(env.netns);
  } catch (e) {
    throw new CniError(Code.netns, `cannot enter CNI_NETNS ${env.netns}`, (e as Error).message);
  }
  const gw = firstHost(conf.podCidr);
  let podMac: string;
  try {
    const link = getLink(pod, env.ifname);
    if (!link) fail(`interface ${env.ifname} not found in ${env.netns}`);
    if (typeof podPrev.mac === 'string' && podPrev.mac.toLowerCase() !== link.mac) fail(`interface ${env.ifname} has MAC ${link.mac}, prevResult says ${podPrev.mac}`);
    if (!link.up) fail(`interface ${env.ifname} is down`);
    podMac = link.mac;
    const addrs = listAddrs(pod, link.index);
    if (!addrs.some((a) => a.ip === addr && String(a.prefix) === plen)) fail(`interface ${env.ifname} lacks address ${ipPrev.address}`);
    const routes = listRoutes(pod);
    if (!routes.some((r) => r.dstLen === 0 && r.gw === gw && r.oif === link.index)) fail(`no default route via ${gw} on ${env.ifname}`);
    for (const t of overlayRoutes(svc.dataplane.overlay(conf.pinDir), link.mtu)) {
      const r = routes.find((x) => x.dst === t.dst && x.dstLen === t.dstLen && x.gw === gw && x.oif === link.index);
      if (!r || r.mtu === undefined || r.mtu > t.mtu)
        fail(`no route to ${t.dst}/${t.dstLen} via ${gw} with the overlay's MTU ${t.mtu} (${env.ifname} has ${link.mtu}: its full-size packets to other nodes would not fit the tunnel)`);
    }
  } finally {
    pod.close();
  }

  const host = svc.hostSocket();
  let hostIndex: number;
  let netkit = false;
  try {
    const nk = getLink(host, hostNetkitName(env.containerId, env.ifname));
    if (nk) {
      netkit = true;
      // What ADD made (add.ts, addNetkit; rtnl.ts, createNetkit): the primary, whose peer drops what no program checked.
      if (nk.kind !== 'netkit' || !nk.netkit?.primary) fail(`host interface ${nk.name} is not a netkit primary`);
      if (nk.netkit.peerPolicy !== NETKIT_DROP) fail(`netkit ${nk.name} forwards what the pod sends when no program is attached`);
      const missing = svc.dataplane.missingPodPrograms(conf.pinDir, nk.index, 'netkit');
      if (missing.length) fail(`netkit ${nk.name} does not run ${missing.join(', nor ')}`);
      if (!listRoutes(host).some((r) => r.dst === addr && r.dstLen === 32 && r.oif === nk.index)) fail(`no route to ${addr} on ${nk.name}`);
      hostIndex = nk.index;
    } else {
      const veth = getLink(host, hostVethName(env.containerId, env.ifname));
      if (!veth) fail(`host interface ${hostVethName(env.containerId, env.ifname)} not found`);
      const br = getLink(host, conf.bridge);
      if (!br || veth.master !== br.index) fail(`host interface ${veth.name} is not on bridge ${conf.bridge}`);
      if (veth.bridgePort?.learning !== false || veth.bridgePort.unicastFlood !== false) {
        fail(`bridge port ${veth.name} learns or floods unknown unicast (learning ${veth.bridgePort?.learning}, unicast flood ${veth.bridgePort?.unicastFlood})`);
      }
      const fdb = getBridgeFdb(host, { index: veth.index, mac: podMac });
      if (!fdb || fdb.index !== veth.index || !(fdb.state & NUD_NOARP) || !(fdb.flags & NTF_STICKY)) {
        fail(`no static sticky FDB entry for ${podMac} on bridge port ${veth.name}`);
      }
      // Without them the pod's sources go unchecked and its policy undecided (bpf/bpf_pod.c, bpf_to_pod.c).
      const missing = svc.dataplane.missingPodPrograms(conf.pinDir, veth.index, 'veth');
      if (missing.length) fail(`host interface ${veth.name} does not run ${missing.join(', nor ')}`);
      hostIndex = veth.index;
    }
  } finally {
    host.close();
  }

  const ep = svc.dataplane.lookup(conf.pinDir, addr!);
  if (!ep) fail(`no endpoint entry for ${addr}`);
  if (ep.ifindex !== hostIndex || String(ep.pod_mac) !== podMac) fail(`endpoint entry for ${addr} does not match the interfaces`);
  if (((Number(ep.flags) & EndpointFlags.netkit) !== 0) !== netkit) fail(`endpoint entry for ${addr} names the wrong kind of device`);

  // Every mapping the runtime asks for is this attachment's, to this pod and port.
  const mappings = parsePortMappings(conf);
  if (mappings.length === 0) return;
  if (!(Number(ep.flags) & EndpointFlags.hostport)) fail(`endpoint entry for ${addr} lacks the hostPort flag`);
  const owner = hostPortOwner(env.containerId, env.ifname);
  const have = svc.dataplane.hostPorts(conf.pinDir);
  for (const m of mappings) {
    const e = have.find((h) => h.hostIp === m.hostIp && h.hostPort === m.hostPort && h.protocol === m.protocol);
    const id = `hostPort ${m.hostIp}:${m.hostPort}/${m.protocol}`;
    if (!e) fail(`${id} is not mapped`);
    if (e.owner !== owner || e.podIp !== addr || e.containerPort !== m.containerPort)
      fail(`${id} maps to ${e.podIp}:${e.containerPort}${e.owner !== owner ? ' for another container' : ''}, not ${addr}:${m.containerPort}`);
  }
}
