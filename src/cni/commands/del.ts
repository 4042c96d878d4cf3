// DEL: idempotent. The host veth name derives from the attachment, so a gone
// or empty CNI_NETNS does not matter. hostPorts first, device, then endpoint, then the
// reservation: a DEL killed half-way is finished by the next DEL or by GC.
// Each is undone where the ADD recorded it did it (ipam/store.ts), so a DEL
// whose config names another pin dir leaves no endpoint entry behind.
import { intToIpv4 } from '../../../loader/codec.js';
import { hostNetkitName, hostPortOwner, hostVethName, recordedPinDir, type Invocation } from '../context.js';
import { findByAttachment } from '../ipam/allocator.js';
import { mark } from '../trace.js';

export function cmdDel({ env, conf, svc }: Invocation): void {
  mark('handler entered');
  const store = svc.store(conf);
  // Where the ADD made the attachment (its record), not where this config
  // says: a DEL's config may name another pin dir than the ADD's did.
  let pinDir: string;
  store.lock();
  try {
    pinDir = recordedPinDir(findByAttachment(store, env.containerId, env.ifname), conf);
  } finally {
    store.unlock();
  }
  // The attachment's hostPorts first (exactly its own: by owner), so no new flow reaches a pod on its way out.
  const owner = hostPortOwner(env.containerId, env.ifname);
  const ports = svc.dataplane.pruneHostPorts(pinDir, (e) => e.owner === owner);
  if (ports) mark('hostports released');
  const host = svc.hostSocket();
  try {
    // Either kind: the node's --pod-device may have changed since this pod's ADD.
    svc.removeHostVeth(host, hostVethName(env.containerId, env.ifname));
    svc.removeHostVeth(host, hostNetkitName(env.containerId, env.ifname));
  } finally {
    host.close();
  }
  mark('veth delete');
  store.lock();
  try {
    const r = findByAttachment(store, env.containerId, env.ifname);
    if (!r) {
      svc.log.info('deleted (nothing reserved)');
      return;
    }
    const ip = intToIpv4(r.ip);
    svc.dataplane.unregister(recordedPinDir(r, conf), ip);
    mark('endpoint unregister');
    store.release(r);
    mark('ipam release');
    svc.log.info('deleted', { ip, ...(ports ? { hostPorts: ports } : {}) });
  } finally {
    store.unlock();
  }
}
