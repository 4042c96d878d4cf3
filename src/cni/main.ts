// bvcni entry point: read stdin, run one command, write the result or the
// spec's error JSON to stdout. Nothing else ever reaches stdout.
// bvcnid answers when it runs (delegate.ts); otherwise this process does the
// work, and only then loads the handlers, koffi and libbpf.
import { readFileSync, writeSync } from 'node:fs';
import { toErrorJson } from './errors.js';
import { LATEST } from './version.js';
import { mark } from './trace.js';
import type { Outcome } from './plugin.js';

function readStdin(): string {
  if (process.env.CNI_COMMAND === 'VERSION') return '';
  try {
    return readFileSync(0, 'utf8');
  } catch {
    return '';
  }
}

/**
 * Straight to the descriptor: process.stdout would first wrap the runtime's
 * pipe in a stream and close it again at exit (~0.4 ms of every call).
 */
function writeStdout(text: string): void {
  const buf = Buffer.from(text);
  for (let off = 0; off < buf.length; ) {
    try {
      off += writeSync(1, buf, off);
    } catch (e) {
      // A non-blocking pipe that is full: the runtime is reading it.
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') return;
    }
  }
}

async function runLocally(stdin: string): Promise<Outcome> {
  const [{ handle }, { realServices }] = await Promise.all([import('./plugin.js'), import('./services.js')]);
  mark('handlers loaded');
  return handle(process.env, stdin, realServices);
}

async function main(): Promise<void> {
  mark('modules loaded');
  // Run by hand, with no command: say what this is, as the reference plugins do.
  if (!process.env.CNI_COMMAND) {
    const [{ buildLine }, { SUPPORTED_VERSIONS }] = await Promise.all([import('../dataplane/build.js'), import('./version.js')]);
    process.stderr.write(`${buildLine('CNI bvcni plugin')}\nCNI protocol versions supported: ${SUPPORTED_VERSIONS.join(', ')}\n`);
    process.exit(0);
  }
  const stdin = readStdin();
  let out: Outcome | undefined;
  let local = false;
  try {
    // Loaded only when used: VERSION (asked before every ADD and DEL by some runtimes) needs no socket.
    if (process.env.CNI_COMMAND !== 'VERSION') out = await (await import('./delegate.js')).delegate(process.env, stdin);
    if (!out) {
      local = true;
      out = await runLocally(stdin);
    }
  } catch (e) {
    out = { stdout: `${JSON.stringify(toErrorJson(e, LATEST))}\n`, exitCode: 1 };
  }
  mark('command done');
  writeStdout(out.stdout);
  process.exitCode = out.exitCode;
  // Once koffi is loaded, Node's orderly exit (V8, addon and library
  // teardown) costs ~1.5 ms of every ADD/DEL. stdout and the log were written
  // synchronously, nothing is pending: leave at once.
  const c = local ? (await import('../../loader/libc.js')).libcIfLoaded() : undefined;
  if (c) {
    process.emit('exit', out.exitCode);
    c.exit(out.exitCode);
  }
  // Without koffi: process.exit still skips waiting for the closed socket's
  // handles to drain (measured 1.3 ms of every call bvcnid answers).
  process.exit(out.exitCode);
}

void main();
