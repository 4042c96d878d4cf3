// The simulator's public surface: tests, benchmarks, the demo and the daemon
// tests import from here. Typical use:
//
//   const c = await createCluster({ prefix: uniquePrefix('bvx'), nodes: 3, dataplane: 'bvcni', podsPerNode: 2 });
//   try {
//     c.track(await startResponder(c.internet.path));           // whoami/echo server on :7000
//     await tcpWhoami(c.pods[0].path, c.internet.ip);           // → { peer: '192.0.2.10', ... } (masqueraded)
//     await probeMany(c.pods[0].path, [{ ip: c.pods[3].ip, proto: 'udp' }]);
//   } finally { await c.destroy(); }                            // also runs on process exit
//
// Addresses: underlay 192.0.2.0/24 (router .1, node i = .10+i, netns <prefix>-u),
// internet 198.51.100.1 (<prefix>-inet), node i = netns <prefix>-n<i> with uplink
// eth0, podCIDR 10.244.i.0/24, pin dir /sys/fs/bpf/<prefix>-n<i>, conf/bin/state
// dirs under a temp dir; pods <prefix>-n<i>-<name>. 'none' leaves the dataplane
// to a daemon under test; addPod(node, name, { via: 'plugin' }) runs the real
// CNI plugin (the node's installed one if a daemon installed it).
export {
  Cluster,
  createCluster,
  programTunnels,
  removeTunnel,
  restoreTunnel,
  disableChecksumOffload,
  cleanupLeftovers,
  linkInfo,
  vpcDrops,
  VPC_TABLE,
  type ClusterOptions,
  type DataplaneKind,
  type SimNetns,
  type SimNode,
  type SimPod,
  type AddPodOptions,
} from './cluster.js';
export * from './topology.js';
export { startResponder, parsePeerLine, RESPONDER_PORT, type PeerInfo } from './responder.js';
export { ping, tcpWhoami, udpWhoami, tcpCounters, probeMany, type PingOptions, type ProbeTarget, type ProbeOutcome } from './probe.js';
export { loadDataplane, type DataplaneApi, type DropStat } from './dataplane.js';
export { uniquePrefix, netnsPath } from './netns.js';
export { bvcnidCommand, type BvcnidCommand } from './bvcnid.js';
export { startIperfServer, iperf, rrLatency, connRate, median, waitListening, IPERF_PORT, type IperfResult, type RrResult, type ConnRateOptions } from './perf.js';
export { setupFlannel, BASELINE_NFT_TABLE, FLANNEL_DEV } from './flannel.js';
