// THE one place that calls setns. The calling thread (Node's main thread) is
// switched for the duration of a synchronous callback and always switched
// back; if switching back fails the process cannot trust its namespace any
// more and exits, as containernetworking's ns.Do refuses to reuse the thread.
import { closeSync, openSync } from 'node:fs';
import { c } from './bindings.js';
import { BpfError } from './errors.js';
import { koffi } from './ffi.js';

const CLONE_NEWNET = 0x40000000;

export function withNetns<T>(path: string, fn: () => T): T {
  let target: number;
  try {
    target = openSync(path, 'r');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new BpfError(`enter network namespace ${path}`, (err.errno ?? -2) < 0 ? -(err.errno ?? -2) : 2, err.code);
  }
  let home: number | undefined;
  try {
    home = openSync('/proc/thread-self/ns/net', 'r');
    if ((c().setns(target, CLONE_NEWNET) as number) !== 0) {
      throw new BpfError(`enter network namespace ${path}`, koffi().errno(), 'not a network namespace?');
    }
    try {
      const result = fn();
      if (result && typeof (result as { then?: unknown }).then === 'function') {
        throw new TypeError('withNetns: the callback must be synchronous (it returned a promise)');
      }
      return result;
    } finally {
      if ((c().setns(home, CLONE_NEWNET) as number) !== 0) {
        process.stderr.write(`fatal: cannot return to the original network namespace: errno ${koffi().errno()}\n`);
        process.exit(70);
      }
    }
  } finally {
    closeSync(target);
    if (home !== undefined) closeSync(home);
  }
}

/** Runs fn in the namespace when one is given, else right here. */
export function maybeInNetns<T>(path: string | undefined, fn: () => T): T {
  return path ? withNetns(path, fn) : fn();
}
