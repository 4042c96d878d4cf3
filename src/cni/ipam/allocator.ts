// Address allocation over a Store. Callers hold the store's lock.
import { broadcastOf, formatCidr, type Cidr } from '../../common/cidr.js';
import { Code, CniError } from '../errors.js';
import type { AttachmentRecord, Reservation, Store } from './store.js';

/** First and last assignable host: never the network, the gateway or the broadcast address. */
export function poolRange(c: Cidr): { first: number; last: number } {
  return { first: (c.addr + 2) >>> 0, last: (broadcastOf(c) - 1) >>> 0 };
}

export function poolSize(c: Cidr): number {
  const { first, last } = poolRange(c);
  return Math.max(0, last - first + 1);
}

export function inPool(c: Cidr, ip: number): boolean {
  const { first, last } = poolRange(c);
  return ip >= first && ip <= last;
}

export function findByAttachment(store: Store, containerId: string, ifname: string): Reservation | undefined {
  return store.byAttachment(containerId, ifname);
}

/**
 * Reserves the next free address after the last one handed out (round-robin,
 * so a freed address is not reused at once), with what DEL and GC will
 * need to undo the attachment.
 */
export function allocate(store: Store, c: Cidr, containerId: string, ifname: string, record?: AttachmentRecord): number {
  const { first, last } = poolRange(c);
  const size = last - first + 1;
  const used = new Set(store.usedIps());
  const prev = store.lastReserved();
  let start = prev !== undefined && prev >= first && prev <= last ? prev + 1 : first;
  if (start > last) start = first;
  for (let i = 0; i < size; i++) {
    const ip = first + ((start - first + i) % size);
    if (used.has(ip)) continue;
    if (store.reserve({ ip, containerId, ifname, ...(record ? { record } : {}) })) {
      store.setLastReserved(ip);
      return ip;
    }
  }
  throw new CniError(Code.poolExhausted, `no free address in the pod CIDR ${formatCidr(c)}`, `all ${size} addresses are reserved`);
}

/** Releases every reservation of one attachment; returns the released addresses. */
export function releaseAttachment(store: Store, containerId: string, ifname: string): number[] {
  const r = store.byAttachment(containerId, ifname);
  if (!r) return [];
  store.release(r);
  return [r.ip];
}

export function freeCount(store: Store, c: Cidr): number {
  return poolSize(c) - store.usedIps().filter((ip) => inPool(c, ip)).length;
}
