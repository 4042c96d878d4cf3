// CNI error codes (spec "Error" section) and the one error type the command
// handlers throw. main.ts turns it into the spec's JSON on stdout.

export const Code = {
  incompatibleVersion: 1,
  unsupportedField: 2,
  unknownContainer: 3,
  invalidEnvironment: 4,
  io: 5,
  decode: 6,
  invalidConfig: 7,
  tryAgainLater: 11,
  notAvailable: 50,
  // Plugin-specific (100+).
  internal: 100,
  poolExhausted: 101,
  interfaceExists: 102,
  checkFailed: 103,
  netns: 104,
  /** A hostPort (host IP, port, protocol) another container already maps. */
  hostPortInUse: 105,
} as const;

export class CniError extends Error {
  constructor(
    readonly code: number,
    msg: string,
    readonly details = '',
  ) {
    super(msg);
    this.name = 'CniError';
  }
}

export function invalidConfig(field: string, why: string): CniError {
  return new CniError(Code.invalidConfig, `invalid config: field "${field}" ${why}`);
}

export interface ErrorJson {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}

/** Any thrown value as spec JSON; internal errors keep their message, never a stack. */
export function toErrorJson(e: unknown, cniVersion: string): ErrorJson {
  if (e instanceof CniError) {
    const out: ErrorJson = { cniVersion, code: e.code, msg: e.message };
    if (e.details) out.details = e.details;
    return out;
  }
  const msg = e instanceof Error ? e.message : String(e);
  return { cniVersion, code: Code.internal, msg: 'internal error', details: msg.slice(0, 2000) };
}
