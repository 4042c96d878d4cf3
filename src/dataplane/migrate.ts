// In-place migration of the pinned maps to the layouts of the programs about
// to be loaded: an upgrade (ABI 1 -> 2) or, run by `bvcnid --prepare-downgrade`
// with the ABI 1 build of the programs, back again.
//
// Each program is bound at load to the maps it was loaded with, so a packet
// only ever meets a program and maps of one version: the new programs run on
// the new maps from the moment tc replaces the old ones. The order:
//
//   plan      every map the new objects declare, against what is pinned:
//             absent (created by the load, nothing to copy), alike (adopted
//             as it is: the programs of both versions share it), or
//             different (converted). A difference with no known conversion
//             refuses here, before anything is created: the map, and why.
//   stage     the new objects loaded with the different maps pinned under
//             <pinDir>/migrate/ (the rest adopted at their usual pins)
//   copy      every entry of each different map, converted (defaults for new
//             fields); per-CPU counters are added after the swap instead
//   commit    <pinDir>/migrate/commit pinned: from here on, roll forward
//   swap      the new programs pinned at the usual names and put in place of
//             the old ones with tc replace (uplink, VXLAN, every pod veth)
//   merge     what the old programs and a plugin alone wrote meanwhile:
//             endpoints, tunnel and config mirrored, NAT entries by their
//             newer last_seen, counters added; then each new map renamed
//             over the old pin
//   done      the staging directory removed; the old maps go with the last
//             program that held them
//
// Progress is the pin directory itself (bpffs lives exactly as long as the
// maps do), so a bvcnid killed at any step finds, at its next start, either
// a staging directory without a commit (rolled back: the old programs never
// saw those maps) or one with it (rolled forward from the swap, which is
// idempotent).
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { BpfMap, BpfObject, BpfProgram, MapType, attachTc, isPerCpu, type MapDef, type MapInfo } from '../../loader/index.js';
import { configKey, configValue, EndpointFlags, MapName, POLICY_ENDPOINT_FLAGS } from './abi.js';
import { attachPodProgram } from './endpoint.js';
import { ABI2_ONLY_OBJECTS, OBJECTS, Programs, TC_HANDLE, TC_PRIORITY, programPin, type ProgramSlot } from './layout.js';
import { pinReplacing, renamePin, unlinkIfExists, unpinTree } from './pins.js';

export const STAGING_DIR = 'migrate';
export const COMMIT_PIN = 'commit';

export const MIGRATION_STEPS = ['staged', 'copied', 'committed', 'swapped', 'merged', 'done'] as const;
export type MigrationStep = (typeof MIGRATION_STEPS)[number];

export interface MigrationOptions {
  pinDir: string;
  /** The program set to migrate to (its maps' layouts are the target). */
  objDir: string;
  /** The node's network namespace; default: the current one. */
  netns?: string;
  /** Called after each step (fault injection in tests: bvcnid killed there). */
  onStep?: (step: MigrationStep) => void;
}

export interface MigrationReport {
  /** What an interrupted migration left and this start did with it. */
  recovered?: 'rolled-back' | 'rolled-forward';
  /** Maps converted into new ones, with their entry counts. */
  converted: { map: string; from: string; to: string; entries: number }[];
  /** Maps the new programs declare that were not pinned: created empty. */
  created: string[];
  /** Maps the old and new programs share as they are. */
  adopted: string[];
  /** Pod veths whose program was replaced during the swap. */
  pods: number;
}

/** What tells the known ABI versions apart in the pinned maps: the endpoint value's size and the stats slots. */
export const ABI_SIGNATURES = {
  1: { endpointValueSize: 20, statsSlots: 64 },
  2: { endpointValueSize: 24, statsSlots: 128 },
} as const;

/**
 * The ABI version of the maps pinned in pinDir (bvcnictl status, the tests):
 * undefined when nothing is pinned or the layout is none this release knows.
 */
export function pinnedAbi(pinDir: string): { version?: number; migrating: boolean } {
  const migrating = existsSync(join(pinDir, STAGING_DIR));
  const ep = pinnedInfo(join(pinDir, MapName.endpoints))?.valueSize;
  const st = pinnedInfo(join(pinDir, MapName.stats))?.maxEntries;
  for (const [v, sig] of Object.entries(ABI_SIGNATURES)) if (ep === sig.endpointValueSize && st === sig.statsSlots) return { version: Number(v), migrating };
  return { migrating };
}

/** A pinned map this release cannot convert: nothing was changed. */
export class MigrationRefused extends Error {
  constructor(
    readonly map: string,
    readonly reason: string,
  ) {
    super(`cannot migrate pinned map ${map}: ${reason}; the node keeps its current dataplane`);
    this.name = 'MigrationRefused';
  }
}

interface ValueConversion {
  from: number;
  to: number;
  convert(v: Buffer): Buffer;
}

/** endpoint_value.flags (host order), at the same offset in every ABI so far. */
const ENDPOINT_FLAGS_OFFSET = 4;

/**
 * Value-size changes this release knows, by map: the ABI history. Equal
 * sizes copy bytes as they are (max_entries and flags may differ).
 */
const VALUE_CONVERSIONS: Partial<Record<string, ValueConversion[]>> = {
  [MapName.endpoints]: [
    // ABI 1 -> 2: identity (offset 20) not yet known.
    { from: 20, to: 24, convert: (v) => Buffer.concat([v, Buffer.alloc(4)]) },
    // ABI 2 -> 1: the identity is dropped (v0.1.0 has no NetworkPolicy), and so
    // are ENDPOINT_F_HOSTPORT and the policy flags, with the hostPort and
    // policy maps (--prepare-downgrade).
    {
      from: 24,
      to: 20,
      convert: (v) => {
        const out = Buffer.from(v.subarray(0, 20));
        const abi2Only = EndpointFlags.hostport | POLICY_ENDPOINT_FLAGS;
        out.writeUInt32LE((out.readUInt32LE(ENDPOINT_FLAGS_OFFSET) & ~abi2Only) >>> 0, ENDPOINT_FLAGS_OFFSET);
        return out;
      },
    },
  ],
};

/** nat_entry.last_seen_ns, at the same offset in every ABI so far. */
const NAT_LAST_SEEN_OFFSET = 8;

type Plan = { name: string; def: MapDef; pinned?: MapInfo; action: 'create' | 'adopt' | 'convert'; conv?: ValueConversion };

function describeLayout(m: { type: number; keySize: number; valueSize: number; maxEntries: number; flags: number }): string {
  return `type ${m.type}, key ${m.keySize} B, value ${m.valueSize} B, ${m.maxEntries} entries, flags ${m.flags}`;
}

/** The maps the objects declare (the three share them; the first declaration wins). */
export function declaredMaps(objDir: string): MapDef[] {
  const out = new Map<string, MapDef>();
  for (const file of objectsIn(objDir)) {
    using obj = BpfObject.open(join(objDir, file));
    for (const d of obj.mapDefs) if (!out.has(d.name)) out.set(d.name, d);
  }
  return [...out.values()];
}

function pinnedInfo(path: string): MapInfo | undefined {
  if (!existsSync(path)) return undefined;
  using m = BpfMap.openPinnedRaw(path);
  return m.info;
}

function alike(p: MapInfo, d: MapDef): boolean {
  return p.type === d.type && p.keySize === d.keySize && p.valueSize === d.valueSize && p.maxEntries === d.maxEntries && p.flags === d.flags;
}

function planMap(pinDir: string, def: MapDef): Plan {
  const pinned = pinnedInfo(join(pinDir, def.name));
  if (!pinned) return { name: def.name, def, action: 'create' };
  if (alike(pinned, def)) return { name: def.name, def, pinned, action: 'adopt' };
  const why = `pinned as ${describeLayout(pinned)}; these programs want ${describeLayout(def)}`;
  if (pinned.type !== def.type) throw new MigrationRefused(def.name, `${why}: the map type differs`);
  if (pinned.keySize !== def.keySize) throw new MigrationRefused(def.name, `${why}: no conversion known for a key of another size`);
  let conv: ValueConversion | undefined;
  if (pinned.valueSize !== def.valueSize) {
    conv = VALUE_CONVERSIONS[def.name]?.find((c) => c.from === pinned.valueSize && c.to === def.valueSize);
    if (!conv) throw new MigrationRefused(def.name, `${why}: no conversion known from a ${pinned.valueSize}-byte value to a ${def.valueSize}-byte one`);
  }
  return { name: def.name, def, pinned, action: 'convert', conv };
}

function openRaw(path: string): BpfMap<Buffer, Buffer> {
  return BpfMap.openPinnedRaw(path);
}

const isArray = (type: number): boolean => type === MapType.array || type === MapType.percpuArray;

/** Array indices past the new map's end have nowhere to go (a downgrade's extra drop reasons). */
function fits(key: Buffer, type: number, maxEntries: number): boolean {
  return !isArray(type) || key.readUInt32LE(0) < maxEntries;
}

/** Copies every entry (per-CPU maps: see addCounters). Returns how many. */
function copyEntries(from: BpfMap<Buffer, Buffer>, to: BpfMap<Buffer, Buffer>, p: Plan): number {
  let n = 0;
  for (const [k, v] of from.entries()) {
    if (!fits(k, p.def.type, p.def.maxEntries)) continue;
    to.update(k, p.conv ? p.conv.convert(v) : v);
    n++;
  }
  return n;
}

/** Per-CPU counters (the stats map: u64s) added into the new map, CPU by CPU. */
function addCounters(from: BpfMap<Buffer, Buffer>, to: BpfMap<Buffer, Buffer>, p: Plan): number {
  let n = 0;
  for (const [k, olds] of from.entriesPerCpu()) {
    if (!fits(k, p.def.type, p.def.maxEntries)) continue;
    const news = to.lookupPerCpu(k) ?? olds.map(() => Buffer.alloc(to.value.size));
    const sums = news.map((nv, cpu) => {
      const ov = p.conv ? p.conv.convert(olds[cpu]!) : olds[cpu]!;
      const out = Buffer.from(nv);
      for (let at = 0; at + 8 <= out.length; at += 8) out.writeBigUInt64LE(out.readBigUInt64LE(at) + ov.readBigUInt64LE(at), at);
      return out;
    });
    to.updatePerCpu(k, sums);
    n++;
  }
  return n;
}

/** After the swap: what the old programs (or a plugin alone) wrote since the copy. */
function mergeEntries(from: BpfMap<Buffer, Buffer>, to: BpfMap<Buffer, Buffer>, p: Plan, opts: { onlyMissing?: boolean } = {}): void {
  if (opts.onlyMissing) {
    for (const [k, v] of from.entries()) {
      if (!fits(k, p.def.type, p.def.maxEntries)) continue;
      try {
        to.update(k, p.conv ? p.conv.convert(v) : v, 'noexist');
      } catch {
        // There already (EEXIST), or an array slot (arrays have every key): the new map's is newer.
      }
    }
    return;
  }
  if (p.name === MapName.nat) {
    // Both versions' programs may have touched a flow: the later packet's view wins.
    for (const [k, v] of from.entries()) {
      const mine = to.lookup(k);
      const theirs = p.conv ? p.conv.convert(v) : v;
      if (!mine || theirs.readBigUInt64LE(NAT_LAST_SEEN_OFFSET) > mine.readBigUInt64LE(NAT_LAST_SEEN_OFFSET)) to.update(k, theirs);
    }
    return;
  }
  // Written by user space only (endpoints by the plugin, tunnel and config by bvcnid): the old map is the truth.
  const seen = new Set<string>();
  for (const [k, v] of from.entries()) {
    if (!fits(k, p.def.type, p.def.maxEntries)) continue;
    seen.add(k.toString('hex'));
    to.update(k, p.conv ? p.conv.convert(v) : v);
  }
  if (isArray(p.def.type)) return;
  for (const k of [...to.keys()]) if (!seen.has(k.toString('hex'))) to.delete(k);
}

/**
 * Brings the pinned maps to the layouts of the programs in opts.objDir, in
 * place, with traffic flowing. A no-op (report with nothing converted) when
 * every pinned map already has its layout.
 */
export function migratePinnedMaps(opts: MigrationOptions): MigrationReport {
  const { pinDir } = opts;
  const staging = join(pinDir, STAGING_DIR);
  const commit = join(staging, COMMIT_PIN);
  const report: MigrationReport = { converted: [], created: [], adopted: [], pods: 0 };
  const step = (s: MigrationStep): void => opts.onStep?.(s);

  if (existsSync(staging) && !existsSync(commit)) {
    // Killed before the commit: no program ever used the staged maps.
    unpinTree(staging);
    report.recovered = 'rolled-back';
  }
  const defs = declaredMaps(opts.objDir);
  let plans: Plan[];
  if (!existsSync(commit)) {
    plans = defs.map((d) => planMap(pinDir, d)); // may refuse: nothing created yet
    for (const p of plans) if (p.action !== 'convert') (p.action === 'create' ? report.created : report.adopted).push(p.name);
    if (!plans.some((p) => p.action === 'convert')) return report;
    mkdirSync(staging, { recursive: true, mode: 0o700 });
    let current = '(staging)';
    try {
      stage(opts, new Set(plans.filter((p) => p.action === 'convert').map((p) => p.name)));
      step('staged');
      for (const p of plans.filter((x) => x.action === 'convert')) {
        current = p.name;
        using from = openRaw(join(pinDir, p.name));
        using to = openRaw(join(staging, p.name));
        const entries = isPerCpu(p.def.type) ? 0 : copyEntries(from, to, p);
        report.converted.push({ map: p.name, from: describeLayout(p.pinned!), to: describeLayout(p.def), entries });
      }
      step('copied');
    } catch (e) {
      unpinTree(staging);
      throw new MigrationRefused(current, `staging the new maps and copying the entries failed (${(e as Error).message}); rolled back`);
    }
    {
      const first = plans.find((p) => p.action === 'convert')!;
      using m = openRaw(join(staging, first.name));
      m.pin(commit);
    }
    step('committed');
  } else {
    report.recovered = 'rolled-forward';
  }

  // Roll forward (also the way on from an interrupted one): idempotent from here.
  const staged = new Set(readdirSync(staging).filter((n) => n !== COMMIT_PIN));
  report.pods = swapPrograms(opts, staged);
  step('swapped');
  for (const name of staged) {
    const def = defs.find((d) => d.name === name);
    const oldPath = join(pinDir, name);
    const newPath = join(staging, name);
    if (!def || !existsSync(oldPath)) {
      renamePin(newPath, oldPath);
      continue;
    }
    const p: Plan = { ...planMap(pinDir, def), name };
    using from = openRaw(oldPath);
    using to = openRaw(newPath);
    if (isPerCpu(def.type)) addCounters(from, to, p);
    else mergeEntries(from, to, p);
    // The old map leaves the pin directory; its last program (replaced above) takes it along.
    renamePin(newPath, oldPath);
    // A writer that opened the old pin before the rename (a plugin's ADD or DEL, a few ms)
    // may have written since the merge: once more, from the old map still open here.
    // Only what is missing: the new map has writers of its own by now.
    if (!isPerCpu(def.type)) mergeEntries(from, to, p, { onlyMissing: true });
  }
  step('merged');
  unlinkIfExists(commit);
  unpinTree(staging);
  step('done');
  return report;
}

/** The objects this set has: an ABI 1 set (--prepare-downgrade) lacks the ABI 2-only ones. */
function objectsIn(objDir: string): string[] {
  return OBJECTS.filter((f) => !ABI2_ONLY_OBJECTS.includes(f) || existsSync(join(objDir, f)));
}

/** Loads the new objects once so the staged maps are created (and pinned) with their declared layouts. */
function stage(opts: MigrationOptions, staged: Set<string>): void {
  for (const file of objectsIn(opts.objDir)) {
    using obj = BpfObject.open(join(opts.objDir, file), { pinPath: pinPathFor(opts.pinDir, staged) });
    obj.load();
  }
}

function pinPathFor(pinDir: string, staged: Set<string>): (name: string) => string {
  return (name) => (staged.has(name) ? join(pinDir, STAGING_DIR, name) : join(pinDir, name));
}

/**
 * The new programs, bound to the staged maps, pinned at the usual names and
 * put in place of the attached ones (tc replace: same handle, no gap).
 * Returns the number of pod veths switched.
 */
function swapPrograms(opts: MigrationOptions, staged: Set<string>): number {
  const pinPath = pinPathFor(opts.pinDir, staged);
  for (const file of objectsIn(opts.objDir)) {
    using obj = BpfObject.open(join(opts.objDir, file), { pinPath });
    obj.load();
    for (const [slot, p] of Object.entries(Programs) as [ProgramSlot, (typeof Programs)[ProgramSlot]][]) {
      if (p.object !== file) continue;
      using prog = obj.program(p.program);
      pinReplacing((at) => prog.pin(at), programPin(opts.pinDir, slot));
    }
  }
  // Where the programs are attached: the config (copied already, in the new layout) knows the devices.
  using config = BpfMap.openPinned(pinPath(MapName.config), configKey, configValue);
  const c = config.lookup(0);
  if (!c || !c.uplink_ifindex) return 0; // never attached: the set-up after this attaches
  const at = (ifindex: number, direction: 'ingress' | 'egress', slot: ProgramSlot): void => {
    using prog = BpfProgram.openPinned(programPin(opts.pinDir, slot));
    try {
      attachTc({ ifindex, netns: opts.netns, direction, program: prog, handle: TC_HANDLE, priority: TC_PRIORITY });
    } catch {
      // The device is gone: the set-up after this recreates and attaches it.
    }
  };
  at(c.uplink_ifindex, 'ingress', 'uplinkIngress');
  at(c.vxlan_ifindex, 'ingress', 'overlayIngress');
  at(c.vxlan_ifindex, 'egress', 'overlayEgress');
  let pods = 0;
  using eps = openRaw(pinPath(MapName.endpoints));
  for (const [, v] of eps.entries()) {
    try {
      attachPodProgram(opts.pinDir, { ifindex: v.readUInt32LE(0), netns: opts.netns });
      pods++;
    } catch {
      // Its veth is gone: the plugin's DEL or GC removes the entry.
    }
  }
  return pods;
}
