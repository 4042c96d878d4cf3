export { NetlinkSocket, NetlinkError } from './socket.js';
export * from './rtnl.js';
export { SysError, errnoName } from './libc.js';
export { socketIn } from './socket.js';
