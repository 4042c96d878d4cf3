// The plugin's library, as other packages see it: the one module outside
// src/cni may import (tools/check-layers.ts enforces it). bvcnid serves the
// plugin's commands with it (src/daemon/cni-server.ts), bvcnictl's doctor
// reads the plugin's defaults and socket path. The plugin binary is
// main.ts alone: its stdin, stdout and exit code; everything else here is
// library, run the same way by the plugin and by bvcnid.
export type { NetConf } from './config.js';
export type { Services } from './context.js';
export { PinnedDataplane } from './dataplane.js';
export { cniVariables, configString, daemonSocketPath, nsId, sameNs, type DelegateReply, type DelegateRequest } from './delegate.js';
export { COMMANDS, k8sPodOf, type CniEnv } from './env.js';
export { handle, type Outcome } from './plugin.js';
export { realServices } from './services.js';
