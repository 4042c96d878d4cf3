export { NetlinkSocket, NetlinkError } from './socket.js';
export * from './rtnl.js';
export { SysError, errnoName } from '../../loader/errors.js';
export { socketIn } from './socket.js';
