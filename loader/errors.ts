// Errors you can branch on: every failure carries the operation and the errno
// name, like cilium/ebpf's sentinel errors.
import { constants } from 'node:os';

const ERRNO_NAMES = new Map<number, string>(
  Object.entries(constants.errno).map(([name, num]) => [num as number, name]),
);
ERRNO_NAMES.set(95, 'EOPNOTSUPP');
ERRNO_NAMES.set(524, 'ENOTSUPP'); // kernel-internal, leaks out of some BPF commands

/**
 * errno numbers by name: Node's table for this platform (os.constants.errno)
 * and the kernel-internal ENOTSUPP it lacks. The one place that declares them.
 */
export const Errno = { ...constants.errno, ENOTSUPP: 524 } as const;

export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}

/** A failed system or library call: the operation, the errno and its name. */
export class SysError extends Error {
  readonly code: string;
  constructor(
    readonly op: string,
    readonly errno: number,
    detail?: string,
  ) {
    super(`${op}: ${errnoName(errno)}${detail ? ` (${detail})` : ''}`);
    this.name = 'SysError';
    this.code = errnoName(errno);
  }
}

/** A failed libbpf or bpf(2) call. */
export class BpfError extends SysError {
  constructor(op: string, errno: number, detail?: string) {
    super(op, errno, detail);
    this.name = 'BpfError';
  }
}

/** The kernel's verifier rejected a program; `log` is its full output. */
export class VerifierError extends BpfError {
  constructor(
    op: string,
    errno: number,
    readonly program: string,
    readonly log: string,
  ) {
    super(op, errno, `program ${program} rejected by the verifier: ${summarize(log)}`);
    this.name = 'VerifierError';
  }
}

function summarize(log: string): string {
  // The verifier's reason is on the last meaningful lines before the stats.
  const lines = log
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('processed ') && !l.startsWith('--'));
  return lines.slice(-2).join(' / ') || 'no log';
}

/** libbpf returns -errno (or NULL with errno set); turn either into a BpfError. */
export function check(op: string, ret: number, detail?: string): number {
  if (ret < 0) throw new BpfError(op, -ret, detail);
  return ret;
}
