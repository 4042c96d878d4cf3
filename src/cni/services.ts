// The real services: netlink, the on-disk IPAM store, the pinned maps.
import type { NetConf } from './config.js';
import type { Services } from './context.js';
import { PinnedDataplane, type Dataplane } from './dataplane.js';
import type { CniEnv } from './env.js';
import { DiskStore } from './ipam/store.js';
import { fileLogger } from './log.js';
import { NetlinkSocket, socketIn } from '../netlink/socket.js';
import { deleteLink } from '../netlink/rtnl.js';

/** How bvcnid runs the same handler: its own name in the log, a deferred veth delete, one dataplane handle. */
export interface ServiceOverrides {
  via?: string;
  removeHostVeth?: Services['removeHostVeth'];
  dataplane?: Dataplane;
}

export function realServices(conf: NetConf, env: CniEnv, how: ServiceOverrides = {}): Services {
  return {
    dataplane: how.dataplane ?? new PinnedDataplane(),
    store: (c) => new DiskStore(c.dataDir, c.name),
    hostSocket: () => new NetlinkSocket(),
    podSocket: (ns) => socketIn(ns),
    removeHostVeth: how.removeHostVeth ?? ((host, name) => void deleteLink(host, name)),
    log: fileLogger(conf.dataDir, { cmd: env.command, containerId: env.containerId || undefined, ifname: env.ifname || undefined, network: conf.name, via: how.via }),
  };
}
