// Routes libbpf's own messages (verifier logs among them) to one logger
// instead of raw stderr. Registered once per process.
import { bpf, c } from './bindings.js';
import { koffi } from './ffi.js';

export type LibbpfLevel = 'warn' | 'info' | 'debug';
export type LibbpfLogger = (level: LibbpfLevel, msg: string) => void;

const LEVELS: LibbpfLevel[] = ['warn', 'info', 'debug'];
let logger: LibbpfLogger = () => {};
let capture: string[] | undefined;
let installed = false;
const scratch = Buffer.alloc(64 * 1024);

export function setLibbpfLogger(fn: LibbpfLogger): void {
  logger = fn;
  installPrintCallback();
}

export function installPrintCallback(): void {
  if (installed) return;
  const k = koffi();
  const proto = k.proto('int bvcni_libbpf_print(int level, const char *fmt, void *ap)');
  const cb = k.register((level: number, fmt: string, ap: unknown) => {
    const n = c().vsnprintf(scratch, scratch.length, fmt, ap) as number;
    const msg = scratch.toString('utf8', 0, Math.max(0, Math.min(n, scratch.length - 1)));
    capture?.push(msg);
    logger(LEVELS[level] ?? 'debug', msg.replace(/\n$/, ''));
    return 0;
  }, k.pointer(proto));
  bpf().libbpf_set_print(cb);
  installed = true;
}

/** Runs fn while collecting every libbpf message it causes. */
export function withLibbpfCapture<T>(fn: () => T): { result?: T; error?: unknown; messages: string } {
  installPrintCallback();
  const previous = capture;
  const mine: string[] = [];
  capture = mine;
  try {
    return { result: fn(), messages: mine.join('') };
  } catch (error) {
    return { error, messages: mine.join('') };
  } finally {
    capture = previous;
  }
}
