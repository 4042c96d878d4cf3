// `bvcnictl monitor` run as the operator runs it: the built binary in its own
// process, its --json lines collected, stopped with SIGINT. Every process
// started here is tracked, so a test's `after` can stop what a failure left.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { MonitorLine } from '../../src/cli/commands/monitor.js';
import type { SimNode } from '../../src/sim/index.js';

export const BVCNICTL = fileURLToPath(new URL('../../dist/bin/bvcnictl', import.meta.url));

export interface MonitorRun {
  proc: ChildProcess;
  lines: MonitorLine[];
  stderr: () => string;
  /** SIGINT, then the exit: its code, every event line and stderr. */
  stop(): Promise<{ code: number | null; lines: MonitorLine[]; stderr: string }>;
  exited: Promise<number | null>;
}

const running = new Set<ChildProcess>();

/** Preload that reports each child process the monitor starts on its stderr (`[child_process] FILE`). */
export const CHILD_SPAWNS = fileURLToPath(new URL('./child-spawns.mjs', import.meta.url));

export interface MonitorOptions {
  /** 'flag' (default): from here, with --netns of the node; 'inside': run inside the node's namespace (nsenter), no --netns unless args give one. */
  from?: 'flag' | 'inside';
  /** Node options before the script (e.g. ['--import', CHILD_SPAWNS]). */
  nodeArgs?: string[];
}

/** Starts a monitor on a simulated node and waits until it listens (or fails: the promise then rejects with its stderr). */
export async function startMonitor(n: SimNode, args: string[] = [], o: MonitorOptions = {}): Promise<MonitorRun> {
  const node = [...(o.nodeArgs ?? []), BVCNICTL, 'monitor', '--json', '--pin-dir', n.pinDir];
  // nsenter execs the monitor itself (no fork for a network namespace): signals reach it.
  const proc =
    o.from === 'inside'
      ? spawn('nsenter', [`--net=${n.path}`, '--', process.execPath, ...node, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(process.execPath, [...node, '--netns', n.path, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(proc);
  let out = '';
  let err = '';
  const lines: MonitorLine[] = [];
  let listening = false;
  // Before it listens, stdout holds at most the JSON error of a refusal.
  const drain = (): void => {
    let nl;
    while (listening && (nl = out.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(out.slice(0, nl)) as MonitorLine);
      out = out.slice(nl + 1);
    }
  };
  proc.stdout!.setEncoding('utf8').on('data', (s: string) => {
    out += s;
    drain();
  });
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => (running.delete(proc), resolve(code))));
  await new Promise<void>((resolve, reject) => {
    proc.stderr!.setEncoding('utf8').on('data', (s: string) => {
      err += s;
      if (!listening && err.includes('listening for drops')) {
        listening = true;
        drain();
        resolve();
      }
    });
    void exited.then((code) => reject(new Error(`bvcnictl monitor exited (${code}) before listening: ${err}${out}`)));
  });
  return {
    proc,
    lines,
    stderr: () => err,
    exited,
    async stop() {
      if (proc.exitCode === null) proc.kill('SIGINT');
      const code = await exited;
      if (!proc.stdout!.readableEnded) await once(proc.stdout!, 'end');
      return { code, lines, stderr: err };
    },
  };
}

/** Kills whatever monitor is still running (a failed test's). */
export async function stopAllMonitors(): Promise<void> {
  await Promise.all(
    [...running].map(async (p) => {
      p.kill('SIGKILL');
      if (p.exitCode === null && p.signalCode === null) await once(p, 'exit');
    }),
  );
}
