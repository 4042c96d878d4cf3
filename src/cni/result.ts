// CNI results in the requested version's format. 0.3.x/0.4.0 ips carry
// "version":"4"; 1.0.0+ dropped it.
import { atLeast, type CniVersion } from './version.js';

export interface Iface {
  name: string;
  mac: string;
  sandbox?: string;
  mtu?: number;
}
export interface IpConfig {
  interface: number;
  address: string;
  gateway: string;
}
export interface RouteJson {
  dst: string;
  gw?: string;
  /** CNI 1.1.0 and later only. */
  mtu?: number;
}
export interface Result {
  cniVersion: string;
  interfaces: Iface[];
  ips: (IpConfig & { version?: '4' })[];
  routes: RouteJson[];
  dns: Record<string, unknown>;
}

export function buildResult(v: CniVersion, interfaces: Iface[], ips: IpConfig[], routes: RouteJson[]): Result {
  const legacy = !atLeast(v, '1.0.0');
  const routeMtu = atLeast(v, '1.1.0');
  return {
    cniVersion: v,
    interfaces,
    ips: ips.map((ip) => (legacy ? { version: '4' as const, ...ip } : { ...ip })),
    routes: routes.map(({ mtu, ...r }) => (routeMtu && mtu !== undefined ? { ...r, mtu } : r)),
    dns: {},
  };
}

/** Chained after another plugin: our entries go after its, with interface indexes shifted. */
export function mergeInto(prev: Record<string, unknown> | undefined, ours: Result): Result {
  if (!prev) return ours;
  const pIfaces = Array.isArray(prev.interfaces) ? (prev.interfaces as Iface[]) : [];
  const pIps = Array.isArray(prev.ips) ? (prev.ips as Result['ips']) : [];
  const pRoutes = Array.isArray(prev.routes) ? (prev.routes as RouteJson[]) : [];
  const dns = prev.dns && typeof prev.dns === 'object' ? (prev.dns as Record<string, unknown>) : {};
  const legacy = ours.ips.some((i) => i.version !== undefined);
  return {
    cniVersion: ours.cniVersion,
    interfaces: [...pIfaces, ...ours.interfaces],
    ips: [
      ...pIps.map((i) => {
        const { version: _v, ...rest } = i;
        return legacy ? { version: '4' as const, ...rest } : rest;
      }),
      ...ours.ips.map((i) => ({ ...i, interface: i.interface + pIfaces.length })),
    ],
    routes: [...pRoutes, ...ours.routes],
    dns,
  };
}
