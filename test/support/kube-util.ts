// Small helpers shared by the daemon and API-server tests.

import { join } from 'node:path';
import { waitFor as poll } from '../../src/common/wait.js';
import type { DaemonConfig } from '../../src/daemon/daemon.js';
export { sleep } from '../../src/common/wait.js';

/** waitFor with the daemon tests' defaults: 10 s, polled every 20 ms. */
export function waitFor<T>(what: string, cond: () => T | Promise<T>, timeoutMs = 10_000, intervalMs = 20): Promise<T> {
  return poll(what, cond, { timeoutMs, intervalMs });
}

/** A daemon's configuration for tests that run the Daemon class in-process: every directory under dir/name. */
export function testDaemonConfig(dir: string, name: string, override: Partial<DaemonConfig> = {}): DaemonConfig {
  return {
    nodeName: name,
    iface: 'eth0',
    clusterCidr: '10.244.0.0/16',
    pinDir: join(dir, name, 'pins'),
    cniConfDir: join(dir, name, 'net.d'),
    cniBinDir: join(dir, name, 'bin'),
    stateDir: join(dir, name, 'state'),
    bridge: 'cni0',
    vxlanDev: 'vxlan.1',
    vxlanPort: 8472,
    vni: 1,
    plugin: join(dir, 'src/bvcni'),
    ...override,
  };
}
