// The plugin's log: JSON lines appended to <dataDir>/bvcni.log, never stdout
// (stdout belongs to the runtime). Logging must never fail a CNI call.
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export function fileLogger(dir: string, base: Record<string, unknown>): Logger {
  const write = (level: string, msg: string, fields?: Record<string, unknown>): void => {
    const line = JSON.stringify({ time: new Date().toISOString(), level, pid: process.pid, ...base, msg, ...fields });
    try {
      appendFileSync(join(dir, 'bvcni.log'), `${line}\n`);
    } catch {
      try {
        mkdirSync(dir, { recursive: true });
        appendFileSync(join(dir, 'bvcni.log'), `${line}\n`);
      } catch {
        /* nowhere to log: the result on stdout still tells the runtime */
      }
    }
  };
  return { info: (m, f) => write('info', m, f), error: (m, f) => write('error', m, f) };
}

export const nullLogger: Logger = { info() {}, error() {} };
