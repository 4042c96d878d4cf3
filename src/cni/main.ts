// bvcni entry point: read stdin, run one command, write the result or the
// spec's error JSON to stdout. Nothing else ever reaches stdout.
// bvcnid answers when it runs (delegate.ts); otherwise this process does the
// work, and only then loads the handlers, koffi and libbpf.
import { readFileSync, writeSync } from 'node:fs';
import { startupSnapshot } from 'node:v8';
import { toErrorJson } from './errors.js';
import { LATEST } from './version.js';
import { mark, startTrace } from './trace.js';
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
    if (process.env.CNI_COMMAND !== 'VERSION') {
      const { delegate, lostAnswer, FRONT_LOST_ENV } = await import('./delegate.js');
      // Run by the native front after bvcnid lost a request it had: answer as delegate() would.
      const lost = process.env[FRONT_LOST_ENV];
      out = lost ? lostAnswer(stdin, lost) : await delegate(process.env, stdin);
    }
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

/**
 * Every module a command may need, evaluated: the executable's startup
 * snapshot (tools/sea.ts) holds them evaluated, so no call compiles or runs
 * module code. Module evaluation here has no side effect (no file, socket,
 * koffi or environment read: those happen in the functions called later).
 */
async function preload(): Promise<void> {
  await Promise.all([import('./plugin.js'), import('./services.js'), import('./delegate.js'), import('../../loader/libc.js'), import('../dataplane/build.js')]);
}

if (startupSnapshot?.isBuildingSnapshot()) {
  void preload();
  startupSnapshot.setDeserializeMainFunction(() => {
    startTrace();
    void main();
  });
} else {
  startTrace();
  void main();
}
