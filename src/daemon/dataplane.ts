// The daemon's view of src/dataplane: the node's devices, programs and pinned
// maps. One module, so the daemon logic is testable against a fake and the
// dataplane library's API is adapted in one place.
import type { TunnelTable } from './reconcile.js';

export interface NodeDataplaneConfig {
  pinDir: string;
  bridge: string;
  vxlanDev: string;
  vxlanPort: number;
  vni: number;
  uplink: string;
  nodeIp: string;
  podCidr: string;
  clusterCidr: string;
  mtu?: number;
  /** Unset: the daemon's own network namespace. */
  netns?: string;
}

export interface DropCount {
  reason: string;
  direction: string;
  packets: bigint;
  bytes: bigint;
}

export interface AttachedDataplane {
  mtu: number;
  tunnel: TunnelTable & { close(): void };
  /** Entries in the NAT table (counted at scrape time). */
  natEntries(): number;
  close(): void;
}

export interface DataplaneDriver {
  ensure(cfg: NodeDataplaneConfig): Promise<AttachedDataplane>;
  remove(cfg: NodeDataplaneConfig): Promise<void>;
  ready(pinDir: string): boolean;
  drops(pinDir: string): DropCount[];
}

interface DataplaneModule {
  ensureNodeDataplane(cfg: NodeDataplaneConfig): Promise<{ mtu: number; close(): void }>;
  removeNodeDataplane(cfg: NodeDataplaneConfig): Promise<void>;
  openDataplaneMaps(pinDir: string): {
    tunnel: TunnelTable & { close(): void };
    endpoints: { close(): void };
    nat?: { keys(): Iterable<unknown>; close(): void };
    config?: { close(): void };
    stats?: { close(): void };
  };
  dataplaneReady?(pinDir: string): boolean;
  readDropStats(pinDir: string): DropCount[];
}

let mod: Promise<DataplaneModule> | undefined;

async function load(): Promise<DataplaneModule> {
  // TODO(bvk): a static import once src/dataplane/index.ts lands (esbuild only bundles static specifiers).
  const specifier = '../dataplane/index.js';
  mod ??= import(specifier).then((m: unknown) => m as DataplaneModule);
  return mod;
}

export const kernelDataplane: DataplaneDriver = {
  async ensure(cfg) {
    const dp = await load();
    const nd = await dp.ensureNodeDataplane(cfg);
    const maps = dp.openDataplaneMaps(cfg.pinDir);
    return {
      mtu: nd.mtu,
      tunnel: maps.tunnel,
      natEntries(): number {
        let n = 0;
        if (maps.nat) for (const _ of maps.nat.keys()) n++;
        return n;
      },
      close(): void {
        for (const m of [maps.tunnel, maps.endpoints, maps.nat, maps.config, maps.stats]) {
          try {
            m?.close();
          } catch {
            // already closed
          }
        }
        nd.close();
      },
    };
  },
  async remove(cfg) {
    await (await load()).removeNodeDataplane(cfg);
  },
  ready(pinDir) {
    return readyOf(pinDir);
  },
  drops(pinDir) {
    return loaded?.readDropStats(pinDir).filter((d) => d.packets > 0n) ?? [];
  },
};

let loaded: DataplaneModule | undefined;
function readyOf(pinDir: string): boolean {
  if (!loaded) return false;
  return loaded.dataplaneReady ? loaded.dataplaneReady(pinDir) : true;
}

/** Loads the dataplane module once, before the synchronous calls (ready, drops) are used. */
export async function preloadDataplane(): Promise<void> {
  loaded = await load();
}
