// A full garbage collection on demand, without --expose-gc on the command line.
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Collects everything unreachable now. V8 frees the large objects of a burst of
 * allocation (each list page's JSON text is one string of megabytes, in the
 * large-object space) only in a full collection, which it puts off while the
 * heap is far from its limit: a phase that allocates much again right after
 * (the first policy compile after the lists) then stacks on that garbage.
 */
export function collectGarbage(): void {
  v8.setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}
