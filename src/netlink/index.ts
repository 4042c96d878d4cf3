export { NetlinkSocket, NetlinkError } from './socket.js';
export * from './rtnl.js';
export { ensureBridge, macForIp, NotABridgeError, type BridgeSpec } from './bridge.js';
export { ensureSysctl, readSysctl } from './sysctl.js';
export { SysError, errnoName } from '../../loader/errors.js';
export { socketIn } from './socket.js';
