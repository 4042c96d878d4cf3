// Argument parsing for bvcnictl (commander), turned into a plain function:
// argv in, { output, exitCode } out. Nothing here writes to the terminal.
import { existsSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { commands as registry } from './commands/index.js';
import { CliError, type CommandIo, type CommandResult, type CommandSpec, type OptionValues } from './types.js';
import { Defaults } from '../common/defaults.js';
import { buildLine } from '../dataplane/build.js';

export async function runCli(argv: readonly string[], commands: readonly CommandSpec[] = registry, io?: CommandIo): Promise<CommandResult> {
  let captured = '';
  let result: CommandResult | undefined;
  const program = new Command('bvcnictl')
    .description('inspect and repair a bvcni node: its pinned maps, programs and devices')
    .version(buildLine('bvcnictl'), '--version', 'print the release, commit and dataplane ABI version')
    .exitOverride()
    .configureOutput({ writeOut: (s) => void (captured += s), writeErr: (s) => void (captured += s) })
    .showHelpAfterError('(bvcnictl --help lists the commands)');

  for (const spec of commands) {
    const cmd = program
      .command(spec.name)
      .description(spec.description)
      .option('--json', 'machine-readable output', false)
      .addOption(new Option('--pin-dir <dir>', 'pin directory of the node').default(process.env.BVCNI_PIN_DIR ?? Defaults.pinDir))
      .option('--netns <path>', "the node's network namespace (simulated nodes), e.g. /run/netns/NAME")
      .exitOverride()
      .configureOutput({ writeOut: (s) => void (captured += s), writeErr: (s) => void (captured += s) });
    for (const o of spec.options ?? []) cmd.addOption(new Option(o.flags, o.description).default(o.defaultValue));
    cmd.action(async (opts: OptionValues) => {
      result = await runHandler(spec, opts, io);
    });
  }

  try {
    await program.parseAsync(['node', 'bvcnictl', ...argv]);
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version are successes; usage errors exit 2 like most CLIs.
      const helpish = e.code === 'commander.helpDisplayed' || e.code === 'commander.help' || e.code === 'commander.version';
      return { output: captured, exitCode: helpish ? 0 : 2 };
    }
    throw e;
  }
  if (!result) return { output: captured || program.helpInformation(), exitCode: argv.length ? 2 : 0 };
  return result;
}

async function runHandler(spec: CommandSpec, opts: OptionValues, io?: CommandIo): Promise<CommandResult> {
  try {
    if (opts.netns !== undefined && !existsSync(opts.netns))
      throw new CliError(`network namespace ${opts.netns} does not exist`, 'list them with: ip netns list (paths are /run/netns/NAME)');
    return await spec.run(opts, io);
  } catch (e) {
    const err = e instanceof CliError ? e : new CliError((e as Error).message ?? String(e));
    if (opts.json) return { output: JSON.stringify({ error: err.message, hint: err.hint ?? null }) + '\n', exitCode: err.exitCode };
    return { output: `error: ${err.message}\n${err.hint ? `hint: ${err.hint}\n` : ''}`, exitCode: err.exitCode };
  }
}
