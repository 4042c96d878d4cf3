// The node dataplane library: what bvcnid, the bvcni plugin, bvcnictl and the
// simulator use to drive the eBPF programs and their pinned maps.
export * from './abi.js';
export { Programs, TC_HANDLE, TC_PRIORITY, defaultObjDir, programPin, type ProgramSlot } from './layout.js';
export { openDataplaneMaps, readDataplaneConfig, mapPin, type DataplaneMaps } from './maps.js';
export { registerEndpoint, unregisterEndpoint, listEndpoints, attachPodProgram, type EndpointSpec } from './endpoint.js';
export {
  migratePinnedMaps,
  pinnedAbi,
  ABI_SIGNATURES,
  declaredMaps,
  MigrationRefused,
  MIGRATION_STEPS,
  STAGING_DIR,
  COMMIT_PIN,
  type MigrationReport,
  type MigrationStep,
} from './migrate.js';
export { readDropStats, readStats, type StatsRow } from './stats.js';
export {
  claimHostPorts,
  releaseHostPorts,
  pruneHostPorts,
  listHostPorts,
  lookupHostPort,
  removeHostPorts,
  protocolName,
  HostPortConflict,
  type HostPortMapping,
  type HostPortEntry,
  type HostPortProtocol,
} from './hostport.js';
export { listNat, collectNat, monotonicNs, type NatFlow } from './nat.js';
export {
  ensureNodeDataplane,
  ensureNodeLinks,
  findUplink,
  removeNodeDataplane,
  dataplaneReady,
  type NodeDataplane,
  type NodeDataplaneConfig,
  type NodeAttachments,
} from './node.js';
export {
  openPolicyMaps,
  openIpcacheMap,
  openPolicyMap,
  openPodCtMap,
  applyPolicyDiff,
  setEndpointPolicyState,
  clearPolicyState,
  listPodCt,
  flushEndpointCt,
  removePolicyMaps,
  policyEntryKey,
  policyLookupKey,
  type PolicyMaps,
  type PolicyDiff,
  type PolicyEntryLike,
  type ApplyReport,
  type EndpointPolicyState,
  type PodCtFlow,
} from './policy.js';
export {
  DropMonitor,
  MonitorBusy,
  MonitorUnavailable,
  monitorAvailable,
  removeMonitorMaps,
  openMonitorConfigMap,
  openMonitorBucketMap,
  MONITOR_LEASE_NS,
  MONITOR_DEFAULT_RATE,
  MONITOR_DEFAULT_BURST,
  type MonitorOptions,
  type TimedDropEvent,
} from './monitor.js';
