// Keeps the pinned tunnel map equal to the desired state by writing only the
// difference. The map outlives the daemon, so on start the reconciler adopts
// what is pinned (reads it once) and from then on keeps a mirror of what it
// wrote: a diff costs no map reads, and a restart rewrites nothing that is
// already right (no flow sees a changed entry).
import type { TunnelKey, TunnelValue } from '../dataplane/abi.js';
import { entryKey, type TunnelEntry } from '../kube/desired.js';

/** The subset of the loader's BpfMap that reconciliation uses (a fake in unit tests). */
export interface TunnelTable {
  entries(): Iterable<[TunnelKey, TunnelValue]>;
  update(key: TunnelKey, value: TunnelValue): void;
  delete(key: TunnelKey): boolean;
  updateBatch?(entries: [TunnelKey, TunnelValue][]): void;
  deleteBatch?(keys: TunnelKey[]): number;
}

export interface ReconcileResult {
  added: number;
  updated: number;
  removed: number;
  unchanged: number;
}

const sameValue = (a: TunnelValue, b: TunnelValue): boolean => a.node_ip === b.node_ip && a.flags === b.flags;

export interface Diff {
  upserts: TunnelEntry[];
  deletes: TunnelKey[];
  added: number;
  updated: number;
  unchanged: number;
}

export function diffTunnel(current: ReadonlyMap<string, TunnelEntry>, desired: ReadonlyMap<string, TunnelEntry>): Diff {
  const upserts: TunnelEntry[] = [];
  const deletes: TunnelKey[] = [];
  let added = 0;
  let updated = 0;
  let unchanged = 0;
  for (const [k, want] of desired) {
    const have = current.get(k);
    if (!have) {
      upserts.push(want);
      added++;
    } else if (!sameValue(have.value, want.value)) {
      upserts.push(want);
      updated++;
    } else unchanged++;
  }
  for (const [k, have] of current) if (!desired.has(k)) deletes.push(have.key);
  return { upserts, deletes, added, updated, unchanged };
}

export class TunnelReconciler {
  private mirror: Map<string, TunnelEntry> | undefined;

  constructor(private readonly table: TunnelTable) {}

  /** Reads the pinned map into the mirror (on start and after any failed write). */
  adopt(): number {
    const m = new Map<string, TunnelEntry>();
    for (const [key, value] of this.table.entries()) m.set(entryKey(key), { key, value });
    this.mirror = m;
    return m.size;
  }

  get size(): number {
    return this.mirror?.size ?? 0;
  }

  current(): ReadonlyMap<string, TunnelEntry> {
    if (!this.mirror) this.adopt();
    return this.mirror!;
  }

  /**
   * Applies desired − current. Upserts go first, deletes last: when a podCIDR
   * moves or a node's IP changes, traffic always finds an entry.
   */
  apply(desired: ReadonlyMap<string, TunnelEntry>): ReconcileResult {
    const cur = this.current() as Map<string, TunnelEntry>;
    const d = diffTunnel(cur, desired);
    try {
      if (d.upserts.length > 1 && this.table.updateBatch) {
        this.table.updateBatch(d.upserts.map((e) => [e.key, e.value]));
      } else for (const e of d.upserts) this.table.update(e.key, e.value);
      for (const e of d.upserts) cur.set(entryKey(e.key), e);
      if (d.deletes.length > 1 && this.table.deleteBatch) this.table.deleteBatch(d.deletes);
      else for (const k of d.deletes) this.table.delete(k);
      for (const k of d.deletes) cur.delete(entryKey(k));
    } catch (e) {
      // Part of the batch may have landed: the map, not the mirror, is the truth.
      this.mirror = undefined;
      throw e;
    }
    return { added: d.added, updated: d.updated, removed: d.deletes.length, unchanged: d.unchanged };
  }
}
