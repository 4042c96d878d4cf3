// Shared pieces of the upgrade tests and benchmark: long-lived flows whose
// whole life is reported at the end, the pinned maps' layouts, rolling one
// node's bvcnid to another build.
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BpfMap } from '../../loader/index.js';
import { ABI_SIGNATURES, MapName, STAGING_DIR } from '../../src/dataplane/index.js';
import type { Cluster, SimNetns } from '../../src/sim/index.js';
import { BVCNID, THIS_BUILD, type DaemonBuild, type DaemonProc } from './kube-daemons.js';
import { waitFor } from './kube-util.js';

const SCRIPT = fileURLToPath(new URL('./upgrade-traffic.py', import.meta.url));

/** One flow end (test/support/upgrade-traffic.py): ready line first, its report at SIGTERM. */
export class FlowEnd<R = Record<string, unknown>> {
  readonly #lines: Record<string, unknown>[] = [];
  readonly #exited: Promise<void>;
  readonly child: ChildProcess;
  #err = '';

  constructor(c: Cluster, ns: SimNetns, readonly mode: string, args: (string | number)[]) {
    this.child = c.spawn(ns, ['python3', '-u', SCRIPT, mode, ...args.map(String)]);
    let buf = '';
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        this.#lines.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
        buf = buf.slice(i + 1);
      }
    });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.#err += d));
    this.#exited = new Promise((r) => this.child.once('exit', () => r()));
  }

  async ready(timeoutMs = 10_000): Promise<Record<string, unknown>> {
    await waitFor(`${this.mode} ready`, () => this.#lines.some((l) => l.ready) || this.child.exitCode !== null, timeoutMs);
    const r = this.#lines.find((l) => l.ready);
    if (!r) throw new Error(`${this.mode} exited before it was ready: ${this.#err.trim()}`);
    return r;
  }

  /** SIGTERM, then its report. */
  async finish(timeoutMs = 20_000): Promise<R> {
    if (this.child.exitCode === null) this.child.kill('SIGTERM');
    await Promise.race([this.#exited, new Promise((r) => setTimeout(r, timeoutMs))]);
    const r = this.#lines.find((l) => !l.ready);
    if (!r) throw new Error(`${this.mode} gave no report (exit ${this.child.exitCode}): ${this.#err.trim()}`);
    return r as R;
  }
}

export interface PinnedLayout {
  /** Value size and max_entries of every pinned map, by name. */
  maps: Record<string, { valueSize: number; maxEntries: number }>;
  staging: boolean;
}

export function pinnedLayout(pinDir: string): PinnedLayout {
  const maps: PinnedLayout['maps'] = {};
  for (const name of Object.values(MapName)) {
    const p = join(pinDir, name);
    if (!existsSync(p)) continue;
    using m = BpfMap.openPinnedRaw(p);
    maps[name] = { valueSize: m.info.valueSize, maxEntries: m.info.maxEntries };
  }
  return { maps, staging: existsSync(join(pinDir, STAGING_DIR)) };
}

/** ABI 1 (v0.1.0) or 2, by what tells them apart (src/dataplane/migrate.ts, ABI_SIGNATURES). */
export function abiOf(l: PinnedLayout): 1 | 2 | undefined {
  const ep = l.maps[MapName.endpoints]?.valueSize;
  const st = l.maps[MapName.stats]?.maxEntries;
  for (const v of [1, 2] as const) if (ep === ABI_SIGNATURES[v].endpointValueSize && st === ABI_SIGNATURES[v].statsSlots) return v;
  return undefined;
}

/** This build's --prepare-downgrade on a node (its bvcnid stopped). */
export async function prepareDowngrade(c: Cluster, d: DaemonProc, env: Record<string, string> = {}): Promise<{ code: number; out: string }> {
  const envArgs = Object.keys(env).length ? ['env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`)] : [];
  const r = await c.exec(d.node, [...envArgs, process.execPath, BVCNID, '--prepare-downgrade', '--pin-dir', d.node.pinDir, '--log-level', 'info'], {
    allowFail: true,
  });
  return { code: r.code, out: r.stdout + r.stderr };
}

/** Stops the node's bvcnid (SIGTERM, as a rollout does) and starts `build` in its place; resolves when ready. */
export async function roll(d: DaemonProc, build: DaemonBuild, opts: { beforeStart?: () => Promise<void>; readyTimeoutMs?: number } = {}): Promise<void> {
  await d.kill('SIGTERM');
  await opts.beforeStart?.();
  d.build = build;
  d.start();
  await waitFor(`${d.node.name} ready on ${build.name}`, () => d.ready(), opts.readyTimeoutMs ?? 60_000);
}

export { THIS_BUILD };
