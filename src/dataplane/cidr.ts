// IPv4 CIDR parsing for the node config (addresses through loader/codec.ts).
import { intToIpv4, ipv4ToInt } from '../../loader/codec.js';

export interface Cidr {
  /** Network address, dotted quad. */
  network: string;
  prefix: number;
}

export function parseCidr(text: string, what = 'CIDR'): Cidr {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(text);
  if (!m) throw new TypeError(`${what}: not an IPv4 CIDR: ${JSON.stringify(text)}`);
  const prefix = Number(m[2]);
  if (prefix > 32) throw new TypeError(`${what}: prefix length ${prefix} > 32`);
  const addr = ipv4ToInt(m[1]!);
  return { network: intToIpv4(maskOf(addr, prefix)), prefix };
}

function maskOf(addr: number, prefix: number): number {
  return prefix === 0 ? 0 : (addr & (~0 << (32 - prefix))) >>> 0;
}

export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  return inner.prefix >= outer.prefix && maskOf(ipv4ToInt(inner.network), outer.prefix) === ipv4ToInt(outer.network);
}

export function ipInCidr(ip: string, c: Cidr): boolean {
  return maskOf(ipv4ToInt(ip), c.prefix) === ipv4ToInt(c.network);
}

/** The first host address (the pods' gateway). */
export function firstHost(c: Cidr): string {
  if (c.prefix >= 31) throw new TypeError(`${c.network}/${c.prefix} has no room for a gateway and pods`);
  return intToIpv4(ipv4ToInt(c.network) + 1);
}

/**
 * A stable locally administered MAC derived from an IPv4 address (0a:58 +
 * address, as OVN does), so the gateway MAC survives bridge re-creation and
 * never follows a port's MAC.
 */
export function macForIp(ip: string): string {
  const n = ipv4ToInt(ip);
  const b = [0x0a, 0x58, (n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}
