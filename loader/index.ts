// The TypeScript binding to libbpf. Knows nothing of Kubernetes or of bvcni's
// maps: those live in src/dataplane.
export { BpfError, Errno, SysError, VerifierError, errnoName } from './errors.js';
export { BpfObject, type MapDef, type OpenOptions } from './object.js';
export { BpfProgram } from './program.js';
export { BpfMap, BatchCounter, numPossibleCpus, type UpdateFlag } from './map.js';
export { MapType, isPerCpu, mapInfo, programInfo, type MapInfo, type ProgramInfo } from './info.js';
export {
  attachTc,
  detachTc,
  destroyClsact,
  ensureClsact,
  ifIndex,
  queryTc,
  type TcAttachment,
  type TcDirection,
  type TcTarget,
} from './tc.js';
export { attachNetkit, detachNetkit, queryNetkit, NetkitAttach, type NetkitSide, type NetkitTarget } from './netkit.js';
export { withNetns, maybeInNetns } from './netns.js';
export { attachCgroupPinned, detachCgroupPinned, netnsCookie, CgroupAttach, type CgroupAttachType } from './cgroup.js';
export { testRun, type TestRunResult } from './testrun.js';
export { preload } from './ffi.js';
export { setLibbpfLogger, type LibbpfLevel, type LibbpfLogger } from './log.js';
export * from './codec.js';
export { RingBufReader, type RingBufPoll } from './ringbuf.js';
