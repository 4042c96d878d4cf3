// IPv4 CIDRs, for every part of bvcni: one parser, one set of predicates.
// Addresses are unsigned 32-bit integers in host arithmetic (network meaning);
// dotted quads are parsed and printed by loader/codec.ts.
import { intToIpv4, ipv4ToInt } from '../../loader/codec.js';

export interface Cidr {
  /** Network address with the host bits cleared. */
  readonly addr: number;
  readonly prefix: number;
}

export class CidrError extends TypeError {
  constructor(
    message: string,
    readonly ipv6 = false,
  ) {
    super(message);
    this.name = 'CidrError';
  }
}

export interface ParseOptions {
  /** Names the value in error messages (a flag, a config field, a Node). */
  what?: string;
  /** Refuse host bits (10.244.1.5/24): a Node's podCIDR must be exact. Default: mask them off. */
  strict?: boolean;
}

const CIDR_RE = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/;

export function parseCidr(text: string, opts: ParseOptions = {}): Cidr {
  const what = opts.what ? `${opts.what}: ` : '';
  const shown = JSON.stringify(String(text)).slice(0, 80);
  if (typeof text !== 'string') throw new CidrError(`${what}not an IPv4 CIDR: ${shown}`);
  if (text.includes(':')) throw new CidrError(`${what}${shown} is IPv6; bvcni is IPv4 only`, true);
  const m = CIDR_RE.exec(text.trim());
  if (!m) throw new CidrError(`${what}not an IPv4 CIDR: ${shown}`);
  let ip: number;
  try {
    ip = ipv4ToInt(m[1]!);
  } catch {
    throw new CidrError(`${what}${shown} has an invalid address`);
  }
  const prefix = Number(m[2]);
  if (prefix > 32) throw new CidrError(`${what}${shown} has a prefix longer than 32`);
  const addr = (ip & maskOf(prefix)) >>> 0;
  if (opts.strict && addr !== ip) throw new CidrError(`${what}${shown} has host bits set`);
  return { addr, prefix };
}

export function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export function formatCidr(c: Cidr): string {
  return `${intToIpv4(c.addr)}/${c.prefix}`;
}

export function broadcastOf(c: Cidr): number {
  return (c.addr | ~maskOf(c.prefix)) >>> 0;
}

export function containsIp(c: Cidr, ip: string | number): boolean {
  const n = typeof ip === 'number' ? ip : ipv4ToInt(ip);
  return ((n & maskOf(c.prefix)) >>> 0) === c.addr;
}

export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  return inner.prefix >= outer.prefix && containsIp(outer, inner.addr);
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return cidrContains(a, b) || cidrContains(b, a);
}

/** The first host address: the bridge's, the pods' gateway. */
export function firstHost(c: Cidr): string {
  if (c.prefix >= 31) throw new CidrError(`${formatCidr(c)} has no room for a gateway and pods`);
  return intToIpv4(c.addr + 1);
}

export function isIpv4(text: string): boolean {
  try {
    ipv4ToInt(text);
    return true;
  } catch {
    return false;
  }
}
