// The node's pod bridge: one creation path and one MAC rule for bvcnid and the
// plugin (which makes the bridge itself when it runs without bvcnid).
import { bufferToMac, ipv4ToInt } from '../../loader/codec.js';
import { createBridge, getLink, replaceAddr, setLink, type Link } from './rtnl.js';
import { NetlinkError, type NetlinkSocket } from './socket.js';

const EEXIST = 17;

/**
 * A stable locally administered MAC derived from an IPv4 address (0a:58 +
 * address, as OVN does), so the gateway MAC survives bridge re-creation, is the
 * same whichever of bvcnid or the plugin made the bridge, and never follows a
 * port's MAC.
 */
export function macForIp(ip: string): string {
  const n = ipv4ToInt(ip);
  return bufferToMac(Buffer.from([0x0a, 0x58, (n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]));
}

/** The name is taken by a link of another kind. */
export class NotABridgeError extends Error {
  constructor(
    readonly bridge: string,
    readonly kind: string | undefined,
  ) {
    super(`${bridge} exists and is not a bridge`);
    this.name = 'NotABridgeError';
  }
}

export interface BridgeSpec {
  name: string;
  /** The gateway: the bridge's address, and the source of its MAC (macForIp). */
  gatewayIp: string;
  prefix: number;
  /** A function when working it out costs something the caller may not need (an existing bridge). */
  mtu: number | (() => number);
  /**
   * Also apply MAC, MTU, up and address to a bridge that exists already (bvcnid,
   * which owns it). Without, an existing bridge is taken as it is (the plugin,
   * beside a bvcnid that made it).
   */
  configureExisting: boolean;
}

/** Finds or creates the bridge; returns it as configured. */
export function ensureBridge(s: NetlinkSocket, b: BridgeSpec): Link {
  let link = getLink(s, b.name);
  if (link && link.kind !== 'bridge') throw new NotABridgeError(b.name, link.kind);
  if (link && !b.configureExisting) return link;
  const mtu = typeof b.mtu === 'function' ? b.mtu() : b.mtu;
  const mac = macForIp(b.gatewayIp);
  if (!link) {
    try {
      createBridge(s, { name: b.name, mac });
    } catch (e) {
      // Another ADD created it first: configure it all the same, so neither returns before the gateway address is there.
      if (!(e instanceof NetlinkError && e.errno === EEXIST)) throw e;
    }
    link = getLink(s, b.name);
    if (!link) throw new Error(`bridge ${b.name} vanished after creation`);
    if (link.kind !== 'bridge') throw new NotABridgeError(b.name, link.kind);
  }
  // MTU set after creation, not in it: only a change through the device (from the
  // 1500 a new bridge has) makes the kernel treat it as the user's and stop
  // resetting it to its ports' minimum, or to 1500 whenever the last port leaves. The MAC explicitly:
  // otherwise the bridge takes its lowest port's and the gateway MAC changes under the pods.
  setLink(s, link.index, { mac, mtu, up: true });
  replaceAddr(s, link.index, b.gatewayIp, b.prefix);
  return { ...link, mac, mtu, up: true };
}
