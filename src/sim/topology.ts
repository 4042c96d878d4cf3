// Addressing of a simulated cluster. One place, so tests, benchmarks, the
// demo and the daemon tests agree on who is where.
import { intToIpv4, ipv4ToInt } from '../../loader/codec.js';
import { Defaults, VXLAN_OVERHEAD } from '../common/defaults.js';

export const UNDERLAY_PREFIX = 24;
/** The underlay router (the nodes' default gateway), inside the underlay namespace. */
export const UNDERLAY_GATEWAY = '192.0.2.1';
export const CLUSTER_CIDR: string = Defaults.clusterCidr;
/** The "internet" server; the only host of 198.51.100.0/24 besides the router. */
export const INTERNET_IP = '198.51.100.1';
export const INTERNET_GATEWAY = '198.51.100.254';
export const INTERNET_PREFIX = 24;

export const VXLAN_PORT: number = Defaults.vxlanPort;
/** flannel's default; the baseline must not share bvcni's UDP port (platform notes). */
export const FLANNEL_VXLAN_PORT = 4789;
export const VNI: number = Defaults.vni;
export { VXLAN_OVERHEAD };

export function nodeIp(index: number): string {
  checkIndex(index);
  return `192.0.2.${10 + index}`;
}

export function podCidr(index: number): string {
  checkIndex(index);
  return `10.244.${index}.0/24`;
}

/** First host of the podCIDR: the bridge address and the pods' gateway. */
export function podGateway(index: number): string {
  checkIndex(index);
  return `10.244.${index}.1`;
}

/** Address of the n-th pod (0-based) that the simulator itself wires to node `index`. */
export function directPodIp(index: number, n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 200) throw new RangeError(`pod number out of range: ${n}`);
  return intToIpv4(ipv4ToInt(`10.244.${index}.0`) + 50 + n);
}

function checkIndex(index: number): void {
  // 192.0.2.10+i must stay a host address and 10.244.i must be a valid octet.
  if (!Number.isInteger(index) || index < 0 || index > 200) throw new RangeError(`node index out of range: ${index}`);
}
