// A pod's interface has the uplink's MTU; only what crosses the VXLAN tunnel
// needs 50 bytes less (dataplane/node.ts). Routes through the gateway that
// carry the overlay's MTU make the pod's own stack size those packets: the
// MSS its TCP offers and accepts, UDP's fragments, EMSGSIZE for a DF sender.
// Without them the pod's first full-size packet to another node's pod does
// not fit the tunnel: bpf_pod answers it with ICMP "fragmentation needed"
// (lib/icmp_frag.h), a round trip the routes save.
import type { Overlay } from './dataplane.js';

export interface OverlayRoute {
  dst: string;
  dstLen: number;
  mtu: number;
}

/**
 * For `o`, the tunnel as bvcnid configured it (Dataplane.overlay): none when
 * the pod's MTU already fits the tunnel (an explicit `mtu`, a bridge of an
 * earlier release) or bvcnid configured nothing.
 */
export function overlayRoutes(o: Overlay | undefined, podMtu: number): OverlayRoute[] {
  if (!o || o.mtu >= podMtu) return [];
  return o.cidrs.map((c) => ({ ...c, mtu: o.mtu }));
}
