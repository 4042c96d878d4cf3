// bvcnictl: the operator's view of a bvcni node. Handlers return their output;
// this is the only place that writes it (a streaming command writes through
// the io given here as it goes).
import { runCli } from './run.js';
import type { CommandIo } from './types.js';

let stop: (why: string) => void = () => {};
const stopped = new Promise<string>((resolve) => (stop = resolve));
let closed = false;
// A reader that went away (`bvcnictl monitor | head`): stop quietly, as for ^C.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  closed = true;
  stop(e.code ?? 'stdout error');
});
const signals = ['SIGINT', 'SIGTERM'] as const;

const io: CommandIo = {
  write: (chunk) => {
    if (!closed) process.stdout.write(chunk);
  },
  note: (line) => void process.stderr.write(line.endsWith('\n') ? line : `${line}\n`),
  untilStopped: () => {
    for (const sig of signals) process.once(sig, () => stop(sig));
    return stopped;
  },
};

const { output, exitCode } = await runCli(process.argv.slice(2), undefined, io);
for (const sig of signals) process.removeAllListeners(sig);
if (closed) {
  process.exitCode = exitCode;
} else {
  process.stdout.write(output, () => {
    process.exitCode = exitCode;
  });
}
