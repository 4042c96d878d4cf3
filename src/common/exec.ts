// Running external tools (ip, tc, nsenter, iperf3...). One place, so every
// caller gets the same error shape and the same namespace entry (nsenter, not
// `ip netns exec`, which hides /sys/fs/bpf).
import { execFile, execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { scaledTimeout } from './wait.js';

export interface RunOptions {
  /** Network namespace path to run in (e.g. /run/netns/X); entered with nsenter. */
  netns?: string;
  input?: string;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** Resolve instead of reject on a non-zero exit. */
  allowFail?: boolean;
  /** Kills the child when aborted (run only): it then ends as a failed run. */
  signal?: AbortSignal;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class CommandError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly result: RunResult,
  ) {
    super(`${argv.join(' ')} exited ${result.code}: ${(result.stderr || result.stdout).trim().slice(0, 2000)}`);
    this.name = 'CommandError';
  }
}

export function inNetns(argv: readonly string[], netns?: string): string[] {
  return netns ? ['nsenter', `--net=${netns}`, '--', ...argv] : [...argv];
}

export function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const full = inNetns(argv, opts.netns);
  return new Promise((resolve, reject) => {
    const child = execFile(
      full[0]!,
      full.slice(1),
      { timeout: scaledTimeout(opts.timeoutMs ?? 60_000), env: opts.env, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8', signal: opts.signal },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        const result = { code, stdout, stderr };
        if (code !== 0 && !opts.allowFail) reject(new CommandError(full, result));
        else resolve(result);
      },
    );
    // A child may exit without reading its stdin (the plugin's front answers VERSION at once):
    // its exit status tells, as Go's os/exec decides for the runtimes that call a plugin.
    child.stdin?.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') reject(err);
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

/** Synchronous variant for teardown paths (process exit handlers, finally blocks). */
export function runSync(argv: readonly string[], opts: RunOptions = {}): RunResult {
  const full = inNetns(argv, opts.netns);
  try {
    const stdout = execFileSync(full[0]!, full.slice(1), {
      input: opts.input,
      timeout: scaledTimeout(opts.timeoutMs ?? 60_000),
      env: opts.env,
      encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'pipe'],
      maxBuffer: 64 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr: '' };
  } catch (e) {
    const err = e as { status?: number | null; stdout?: string; stderr?: string };
    const result = { code: err.status ?? 1, stdout: String(err.stdout ?? ''), stderr: String(err.stderr ?? '') };
    if (opts.allowFail) return result;
    throw new CommandError(full, result);
  }
}

/** Starts a long-running process (optionally inside a netns); the caller owns its lifetime. */
export function startProcess(argv: readonly string[], opts: { netns?: string } & SpawnOptions = {}): ChildProcess {
  const { netns, ...spawnOpts } = opts;
  const full = inNetns(argv, netns);
  return spawn(full[0]!, full.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], ...spawnOpts });
}
