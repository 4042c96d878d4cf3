// Small helpers shared by the daemon and API-server tests.

import { waitFor as poll } from '../../src/common/wait.js';
export { sleep } from '../../src/common/wait.js';

/** waitFor with the daemon tests' defaults: 10 s, polled every 20 ms. */
export function waitFor<T>(what: string, cond: () => T | Promise<T>, timeoutMs = 10_000, intervalMs = 20): Promise<T> {
  return poll(what, cond, { timeoutMs, intervalMs });
}
