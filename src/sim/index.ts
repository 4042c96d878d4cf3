// The simulator's public surface: tests, benchmarks, the demo and the daemon
// tests import from here.
export {
  Cluster,
  createCluster,
  programTunnels,
  removeTunnel,
  restoreTunnel,
  disableChecksumOffload,
  cleanupLeftovers,
  linkInfo,
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
export { startIperfServer, iperf, rrLatency, connRate, median, waitListening, IPERF_PORT, type IperfResult, type RrResult, type ConnRateOptions } from './perf.js';
export { setupFlannel, BASELINE_NFT_TABLE, FLANNEL_DEV } from './flannel.js';
