// ADD: reserve an address (durably, first, so DEL/GC can always find what
// follows), then bridge, veth pair, pod address and route, the bridge port
// pinned to the pod's MAC (bpf/lib/l2.h says why), endpoint entry. With
// podDevice "netkit" a netkit pair instead of the veth (addNetkit).
// Each step registers its undo; a failure runs them in reverse.
import { closeSync, openSync } from 'node:fs';
import { intToIpv4 } from '../../../loader/codec.js';
import { Errno } from '../../../loader/errors.js';
import { ensureBridge as ensureBridgeLink, NotABridgeError } from '../../netlink/bridge.js';
import {
  addAddr,
  addLinkRoute,
  addRoute,
  createNetkit,
  createVeth,
  defaultRouteLink,
  deleteLink,
  disableIpv6Addresses,
  getLink,
  isolateBridgePort,
  listAddrs,
  setLinkUp,
  type Link,
} from '../../netlink/rtnl.js';
import { NetlinkError, type NetlinkSocket } from '../../netlink/socket.js';
import { firstHost } from '../../common/cidr.js';
import { Defaults, VXLAN_OVERHEAD } from '../../common/defaults.js';
import { parsePortMappings, type NetConf } from '../config.js';
import { overlayRoutes, type OverlayRoute } from '../overlay-routes.js';
import { attachmentRecord, hostNetkitName, hostPortOwner, hostVethName, randomMac, recordedPinDir, type Invocation } from '../context.js';
import { Code, CniError, invalidConfig } from '../errors.js';
import type { HostPortMapping } from '../../dataplane/hostport.js';
import { allocate, findByAttachment, inPool } from '../ipam/allocator.js';
import { buildResult, mergeInto, type Result } from '../result.js';
import { mark } from '../trace.js';

const { EEXIST } = Errno;

export function cmdAdd({ env, conf, svc }: Invocation): Result {
  mark('handler entered');
  const ready = svc.dataplane.readiness(conf.pinDir);
  mark('dataplane readiness');
  if (!ready.ready) throw new CniError(Code.tryAgainLater, ready.reason);
  const portMappings = parsePortMappings(conf);
  if (portMappings.some((m) => m.hostIp !== '0.0.0.0')) checkHostIps(svc.hostSocket, portMappings);

  const undo: (() => void)[] = [];
  let pod: NetlinkSocket | undefined;
  let host: NetlinkSocket | undefined;
  let nsFd = -1;
  try {
    pod = openPodSocket(svc.podSocket, env.netns);
    mark('pod netlink socket');
    if (getLink(pod, env.ifname)) throw new CniError(Code.interfaceExists, `interface ${env.ifname} already exists in ${env.netns}`);
    try {
      nsFd = openSync(env.netns, 'r');
    } catch (e) {
      throw new CniError(Code.netns, `cannot open CNI_NETNS ${env.netns}`, (e as Error).message);
    }

    const store = svc.store(conf);
    let ip: number;
    store.lock();
    try {
      const record = attachmentRecord(conf);
      const owner = hostPortOwner(env.containerId, env.ifname);
      const prior = findByAttachment(store, env.containerId, env.ifname);
      if (prior && inPool(conf.podCidr, prior.ip) && prior.record?.pinDir === record.pinDir && prior.record.bridge === record.bridge) {
        // A previous ADD of this attachment died before finishing; reuse its address.
        ip = prior.ip;
      } else {
        if (prior) {
          // A previous ADD of this attachment under another config (another
          // podCIDR, pin dir or bridge; or v0.1.0's, with no record): its
          // address may be no use here and what it registered is where it
          // recorded. Undo it there, then start afresh with this config.
          const was = recordedPinDir(prior, conf);
          svc.dataplane.pruneHostPorts(was, (e) => e.owner === owner);
          svc.dataplane.unregister(was, intToIpv4(prior.ip));
          store.release(prior);
        }
        ip = allocate(store, conf.podCidr, env.containerId, env.ifname, record);
      }
      undo.push(() => {
        store.lock();
        try {
          // The address is this attachment's until released: whatever is
          // registered for it is too (an earlier ADD's entry and hostPorts
          // included), and must not outlive the reservation DEL and GC find it by.
          svc.dataplane.pruneHostPorts(conf.pinDir, (e) => e.owner === owner);
          svc.dataplane.unregister(conf.pinDir, intToIpv4(ip));
          store.release({ ip, containerId: env.containerId, ifname: env.ifname });
        } finally {
          store.unlock();
        }
      });
    } finally {
      store.unlock();
    }

    mark('ipam reserve');
    host = svc.hostSocket();
    const gw = firstHost(conf.podCidr);
    const overlay = svc.dataplane.overlay(conf.pinDir);
    const bridge = ensureBridge(host, conf, gw, overlay !== undefined);
    const mtu = conf.mtu ?? bridge.mtu;
    mark('bridge');
    if (conf.podDevice === 'netkit') {
      const ours = addNetkit({ env, conf, svc }, { host, pod, nsFd, ip, gw, mtu, tunnelled: overlayRoutes(overlay, mtu), undo, portMappings });
      undo.length = 0;
      return mergeInto(conf.prevResult, ours);
    }

    const vethName = hostVethName(env.containerId, env.ifname);
    const podMac = randomMac();
    try {
      createVeth(host, { hostName: vethName, podName: env.ifname, podNsFd: nsFd, podMac, mtu, master: bridge.index });
    } catch (e) {
      if (e instanceof NetlinkError && e.errno === EEXIST) {
        // The pod side was checked free above, so this is our derived host name,
        // left over by a killed ADD of this same attachment: clear it and retry once.
        if (!deleteLink(host, vethName)) throw new CniError(Code.interfaceExists, `interface ${env.ifname} already exists in ${env.netns}`);
        createVeth(host, { hostName: vethName, podName: env.ifname, podNsFd: nsFd, podMac, mtu, master: bridge.index });
      } else throw e;
    }
    mark('veth create');
    const hostNs = host;
    undo.push(() => void deleteLink(hostNs, vethName));

    const podLink = getLink(pod, env.ifname);
    if (!podLink) throw new CniError(Code.internal, `pod interface ${env.ifname} vanished after creation`);
    disableIpv6Addresses(pod, podLink.index);
    setLinkUp(pod, podLink.index);
    addAddr(pod, podLink.index, intToIpv4(ip), conf.podCidr.prefix);
    addRoute(pod, { dst: '0.0.0.0', dstLen: 0, gw, oif: podLink.index });
    // Its own podCIDR stays on-link, at the interface's MTU (the connected route is more specific).
    const tunnelled = overlayRoutes(overlay, mtu);
    for (const r of tunnelled) addRoute(pod, { ...r, gw, oif: podLink.index });

    mark('pod addr+route');
    const hostLink = getLink(host, vethName);
    if (!hostLink) throw new CniError(Code.internal, `host interface ${vethName} vanished after creation`);
    // Before the endpoint (and its program) exists, so the pod is never on a port that floods or learns.
    isolateBridgePort(host, { index: hostLink.index, mac: podMac });
    mark('bridge port isolated');
    const ipText = intToIpv4(ip);
    svc.dataplane.register(conf.pinDir, { ip: ipText, ifindex: hostLink.index, hostIfname: vethName, podMac, gwMac: bridge.mac, hostport: portMappings.length > 0, policyPending: conf.networkPolicy });
    undo.push(() => void svc.dataplane.unregister(conf.pinDir, ipText));
    mark('endpoint register');
    claimHostPorts({ env, conf, svc }, ipText, portMappings, undo);

    svc.log.info('added', { ip: ipText, hostVeth: vethName, ifindex: hostLink.index, mtu, ...(portMappings.length ? { hostPorts: portMappings.map(mappingText) } : {}) });
    const ours = buildResult(
      conf.cniVersion,
      [
        { name: bridge.name, mac: bridge.mac },
        { name: vethName, mac: hostLink.mac },
        { name: env.ifname, mac: podMac, sandbox: env.netns },
      ],
      [{ interface: 2, address: `${ipText}/${conf.podCidr.prefix}`, gateway: gw }],
      [{ dst: '0.0.0.0/0', gw }, ...tunnelled.map((r) => ({ dst: `${r.dst}/${r.dstLen}`, gw, mtu: r.mtu }))],
    );
    undo.length = 0;
    return mergeInto(conf.prevResult, ours);
  } catch (e) {
    for (const u of undo.reverse()) {
      try {
        u();
      } catch (ue) {
        svc.log.error('rollback step failed', { err: (ue as Error).message });
      }
    }
    throw e;
  } finally {
    if (nsFd >= 0) closeSync(nsFd);
    pod?.close();
    host?.close();
  }
}

/** After the endpoint (veth or netkit): a mapping must never name a pod the programs cannot deliver to. */
function claimHostPorts({ env, conf, svc }: Invocation, ipText: string, portMappings: readonly HostPortMapping[], undo: (() => void)[]): void {
  if (portMappings.length === 0) return;
  const owner = hostPortOwner(env.containerId, env.ifname);
  svc.dataplane.claimHostPorts(conf.pinDir, owner, ipText, portMappings);
  undo.push(() => void svc.dataplane.pruneHostPorts(conf.pinDir, (e) => e.owner === owner));
  mark('hostports claimed');
}

function mappingText(m: HostPortMapping): string {
  return `${m.hostIp}:${m.hostPort}/${m.protocol}->${m.containerPort}`;
}

/** A hostIP must be one of the node's own addresses: the programs translate only packets for the node. */
function checkHostIps(open: () => NetlinkSocket, mappings: readonly HostPortMapping[]): void {
  const s = open();
  let own: Set<string>;
  try {
    own = new Set(listAddrs(s).map((a) => a.ip));
  } finally {
    s.close();
  }
  for (const m of mappings) {
    if (m.hostIp !== '0.0.0.0' && !own.has(m.hostIp))
      throw invalidConfig('runtimeConfig.portMappings', `hostIP ${m.hostIp} is not an address of this node`);
  }
}

/**
 * The netkit half of ADD (the pair's primary, its host end, is no bridge
 * port). The pod's address is its /24 as on a veth, without the connected
 * route: the pod reaches everything, same-node pods included, through the
 * gateway, whose ARP the node answers on the primary (the gateway address
 * is a local one). Nothing else on the pod's link would answer: there is
 * no bridge behind it. The node reaches the pod by a /32 route on the
 * primary, from its node IP as it reaches veth pods, and which rp_filter
 * needs to accept what the pod sends on the primary.
 */
function addNetkit(
  { env, conf, svc }: Invocation,
  o: { host: NetlinkSocket; pod: NetlinkSocket; nsFd: number; ip: number; gw: string; mtu: number; tunnelled: OverlayRoute[]; undo: (() => void)[]; portMappings: readonly HostPortMapping[] },
): Result {
  const { host, pod } = o;
  const name = hostNetkitName(env.containerId, env.ifname);
  const podMac = randomMac();
  const hostMac = randomMac();
  const spec = { hostName: name, podName: env.ifname, podNsFd: o.nsFd, podMac, hostMac, mtu: o.mtu };
  try {
    createNetkit(host, spec);
  } catch (e) {
    if (e instanceof NetlinkError && e.errno === EEXIST) {
      // As for a veth: our derived name, left over by a killed ADD of this attachment.
      if (!deleteLink(host, name)) throw new CniError(Code.interfaceExists, `interface ${env.ifname} already exists in ${env.netns}`);
      createNetkit(host, spec);
    } else throw e;
  }
  mark('netkit create');
  o.undo.push(() => void deleteLink(host, name));

  const podLink = getLink(pod, env.ifname);
  if (!podLink) throw new CniError(Code.internal, `pod interface ${env.ifname} vanished after creation`);
  const ipText = intToIpv4(o.ip);
  disableIpv6Addresses(pod, podLink.index);
  setLinkUp(pod, podLink.index);
  addAddr(pod, podLink.index, ipText, conf.podCidr.prefix, { noPrefixRoute: true });
  addLinkRoute(pod, { dst: o.gw, oif: podLink.index });
  addRoute(pod, { dst: '0.0.0.0', dstLen: 0, gw: o.gw, oif: podLink.index });
  const { tunnelled } = o;
  for (const r of tunnelled) addRoute(pod, { ...r, gw: o.gw, oif: podLink.index });
  // No connected route here: this node's pods, inside the cluster CIDR, would otherwise get the overlay's MTU.
  const local = tunnelled.length ? [{ dst: intToIpv4(conf.podCidr.addr), dstLen: conf.podCidr.prefix }] : [];
  for (const r of local) addRoute(pod, { ...r, gw: o.gw, oif: podLink.index });
  mark('pod addr+route');

  const hostLink = getLink(host, name);
  if (!hostLink) throw new CniError(Code.internal, `host interface ${name} vanished after creation`);
  const nodeIp = svc.dataplane.nodeIp(conf.pinDir);
  addLinkRoute(host, { dst: ipText, oif: hostLink.index, ...(nodeIp ? { src: nodeIp } : {}) });
  // The peer drops everything until this attaches the pod program (rtnl.ts, createNetkit).
  svc.dataplane.register(conf.pinDir, { ip: ipText, ifindex: hostLink.index, hostIfname: name, podMac, gwMac: hostMac, device: 'netkit', hostport: o.portMappings.length > 0, policyPending: conf.networkPolicy });
  o.undo.push(() => void svc.dataplane.unregister(conf.pinDir, ipText));
  mark('endpoint register');
  claimHostPorts({ env, conf, svc }, ipText, o.portMappings, o.undo);

  svc.log.info('added', { ip: ipText, netkit: name, ifindex: hostLink.index, mtu: o.mtu, ...(o.portMappings.length ? { hostPorts: o.portMappings.map(mappingText) } : {}) });
  return buildResult(
    conf.cniVersion,
    [
      { name, mac: hostMac },
      { name: env.ifname, mac: podMac, sandbox: env.netns },
    ],
    [{ interface: 1, address: `${ipText}/${conf.podCidr.prefix}`, gateway: o.gw }],
    [
      { dst: '0.0.0.0/0', gw: o.gw },
      ...tunnelled.map((r) => ({ dst: `${r.dst}/${r.dstLen}`, gw: o.gw, mtu: r.mtu })),
      ...local.map((r) => ({ dst: `${r.dst}/${r.dstLen}`, gw: o.gw })),
    ],
  );
}

function openPodSocket(open: (ns: string) => NetlinkSocket, netns: string): NetlinkSocket {
  try {
    return open(netns);
  } catch (e) {
    throw new CniError(Code.netns, `cannot enter CNI_NETNS ${netns}`, (e as Error).message);
  }
}

/** The bridge, created with the gateway address when bvcnid has not made it (standalone use). */
function ensureBridge(host: NetlinkSocket, conf: NetConf, gw: string, overlayRouted: boolean): Link {
  try {
    return ensureBridgeLink(host, {
      name: conf.bridge,
      gatewayIp: gw,
      prefix: conf.podCidr.prefix,
      mtu: () => {
        // As bvcnid sizes it (dataplane/node.ts): the uplink's, when its config gives the pods'
        // routes through the tunnel the overlay's (overlay-routes.ts); without that config, the
        // overlay's. Without a default route to size from: Defaults.podMtu.
        const uplink = defaultRouteLink(host);
        if (conf.mtu !== undefined) return conf.mtu;
        if (!uplink) return Defaults.podMtu;
        return overlayRouted ? uplink.mtu : uplink.mtu - VXLAN_OVERHEAD;
      },
      // bvcnid owns a bridge it made: take it as it is.
      configureExisting: false,
    });
  } catch (e) {
    if (e instanceof NotABridgeError) throw new CniError(Code.invalidConfig, `invalid config: field "bridge": ${e.message}`);
    throw e;
  }
}
