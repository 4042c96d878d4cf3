// The one registry of bvcnictl commands: main builds the commander program
// from it, tests call the handlers directly.
import type { CommandSpec } from '../types.js';
import { doctor } from './doctor.js';
import { drops } from './drops.js';
import { endpoints } from './endpoints.js';
import { hostports } from './hostports.js';
import { monitor } from './monitor.js';
import { nat } from './nat.js';
import { nodes } from './nodes.js';
import { policy } from './policy.js';
import { status } from './status.js';
import { uninstall } from './uninstall.js';
import { version } from './version.js';

export const commands: readonly CommandSpec[] = [status, nodes, endpoints, hostports, nat, drops, monitor, policy, doctor, uninstall, version];
