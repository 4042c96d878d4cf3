// bvcni entry point: read stdin, run one command, write the result or the
// spec's error JSON to stdout. Nothing else ever reaches stdout.
import { readFileSync } from 'node:fs';
import { handle } from './plugin.js';
import { realServices } from './services.js';
import { toErrorJson } from './errors.js';
import { LATEST } from './version.js';
import { mark } from './trace.js';
import { libcIfLoaded } from '../netlink/libc.js';

function readStdin(): string {
  if (process.env.CNI_COMMAND === 'VERSION') return '';
  try {
    return readFileSync(0, 'utf8');
  } catch {
    return '';
  }
}

function main(): void {
  mark('modules loaded');
  let out;
  try {
    out = handle(process.env, readStdin(), realServices);
  } catch (e) {
    out = { stdout: `${JSON.stringify(toErrorJson(e, LATEST))}\n`, exitCode: 1 };
  }
  mark('command done');
  process.stdout.write(out.stdout);
  process.exitCode = out.exitCode;
  // Once koffi is loaded, Node's orderly exit (V8, addon and library
  // teardown) costs ~1.5 ms of every ADD/DEL. stdout and the log were written
  // synchronously, nothing is pending: leave at once.
  const c = libcIfLoaded();
  if (c) {
    process.emit('exit', out.exitCode);
    c.exit(out.exitCode);
  }
}

main();
