// bvcnictl: the operator's view of a bvcni node. Handlers return their output;
// this is the only place that writes it.
import { runCli } from './run.js';

const { output, exitCode } = await runCli(process.argv.slice(2));
process.stdout.write(output, () => {
  process.exitCode = exitCode;
});
