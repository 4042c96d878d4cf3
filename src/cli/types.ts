// The shape every bvcnictl command shares: handlers return their output and
// exit code, and main writes them, so a test of a command is a function call.

export interface CommandResult {
  output: string;
  exitCode: number;
}

/** Options every command takes. */
export interface GlobalOptions {
  json: boolean;
  pinDir: string;
  /** Network namespace of the node to inspect (a simulated node); default: the current one. */
  netns?: string;
}

export type OptionValues = GlobalOptions & Record<string, string | boolean | undefined>;

export interface OptionSpec {
  /** commander flags, e.g. '--pod <ip>'. */
  flags: string;
  description: string;
  defaultValue?: string | boolean;
}

/**
 * What a streaming command (bvcnictl monitor) writes as it goes, before its
 * result: main's stdout, or a test's collector.
 */
export interface CommandIo {
  write(chunk: string): void;
  /** Progress and notices: stderr. */
  note(line: string): void;
  /**
   * Resolves, with why, when the user is done: SIGINT, SIGTERM, or a reader
   * that closed the pipe. Only a command that calls it catches the signals.
   */
  untilStopped(): Promise<string>;
}

export interface CommandSpec {
  name: string;
  description: string;
  options?: readonly OptionSpec[];
  run(opts: OptionValues, io?: CommandIo): Promise<CommandResult>;
}

/** An error the user can act on: printed with its hint, never with a stack. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** JSON with bigints as decimal strings would lose nothing; numbers when safe, so jq arithmetic works. */
export function toJson(value: unknown): string {
  return (
    JSON.stringify(
      value,
      (_k, v: unknown) => (typeof v === 'bigint' ? (v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString()) : v),
      2,
    ) + '\n'
  );
}

export function ok(output: string): CommandResult {
  return { output, exitCode: 0 };
}
