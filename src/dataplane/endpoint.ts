// Endpoint registration, called by the CNI plugin on every ADD/DEL: no child
// processes, only bpf(2) and netlink through libbpf.
import { existsSync } from 'node:fs';
import { BpfProgram, attachNetkit, attachTc, detachNetkit, detachTc, queryNetkit, queryTc, type BpfMap } from '../../loader/index.js';
import { EndpointFlags, type EndpointKey, type EndpointValue } from './abi.js';
import { TC_HANDLE, TC_PRIORITY, programPin } from './layout.js';
import { openEndpointsMap } from './maps.js';
import { ipv4ToInt, macToBuffer } from '../../loader/codec.js';

export interface EndpointSpec {
  ip: string;
  hostIfname: string;
  hostIfindex: number;
  podMac: string;
  gwMac: string;
  /** The pod owns hostPort mappings: its replies are checked against their flows (bpf/lib/hostport.h). */
  hostport?: boolean;
  /** What the pod's interface is: one end of a veth pair (default), or a netkit pair's peer (hostIfindex: its primary). */
  device?: PodDevice;
  /** NetworkPolicy is enforced and the pod's rules are not written yet: fail closed (ENDPOINT_F_POLICY_PENDING) until bvcnid writes them. */
  policyPending?: boolean;
  /** The NODE's network namespace (where the host veth lives); default: current. */
  netns?: string;
}

/** The kind of pair a pod is attached with (bvcnid's --pod-device, resolved). */
export type PodDevice = 'veth' | 'netkit';

export function endpointFlags(device: PodDevice = 'veth', hostport = false, policyPending = false): number {
  return (
    EndpointFlags.pod | (device === 'netkit' ? EndpointFlags.netkit : 0) | (hostport ? EndpointFlags.hostport : 0) | (policyPending ? EndpointFlags.policy_pending : 0)
  );
}

export function endpointDevice(flags: number): PodDevice {
  return flags & EndpointFlags.netkit ? 'netkit' : 'veth';
}

function validate(ep: EndpointSpec): void {
  ipv4ToInt(ep.ip);
  macToBuffer(ep.podMac);
  macToBuffer(ep.gwMac);
  if (!Number.isInteger(ep.hostIfindex) || ep.hostIfindex <= 0) {
    throw new TypeError(`endpoint ${ep.ip}: bad host ifindex ${ep.hostIfindex}`);
  }
}

/**
 * Attaches the pinned pod program where it sees everything the pod sends,
 * replacing what is there: a host veth's tc ingress, or a netkit pair's peer
 * side (which runs when the pod transmits); and bpf_to_pod on what the node
 * sends to the pod (attachToPodProgram). Returns the pod program's id.
 */
export function attachPodProgram(pinDir: string, target: { ifindex: number; netns?: string; device?: PodDevice }): number {
  using prog = BpfProgram.openPinned(programPin(pinDir, 'pod'));
  const id =
    target.device === 'netkit'
      ? attachNetkit({ ifindex: target.ifindex, netns: target.netns, side: 'peer', program: prog })
      : attachTc({ ifindex: target.ifindex, netns: target.netns, direction: 'ingress', program: prog, handle: TC_HANDLE, priority: TC_PRIORITY }).progId;
  attachToPodProgram(pinDir, target);
  return id;
}

/**
 * What attachPodProgram attached that is not there now: the pod program on
 * what the pod sends, bpf_to_pod (where pinned) on what the node sends it.
 * Empty when both run. For CHECK; the device must exist.
 */
export function missingPodPrograms(pinDir: string, target: { ifindex: number; netns?: string; device?: PodDevice }): string[] {
  if (!existsSync(programPin(pinDir, 'pod'))) return [`the pod program (nothing pinned under ${pinDir})`];
  const missing: string[] = [];
  const on = (slot: 'pod' | 'toPod', side: 'peer' | 'primary', direction: 'ingress' | 'egress', what: string): void => {
    using prog = BpfProgram.openPinned(programPin(pinDir, slot));
    const attached =
      target.device === 'netkit'
        ? queryNetkit({ ifindex: target.ifindex, netns: target.netns, side }).includes(prog.id)
        : queryTc({ ifindex: target.ifindex, netns: target.netns, direction, handle: TC_HANDLE, priority: TC_PRIORITY }) === prog.id;
    if (!attached) missing.push(what);
  };
  on('pod', 'peer', 'ingress', 'the pod program on what the pod sends');
  if (existsSync(programPin(pinDir, 'toPod'))) on('toPod', 'primary', 'egress', 'bpf_to_pod on what the node sends it');
  return missing;
}

/**
 * bpf/bpf_to_pod.c where the host stack hands packets to the pod: the host
 * veth's tc egress (everything the bridge forwards to the port, kube-proxy's
 * DNAT'd Service packets among them: br_netfilter bridges those from port to
 * port, past the bridge's own transmit), or a netkit pair's primary side (the
 * node's /32 route to the pod). Where it is not pinned (a dataplane of ABI 1,
 * or one --prepare-downgrade took it from) there is nothing to attach.
 * Returns the program id, or undefined.
 */
export function attachToPodProgram(pinDir: string, target: { ifindex: number; netns?: string; device?: PodDevice }): number | undefined {
  const pin = programPin(pinDir, 'toPod');
  if (!existsSync(pin)) return undefined;
  using prog = BpfProgram.openPinned(pin);
  if (target.device === 'netkit') return attachNetkit({ ifindex: target.ifindex, netns: target.netns, side: 'primary', program: prog });
  return attachTc({ ifindex: target.ifindex, netns: target.netns, direction: 'egress', program: prog, handle: TC_HANDLE, priority: TC_PRIORITY }).progId;
}

/** Removes bpf_to_pod from a pod's host end; tolerant of a device already gone. */
export function detachToPodProgram(target: { ifindex: number; netns?: string; device: PodDevice }): void {
  if (target.device === 'netkit') detachNetkit({ ifindex: target.ifindex, netns: target.netns, side: 'primary' });
  else detachTc({ ifindex: target.ifindex, netns: target.netns, direction: 'egress', handle: TC_HANDLE, priority: TC_PRIORITY });
}

/**
 * Writes the endpoint entry, then attaches the program: anti-spoofing must
 * find the entry from the first packet on. On failure nothing is left.
 */
export function registerEndpoint(pinDir: string, ep: EndpointSpec): void {
  validate(ep);
  using map = openEndpointsMap(pinDir);
  const key = { ip: ep.ip };
  const previous = map.lookup(key);
  map.update(key, { ifindex: ep.hostIfindex, flags: endpointFlags(ep.device, ep.hostport, ep.policyPending), pod_mac: ep.podMac, gw_mac: ep.gwMac, identity: 0 });
  try {
    attachPodProgram(pinDir, { ifindex: ep.hostIfindex, netns: ep.netns, device: ep.device });
  } catch (e) {
    restore(map, key, previous);
    throw e;
  }
}

function restore(map: BpfMap<EndpointKey, EndpointValue>, key: EndpointKey, previous: EndpointValue | undefined): void {
  if (previous) map.update(key, previous);
  else map.delete(key);
}

/**
 * Removes the entry (tolerant of absent) and detaches the program if the
 * veth still exists. detach: false leaves the program to the veth's deletion,
 * which takes it along: detaching a veth's last filter first waits for RCU
 * callbacks in flight (rcu_barrier, up to ~30 ms here) for nothing.
 */
export function unregisterEndpoint(pinDir: string, ip: string, opts: { netns?: string; detach?: boolean } = {}): void {
  ipv4ToInt(ip);
  using map = openEndpointsMap(pinDir);
  const key = { ip };
  const ep = map.lookup(key);
  map.delete(key);
  if (ep && opts.detach !== false) {
    try {
      detachPodProgram({ ifindex: ep.ifindex, netns: opts.netns, device: endpointDevice(Number(ep.flags)) });
    } catch {
      // The veth (or the namespace) is already gone: nothing left to detach.
    }
  }
}

/** Removes the pod program from a pod's host end; tolerant of a device already gone. */
export function detachPodProgram(target: { ifindex: number; netns?: string; device: PodDevice }): void {
  if (target.device === 'netkit') detachNetkit({ ifindex: target.ifindex, netns: target.netns, side: 'peer' });
  else detachTc({ ifindex: target.ifindex, netns: target.netns, direction: 'ingress', handle: TC_HANDLE, priority: TC_PRIORITY });
  detachToPodProgram(target);
}

export function listEndpoints(pinDir: string): (EndpointValue & { ip: string })[] {
  using map = openEndpointsMap(pinDir);
  return [...map.entries()].map(([k, v]) => ({ ip: k.ip, ...v }));
}
