// The daemon's view of src/dataplane: the node's devices, programs and pinned
// maps. One module, so the daemon logic is testable against a fake and the
// dataplane library's API is adapted in one place.
import { dataplaneReady, ensureNodeDataplane, findUplink, readDropStats, removeNodeDataplane, type MigrationReport, type MigrationStep } from '../dataplane/index.js';
import type { TunnelTable } from './reconcile.js';
import { keyWalk, type EntryWalk } from './nat-count.js';

export type { NodeDataplaneConfig } from '../dataplane/index.js';
import type { NodeDataplaneConfig } from '../dataplane/index.js';

export interface DropCount {
  reason: string;
  direction: string;
  packets: bigint;
  bytes: bigint;
}

export interface AttachedDataplane {
  mtu: number;
  /** What the start-up's map migration did (src/dataplane/migrate.ts). */
  migration?: MigrationReport;
  tunnel: TunnelTable & { close(): void };
  /** A fresh count of the NAT table, `slice` entries a step (run in the background: src/daemon/nat-count.ts). */
  natWalk(slice: number): EntryWalk;
  /** Whether the node's own sockets reach hostPorts (bpf_sock.c), or why not. */
  nodeHostPorts?: { attached: true } | { attached: false; reason: string };
  /** What set-up replaced or changed (the VXLAN device, the VNI): logged as warnings. */
  notes?: string[];
  close(): void;
}

export interface DataplaneDriver {
  /** The uplink when --iface is not given: see src/dataplane's findUplink. */
  findUplink(nodeIp: string): Promise<string>;
  ensure(cfg: NodeDataplaneConfig): Promise<AttachedDataplane>;
  remove(cfg: NodeDataplaneConfig): Promise<void>;
  ready(pinDir: string): boolean;
  drops(pinDir: string): DropCount[];
}

/**
 * Fault injection for test/integration/upgrade.test.ts: BVCNI_TEST_KILL_AT_MIGRATION_STEP=<step>
 * makes bvcnid SIGKILL itself right after that step of a migration, as a crash
 * or an OOM kill there would.
 */
export function killAtStep(): ((step: MigrationStep) => void) | undefined {
  const at = process.env.BVCNI_TEST_KILL_AT_MIGRATION_STEP;
  if (!at) return undefined;
  return (step) => {
    if (step === at) process.kill(process.pid, 'SIGKILL');
  };
}

export const kernelDataplane: DataplaneDriver = {
  findUplink: (nodeIp) => findUplink(nodeIp),
  async ensure(cfg) {
    const nd = await ensureNodeDataplane({ ...cfg, onMigrationStep: cfg.onMigrationStep ?? killAtStep() });
    return {
      mtu: nd.mtu,
      migration: nd.migration,
      tunnel: nd.maps.tunnel,
      natWalk: (slice) => nd.maps.nat.batchCounter(slice) ?? keyWalk(nd.maps.nat.keys(), slice),
      nodeHostPorts: nd.nodeHostPorts,
      notes: nd.notes,
      close: () => nd.close(),
    };
  },
  async remove(cfg) {
    await removeNodeDataplane(cfg);
  },
  ready: (pinDir) => dataplaneReady(pinDir),
  drops: (pinDir) => readDropStats(pinDir),
};
