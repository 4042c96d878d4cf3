import { intToIpv4, ipv4ToInt } from '../../loader/codec.js';

export interface Cidr {
  /** Network address as an unsigned int. */
  network: number;
  prefix: number;
}

export function parseCidr(s: string): Cidr {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(s);
  if (!m) throw new TypeError(`not an IPv4 CIDR: ${JSON.stringify(s).slice(0, 64)}`);
  const prefix = Number(m[2]);
  if (prefix > 32) throw new TypeError(`prefix length out of range: ${prefix}`);
  const ip = ipv4ToInt(m[1]!);
  return { network: (ip & mask(prefix)) >>> 0, prefix };
}

export function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export function broadcast(c: Cidr): number {
  return (c.network | ~mask(c.prefix)) >>> 0;
}

export function contains(c: Cidr, ip: number): boolean {
  return ((ip & mask(c.prefix)) >>> 0) === c.network;
}

export function formatCidr(c: Cidr): string {
  return `${intToIpv4(c.network)}/${c.prefix}`;
}

/** The pods' gateway: the bridge's address, the first host of the podCIDR. */
export function gateway(c: Cidr): number {
  return (c.network + 1) >>> 0;
}
