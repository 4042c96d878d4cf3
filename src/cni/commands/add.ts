// ADD: reserve an address (durably, first, so DEL/GC can always find what
// follows), then bridge, veth pair, pod address and route, the bridge port
// pinned to the pod's MAC (bpf/lib/l2.h says why), endpoint entry.
// Each step registers its undo; a failure runs them in reverse.
import { closeSync, openSync } from 'node:fs';
import { intToIpv4 } from '../../../loader/codec.js';
import { Errno } from '../../../loader/errors.js';
import { ensureBridge as ensureBridgeLink, NotABridgeError } from '../../netlink/bridge.js';
import {
  addAddr,
  addRoute,
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
import { parsePortMappings, type NetConf } from '../config.js';
import { hostPortOwner, hostVethName, randomMac, type Invocation } from '../context.js';
import { Code, CniError, invalidConfig } from '../errors.js';
import type { HostPortMapping } from '../../dataplane/hostport.js';
import { allocate, findByAttachment } from '../ipam/allocator.js';
import { buildResult, mergeInto, type Result } from '../result.js';
import { mark } from '../trace.js';

const { EEXIST } = Errno;
/** Without a default route to size from: the pod MTU is then 1450. */
const DEFAULT_UPLINK_MTU = 1500;
const OVERLAY_OVERHEAD = 50;

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
      const prior = findByAttachment(store, env.containerId, env.ifname);
      if (prior) {
        // A previous ADD of this attachment died before finishing; reuse its address.
        ip = prior.ip;
      } else {
        ip = allocate(store, conf.podCidr, env.containerId, env.ifname);
      }
      undo.push(() => {
        store.lock();
        try {
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
    const bridge = ensureBridge(host, conf, gw);
    const mtu = conf.mtu ?? bridge.mtu;
    mark('bridge');

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

    mark('pod addr+route');
    const hostLink = getLink(host, vethName);
    if (!hostLink) throw new CniError(Code.internal, `host interface ${vethName} vanished after creation`);
    // Before the endpoint (and its program) exists, so the pod is never on a port that floods or learns.
    isolateBridgePort(host, { index: hostLink.index, mac: podMac });
    mark('bridge port isolated');
    const ipText = intToIpv4(ip);
    svc.dataplane.register(conf.pinDir, { ip: ipText, ifindex: hostLink.index, hostIfname: vethName, podMac, gwMac: bridge.mac, hostport: portMappings.length > 0 });
    undo.push(() => void svc.dataplane.unregister(conf.pinDir, ipText));
    mark('endpoint register');
    if (portMappings.length > 0) {
      // After the endpoint: a mapping must never name a pod the programs cannot deliver to.
      const owner = hostPortOwner(env.containerId, env.ifname);
      svc.dataplane.claimHostPorts(conf.pinDir, owner, ipText, portMappings);
      undo.push(() => void svc.dataplane.pruneHostPorts(conf.pinDir, (e) => e.owner === owner));
      mark('hostports claimed');
    }

    svc.log.info('added', { ip: ipText, hostVeth: vethName, ifindex: hostLink.index, mtu, ...(portMappings.length ? { hostPorts: portMappings.map(mappingText) } : {}) });
    const ours = buildResult(
      conf.cniVersion,
      [
        { name: bridge.name, mac: bridge.mac },
        { name: vethName, mac: hostLink.mac },
        { name: env.ifname, mac: podMac, sandbox: env.netns },
      ],
      [{ interface: 2, address: `${ipText}/${conf.podCidr.prefix}`, gateway: gw }],
      [{ dst: '0.0.0.0/0', gw }],
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

function openPodSocket(open: (ns: string) => NetlinkSocket, netns: string): NetlinkSocket {
  try {
    return open(netns);
  } catch (e) {
    throw new CniError(Code.netns, `cannot enter CNI_NETNS ${netns}`, (e as Error).message);
  }
}

/** The bridge, created with the gateway address when bvcnid has not made it (standalone use). */
function ensureBridge(host: NetlinkSocket, conf: NetConf, gw: string): Link {
  try {
    return ensureBridgeLink(host, {
      name: conf.bridge,
      gatewayIp: gw,
      prefix: conf.podCidr.prefix,
      mtu: () => conf.mtu ?? (defaultRouteLink(host)?.mtu ?? DEFAULT_UPLINK_MTU) - OVERLAY_OVERHEAD,
      // bvcnid owns a bridge it made: take it as it is.
      configureExisting: false,
    });
  } catch (e) {
    if (e instanceof NotABridgeError) throw new CniError(Code.invalidConfig, `invalid config: field "bridge": ${e.message}`);
    throw e;
  }
}
