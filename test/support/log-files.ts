// Reading what a process logged to a file: JSON lines, and the file's mode.
import { readFileSync, statSync } from 'node:fs';

/** Permission bits of a file (0o600, …). */
export const fileMode = (p: string): number => statSync(p).mode & 0o777;

/** A file of JSON lines, parsed; blank lines skipped. */
export const jsonLines = (p: string): Record<string, unknown>[] =>
  readFileSync(p, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
