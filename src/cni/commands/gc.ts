// GC (1.1.0): everything not in cni.dev/valid-attachments goes: reservations,
// their host veths and endpoint entries; hostPort mappings of invalid
// attachments or unreserved pods; then endpoint entries in our
// podCIDR without a reservation, and host veths on our bridge (or netkit
// primaries of our naming) without one (left by ADDs killed before they
// could record more). A reservation is undone in the pin dir its ADD
// recorded (ipam/store.ts), and the bridges ADDs recorded are swept too.
import { intToIpv4, ipv4ToInt } from '../../../loader/codec.js';
import { deleteLink, getLink, listLinks } from '../../netlink/rtnl.js';
import { containsIp } from '../../common/cidr.js';
import { HOST_NETKIT_RE, HOST_VETH_RE, hostNetkitName, hostPortOwner, hostVethName, recordedPinDir, type Invocation } from '../context.js';

export function cmdGc({ conf, svc }: Invocation): void {
  const valid = new Set((conf.validAttachments ?? []).map((a) => `${a.containerId}\0${a.ifname}`));
  const store = svc.store(conf);
  const host = svc.hostSocket();
  store.lock();
  try {
    const keep = new Set<string>();
    let released = 0;
    const bridgeNames = new Set<string>();
    for (const r of store.list()) {
      if (r.record) bridgeNames.add(r.record.bridge);
      const veth = hostVethName(r.containerId, r.ifname);
      const nk = hostNetkitName(r.containerId, r.ifname);
      if (valid.has(`${r.containerId}\0${r.ifname}`)) {
        keep.add(veth);
        keep.add(nk);
        continue;
      }
      deleteLink(host, veth);
      deleteLink(host, nk);
      // Where its ADD recorded it worked; this config's pin dir has its hostPorts pruned below anyway.
      const pinDir = recordedPinDir(r, conf);
      if (pinDir !== conf.pinDir) {
        const owner = hostPortOwner(r.containerId, r.ifname);
        svc.dataplane.pruneHostPorts(pinDir, (e) => e.owner === owner);
      }
      svc.dataplane.unregister(pinDir, intToIpv4(r.ip));
      store.release(r);
      released++;
    }
    const pruned = store.prune?.() ?? 0;
    const reserved = new Set(store.list().map((r) => r.ip));
    let entries = 0;
    for (const ip of svc.dataplane.podIps(conf.pinDir)) {
      const n = ipv4ToInt(ip);
      if (containsIp(conf.podCidr, n) && !reserved.has(n)) {
        svc.dataplane.unregister(conf.pinDir, ip);
        entries++;
      }
    }
    // hostPorts of attachments that are not valid, or of pods with no reservation (a killed ADD's).
    const owners = new Set((conf.validAttachments ?? []).map((a) => hostPortOwner(a.containerId, a.ifname)));
    const hostPorts = svc.dataplane.pruneHostPorts(conf.pinDir, (e) => !owners.has(e.owner) || !reserved.has(ipv4ToInt(e.podIp)));
    let veths = 0;
    // Ports of our naming on this config's bridge, or on one an ADD recorded.
    const bridges = new Set<number>();
    for (const name of new Set([conf.bridge, ...bridgeNames])) {
      const b = getLink(host, name);
      if (b) bridges.add(b.index);
    }
    for (const l of listLinks(host)) {
      if (keep.has(l.name)) continue;
      const ours = bridges.has(l.master) ? HOST_VETH_RE.test(l.name) : l.kind === 'netkit' && !!l.netkit?.primary && HOST_NETKIT_RE.test(l.name);
      if (ours && deleteLink(host, l.name)) veths++;
    }
    svc.log.info('gc', { released, entries, veths, pruned, hostPorts, valid: valid.size });
  } finally {
    store.unlock();
    host.close();
  }
}
