// The denied-packet flood's sender (flood.c), compiled once per benchmark run
// like tcp_crr.c: small UDP datagrams with sendmmsg, or TCP SYNs through a raw
// socket, every packet a new flow, until stopped (or its time bound passes).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startProcess } from '../../src/common/exec.js';
import type { Cluster, SimNetns } from '../../src/sim/index.js';

export type FloodKind = 'udp' | 'syn';
export const FLOOD_KINDS: readonly FloodKind[] = ['udp', 'syn'];

export interface FloodResult {
  /** Packets the sender's socket accepted. */
  sent: number;
  /** sendmmsg calls a full queue cut short. */
  errors: number;
  elapsedMs: number;
}

export interface RunningFlood {
  /** SIGINT, then what the sender reports. */
  stop(): Promise<FloodResult>;
}

export class Flooder {
  private readonly dir = mkdtempSync(join(tmpdir(), 'bvcni-flood-'));
  private readonly bin = join(this.dir, 'flood');

  constructor() {
    execFileSync('cc', ['-O2', '-Wall', '-Werror', '-o', this.bin, 'test/bench/flood.c']);
  }

  /** Starts flooding `host` from `from` (tracked by the cluster); it stops by itself after `maxSeconds`. */
  start(c: Cluster, from: SimNetns, kind: FloodKind, host: string, maxSeconds: number): RunningFlood {
    const child = c.track(startProcess([this.bin, kind, host, String(maxSeconds)], { netns: from.path }));
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    // 'close', not 'exit': the report on stdout may still be in flight at exit.
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    return {
      async stop() {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
        const code = await exited;
        let j: { sent: number; errors: number; elapsed_ms: number };
        try {
          j = JSON.parse(out) as typeof j;
        } catch {
          throw new Error(`the ${kind} flood from ${from.name} exited ${code}: ${out}${err}`);
        }
        if (!(j.sent > 0)) throw new Error(`the ${kind} flood from ${from.name} sent nothing: ${out}${err}`);
        return { sent: j.sent, errors: j.errors, elapsedMs: j.elapsed_ms };
      },
    };
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
