// What every command handler gets: parsed input plus the side-effecting
// services (dataplane, IPAM store, netlink sockets), injectable for tests.
import { hash64hex } from './hash.js';
import type { NetConf } from './config.js';
import type { Dataplane } from './dataplane.js';
import type { CniEnv } from './env.js';
import type { AttachmentRecord, Reservation, Store } from './ipam/store.js';
import type { Logger } from './log.js';
import type { NetlinkSocket } from '../netlink/socket.js';

export interface Services {
  dataplane: Dataplane;
  store(conf: NetConf): Store;
  /** A netlink socket in the node's (the plugin's own) namespace. */
  hostSocket(): NetlinkSocket;
  /** A netlink socket inside a pod namespace. */
  podSocket(netns: string): NetlinkSocket;
  /**
   * Deletes a pod's host veth (and so its peer), tolerant of absent. The plugin
   * waits for it; bvcnid returns at once and lets the kernel finish later.
   */
  removeHostVeth(host: NetlinkSocket, name: string): void;
  log: Logger;
}

export interface Invocation {
  env: CniEnv;
  conf: NetConf;
  svc: Services;
}

/** What ADD records with the reservation, so DEL and GC undo the attachment where ADD made it (ipam/store.ts). */
export function attachmentRecord(conf: NetConf): AttachmentRecord {
  return { pinDir: conf.pinDir, bridge: conf.bridge };
}

/**
 * Where a reservation's endpoint entry and hostPorts are: the pin dir its ADD
 * recorded; for one without a record (v0.1.0's), the caller's config, which
 * was all there was to go by before.
 */
export function recordedPinDir(r: Reservation | undefined, conf: NetConf): string {
  return r?.record?.pinDir ?? conf.pinDir;
}

/** Host-side veth name: derived from the attachment so DEL and GC find it without the pod namespace. */
export function hostVethName(containerId: string, ifname: string): string {
  return `veth${hash64hex(`${containerId}/${ifname}`).slice(0, 11)}`;
}

/** Who owns an attachment's hostPort entries (bvcni_hostport's owner): the same attachment hash, 64 bits. */
export function hostPortOwner(containerId: string, ifname: string): bigint {
  return BigInt(`0x${hash64hex(`${containerId}/${ifname}`)}`);
}

export const HOST_VETH_RE = /^veth[0-9a-f]{11}$/;

/** The host end of a netkit pod's pair (its primary): the same derivation, its own prefix. */
export function hostNetkitName(containerId: string, ifname: string): string {
  return `nk${hash64hex(`${containerId}/${ifname}`).slice(0, 11)}`;
}

export const HOST_NETKIT_RE = /^nk[0-9a-f]{11}$/;

/** A random unicast, locally administered MAC (Math.random: uniqueness, not secrecy, and no OpenSSL start-up). */
export function randomMac(): string {
  const b = Array.from({ length: 6 }, () => Math.floor(Math.random() * 256));
  b[0] = (b[0]! & 0xfe) | 0x02;
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');
}
