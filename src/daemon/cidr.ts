// IPv4 CIDR parsing for Node objects. Strict: a podCIDR with host bits set is
// a configuration error, not something to round silently.
import { intToIpv4, ipv4ToInt } from '../../loader/codec.js';

export interface Cidr {
  /** Network address as an unsigned 32-bit integer. */
  readonly addr: number;
  readonly prefix: number;
}

export function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export type CidrParse = { ok: true; cidr: Cidr } | { ok: false; ipv6: boolean; error: string };

export function parseCidr(text: string): CidrParse {
  if (text.includes(':')) return { ok: false, ipv6: true, error: `${text} is IPv6` };
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(text.trim());
  if (!m) return { ok: false, ipv6: false, error: `${JSON.stringify(text)} is not an IPv4 CIDR` };
  let addr: number;
  try {
    addr = ipv4ToInt(m[1]!);
  } catch {
    return { ok: false, ipv6: false, error: `${JSON.stringify(text)} has an invalid address` };
  }
  const prefix = Number(m[2]);
  if (prefix > 32) return { ok: false, ipv6: false, error: `${JSON.stringify(text)} has prefix > 32` };
  if ((addr & ~maskOf(prefix)) >>> 0 !== 0) return { ok: false, ipv6: false, error: `${text} has host bits set` };
  return { ok: true, cidr: { addr, prefix } };
}

/** Parses or throws (for flags). */
export function cidrOrThrow(text: string, what: string): Cidr {
  const r = parseCidr(text);
  if (!r.ok) throw new Error(`${what}: ${r.error}`);
  return r.cidr;
}

export function isIpv4(text: string): boolean {
  try {
    ipv4ToInt(text);
    return true;
  } catch {
    return false;
  }
}

export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  return inner.prefix >= outer.prefix && ((inner.addr & maskOf(outer.prefix)) >>> 0) === outer.addr;
}

export function cidrKey(c: Cidr): string {
  return `${intToIpv4(c.addr)}/${c.prefix}`;
}

export function cidrString(c: Cidr): string {
  return cidrKey(c);
}

/** The CIDR's network address, masked to prefix p (p ≤ c.prefix). */
export function supernet(c: Cidr, p: number): Cidr {
  return { addr: (c.addr & maskOf(p)) >>> 0, prefix: p };
}
