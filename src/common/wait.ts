// Polling for a condition with a deadline: the simulator, the demo and the
// tests all wait for processes, sockets and maps to settle.

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** Asked before every try: a message ends the wait at once (a process that died, say). */
  abortIf?: () => string | undefined;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Deadlines stretched by BVCNI_TIMEOUT_SCALE (default 1): `make test-kernels`
 * runs the simulator in software-emulated VMs, where a Node start-up alone can
 * take tens of seconds. Deadlines only: no test asserts on elapsed time.
 */
export function scaledTimeout(ms: number): number {
  const k = Number(process.env.BVCNI_TIMEOUT_SCALE);
  return Number.isFinite(k) && k > 1 ? Math.round(ms * k) : ms;
}

/**
 * Polls cond until it returns a truthy value, which it returns. An exception
 * from cond counts as "not yet" and is reported if the deadline passes.
 */
export async function waitFor<T>(what: string, cond: () => T | Promise<T>, opts: WaitOptions = {}): Promise<T> {
  const timeoutMs = scaledTimeout(opts.timeoutMs ?? 10_000);
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    const problem = opts.abortIf?.();
    if (problem) throw new Error(`${what}: ${problem}`);
    try {
      const v = await cond();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    }
    await sleep(opts.intervalMs ?? 50);
  }
}
