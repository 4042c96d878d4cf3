// The plugin's log: JSON lines appended to <dataDir>/bvcni.log, never stdout
// (stdout belongs to the runtime). Logging must never fail a CNI call.
//
// The lines carry container IDs, so the file is the owner's alone (0600, and an
// older world-readable one is put right on the next write). It is bounded: past
// maxBytes it becomes bvcni.log.1 (the older ones shift up to .<keep>, the
// oldest is dropped), so a node that runs pods for years keeps at most
// (keep + 1) × maxBytes of it.
//
// Cost on the hot path: each line is open + fstat + write + close. The fstat
// (size and mode) is the only call added to what appendFileSync did; the rest
// (rename, flock) happens only when the file is full or has the wrong mode.
import { closeSync, constants, fchmodSync, fstatSync, mkdirSync, openSync, renameSync, statSync, writeSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { libc } from '../../loader/libc.js';

export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export const LOG_DEFAULTS = {
  file: 'bvcni.log',
  /** A line is ~300 bytes: about 13,000 CNI calls per file. */
  maxBytes: 4 * 1024 * 1024,
  /** Rotated files kept: bvcni.log.1 (newest) .. bvcni.log.<keep>. */
  keep: 2,
  mode: 0o600,
} as const;

export interface LogFileOptions {
  maxBytes?: number;
  keep?: number;
}

const OPEN_FLAGS = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT; // libuv adds O_CLOEXEC itself
const LOCK_EX = 2;

function openLog(path: string): number {
  return openSync(path, OPEN_FLAGS, LOG_DEFAULTS.mode);
}

/**
 * Moves the full file aside and returns a descriptor of a fresh one. Several
 * plugin processes (and bvcnid) may find the file full at once: the flock on
 * the full file lets one of them rotate; the others then see that the path
 * names another file and write to that one, so no generation is shifted twice.
 */
function rotate(path: string, fd: number, full: Stats, keep: number): number {
  try {
    libc().flock(fd, LOCK_EX); // released when fd is closed
  } catch {
    // No koffi: rotate unlocked (a race then costs one old generation, never a line).
  }
  let current: Stats | undefined;
  try {
    current = statSync(path);
  } catch {
    current = undefined;
  }
  if (current && current.ino === full.ino && current.dev === full.dev) {
    for (let i = keep - 1; i >= 1; i--) {
      try {
        renameSync(`${path}.${i}`, `${path}.${i + 1}`);
      } catch {
        /* that generation does not exist yet */
      }
    }
    renameSync(path, `${path}.1`);
  }
  const fresh = openLog(path);
  closeSync(fd);
  return fresh;
}

function appendLine(dir: string, line: string, maxBytes: number, keep: number): void {
  const path = join(dir, LOG_DEFAULTS.file);
  let fd: number;
  try {
    fd = openLog(path);
  } catch {
    mkdirSync(dir, { recursive: true });
    fd = openLog(path);
  }
  try {
    const buf = Buffer.from(line);
    const st = fstatSync(fd);
    // Written by v0.1.0 (0644), or by hand: container IDs are nobody else's business.
    if ((st.mode & 0o077) !== 0) fchmodSync(fd, LOG_DEFAULTS.mode);
    if (st.size > 0 && st.size + buf.length > maxBytes) fd = rotate(path, fd, st, keep);
    for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off);
  } finally {
    closeSync(fd);
  }
}

export function fileLogger(dir: string, base: Record<string, unknown>, opts: LogFileOptions = {}): Logger {
  const maxBytes = opts.maxBytes ?? LOG_DEFAULTS.maxBytes;
  const keep = opts.keep ?? LOG_DEFAULTS.keep;
  if (!Number.isInteger(maxBytes) || maxBytes < 1) throw new TypeError(`log maxBytes must be a positive integer, not ${maxBytes}`);
  if (!Number.isInteger(keep) || keep < 1 || keep > 9) throw new TypeError(`log keep must be an integer 1..9, not ${keep}`);
  const write = (level: string, msg: string, fields?: Record<string, unknown>): void => {
    const line = JSON.stringify({ time: new Date().toISOString(), level, pid: process.pid, ...base, msg, ...fields });
    try {
      appendLine(dir, `${line}\n`, maxBytes, keep);
    } catch {
      /* nowhere to log: the result on stdout still tells the runtime */
    }
  };
  return { info: (m, f) => write('info', m, f), error: (m, f) => write('error', m, f) };
}

export const nullLogger: Logger = { info() {}, error() {} };
