// One CNI invocation, from environment and stdin to stdout and exit code.
// Returns instead of writing, so tests and the in-process fuzzer call it as a
// function; main.ts only does I/O.
import { parseConfig, sniffVersion, type NetConf } from './config.js';
import type { Invocation, Services } from './context.js';
import { parseCommand, parseEnv, type CniEnv } from './env.js';
import { Code, CniError, toErrorJson } from './errors.js';
import { atLeast, LATEST, versionInfo } from './version.js';
import { cmdAdd } from './commands/add.js';
import { cmdCheck } from './commands/check.js';
import { cmdDel } from './commands/del.js';
import { cmdGc } from './commands/gc.js';
import { cmdStatus } from './commands/status.js';

export interface Outcome {
  stdout: string;
  exitCode: number;
}

export function handle(vars: NodeJS.ProcessEnv, stdin: string, services: (conf: NetConf, env: CniEnv) => Services): Outcome {
  let version: string = sniffVersion(stdin) ?? LATEST;
  let svc: Services | undefined;
  try {
    const command = parseCommand(vars);
    if (command === 'VERSION') return { stdout: `${versionInfo()}\n`, exitCode: 0 };
    const env = parseEnv(vars);
    const conf = parseConfig(stdin);
    version = conf.cniVersion;
    if (command === 'CHECK' && !atLeast(version, '0.4.0'))
      throw new CniError(Code.incompatibleVersion, 'config version does not allow CHECK', `cniVersion ${version}`);
    if ((command === 'STATUS' || command === 'GC') && !atLeast(version, '1.1.0'))
      throw new CniError(Code.incompatibleVersion, `config version does not allow ${command}`, `cniVersion ${version}`);
    svc = services(conf, env);
    const inv: Invocation = { env, conf, svc };
    switch (command) {
      case 'ADD':
        return { stdout: `${JSON.stringify(cmdAdd(inv))}\n`, exitCode: 0 };
      case 'DEL':
        cmdDel(inv);
        break;
      case 'CHECK':
        cmdCheck(inv);
        break;
      case 'STATUS':
        cmdStatus(inv);
        break;
      case 'GC':
        cmdGc(inv);
        break;
    }
    return { stdout: '', exitCode: 0 };
  } catch (e) {
    const out = toErrorJson(e, version);
    svc?.log.error(out.msg, { code: out.code, details: out.details, stack: e instanceof Error && !(e instanceof CniError) ? e.stack : undefined });
    return { stdout: `${JSON.stringify(out)}\n`, exitCode: 1 };
  }
}
