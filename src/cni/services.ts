// The real services: netlink, the on-disk IPAM store, the pinned maps.
import type { NetConf } from './config.js';
import type { Services } from './context.js';
import { PinnedDataplane } from './dataplane.js';
import type { CniEnv } from './env.js';
import { DiskStore } from './ipam/store.js';
import { fileLogger } from './log.js';
import { NetlinkSocket, socketIn } from '../netlink/socket.js';
import { deleteLink } from '../netlink/rtnl.js';

export function realServices(conf: NetConf, env: CniEnv): Services {
  return {
    dataplane: new PinnedDataplane(),
    store: (c) => new DiskStore(c.dataDir, c.name),
    hostSocket: () => new NetlinkSocket(),
    podSocket: (ns) => socketIn(ns),
    removeHostVeth: (host, name) => void deleteLink(host, name),
    log: fileLogger(conf.dataDir, { cmd: env.command, containerId: env.containerId || undefined, ifname: env.ifname || undefined, network: conf.name }),
  };
}
