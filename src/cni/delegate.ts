// The plugin's fast path: when bvcnid runs on the node it listens on
// <dataDir>/bvcnid.sock and runs the very same handler (plugin.ts) warm, with
// libbpf loaded and its code compiled, and deletes a DEL's veth after it has
// answered. This process then only forwards its CNI_* environment and stdin
// and prints the answer, so it never loads koffi or libbpf.
//
// A path names a namespace only within one PID and mount namespace, and the
// daemon runs in a pod: the request carries the identity (device, inode) of
// the node's and the pod's network namespaces as this process sees them, and
// the daemon declines when its view differs. Declined, absent or refusing
// daemon: the plugin does the work itself, as it always could.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULTS, sniffVersion } from './config.js';
import { Code, CniError, toErrorJson } from './errors.js';
import { LATEST } from './version.js';
import type { Outcome } from './plugin.js';
import { mark } from './trace.js';
import { exchange } from './unix-exchange.js';

export const DAEMON_SOCKET = 'bvcnid.sock';
export const PROTOCOL = 1;
/** Longer than any ADD takes when many queue up at the daemon, short of the runtime's own limits. */
export const ANSWER_TIMEOUT_MS = 30_000;
/** Set (non-empty): the plugin works alone, never asking bvcnid. */
export const NO_DAEMON_ENV = 'BVCNI_NO_DAEMON';
/**
 * Set by the native front (src/cni/front/front.c) when bvcnid had the request
 * and its answer was lost: the reason. The plugin then answers "try again
 * later" as delegate() does (never for DEL: the front does a lost DEL locally).
 */
export const FRONT_LOST_ENV = 'BVCNI_FRONT_LOST';

export interface NsId {
  dev: number;
  ino: number;
}

export interface DelegateRequest {
  protocol: number;
  /** The CNI_* variables of the invocation. */
  env: Record<string, string>;
  stdin: string;
  /** The network namespace the plugin runs in: the node's. */
  nodeNs?: NsId;
  /** CNI_NETNS as the plugin sees it; absent when it could not be opened. */
  podNs?: NsId;
}

export type DelegateReply = { outcome: Outcome } | { declined: string };

export function daemonSocketPath(dataDir: string): string {
  return join(dataDir, DAEMON_SOCKET);
}

/** The namespace behind a path (following /proc's magic links); undefined when it cannot be reached. */
export function nsId(path: string): NsId | undefined {
  if (!path) return undefined;
  try {
    const st = statSync(path);
    return { dev: st.dev, ino: st.ino };
  } catch {
    return undefined;
  }
}

export function sameNs(a: NsId | undefined, b: NsId | undefined): boolean {
  return a?.dev === b?.dev && a?.ino === b?.ino;
}

/** The CNI_* variables only (the daemon gets nothing else of the plugin's environment). */
export function cniVariables(vars: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(vars)) if (k.startsWith('CNI_') && typeof v === 'string') out[k] = v;
  return out;
}

/**
 * A path field of the config on stdin, its default when absent; undefined
 * when stdin is not a JSON object or the field is not a string (the handler
 * then answers with the spec's error).
 */
export function configString(stdin: string, field: 'dataDir' | 'pinDir'): string | undefined {
  let conf: unknown;
  try {
    conf = JSON.parse(stdin);
  } catch {
    return undefined;
  }
  if (!conf || typeof conf !== 'object') return undefined;
  const v = (conf as Record<string, unknown>)[field] ?? DEFAULTS[field];
  return typeof v === 'string' ? v : undefined;
}

function tryAgain(stdin: string, msg: string, details: string): Outcome {
  const err = toErrorJson(new CniError(Code.tryAgainLater, msg, details), sniffVersion(stdin) ?? LATEST);
  return { stdout: `${JSON.stringify(err)}\n`, exitCode: 1 };
}

function lost(stdin: string, why: string, path: string): Outcome {
  return tryAgain(stdin, `bvcnid did not answer: ${why}`, `socket ${path}`);
}

/** The answer to a request the native front handed to bvcnid and lost (FRONT_LOST_ENV): the same as delegate()'s. */
export function lostAnswer(stdin: string, why: string): Outcome {
  return lost(stdin, why, daemonSocketPath(configString(stdin, 'dataDir') ?? DEFAULTS.dataDir));
}

/**
 * What an answer from bvcnid says: its outcome (a string stdout and an exit
 * code 0..255), a decline (an object without an outcome: the plugin works
 * alone), or garbage (not JSON, or an outcome of another shape), which counts
 * as a lost answer. The native front (src/cni/front/json.h) reads answers the
 * same way; test/integration/cni-front.test.ts holds the two together.
 */
export function readReply(text: string): Outcome | 'declined' | 'garbage' {
  let reply: unknown;
  try {
    reply = JSON.parse(text);
  } catch {
    return 'garbage';
  }
  if (typeof reply !== 'object' || reply === null) return 'garbage';
  if (!('outcome' in reply)) return 'declined';
  const o: unknown = reply.outcome;
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return 'garbage';
  const { stdout, exitCode } = o as Record<string, unknown>;
  if (typeof stdout !== 'string' || typeof exitCode !== 'number' || !Number.isInteger(exitCode) || exitCode < 0 || exitCode > 255) return 'garbage';
  return { stdout, exitCode };
}

/**
 * Asks bvcnid to run this invocation. Undefined: do it locally (no daemon, it
 * declined, or it went away before the request reached it). Once the request
 * has reached the daemon, only DEL (idempotent) falls back to local work; an ADD
 * whose answer is lost is answered "try again later", and the runtime's DEL and
 * retry clean up whatever the daemon had done.
 */
export function delegate(vars: NodeJS.ProcessEnv, stdin: string, timeoutMs = ANSWER_TIMEOUT_MS): Promise<Outcome | undefined> {
  const dataDir = configString(stdin, 'dataDir');
  if (!dataDir?.startsWith('/') || vars[NO_DAEMON_ENV]) return Promise.resolve(undefined);
  const env = cniVariables(vars);
  const request: DelegateRequest = { protocol: PROTOCOL, env, stdin, nodeNs: nsId('/proc/self/ns/net'), podNs: nsId(env.CNI_NETNS ?? '') };
  return new Promise((resolve) => {
    const path = daemonSocketPath(dataDir);
    let sent = false;
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (out: Outcome | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      conn.abort();
      resolve(out);
    };
    const gone = (why: string): void => {
      if (!sent || env.CNI_COMMAND === 'DEL') finish(undefined);
      else finish(lost(stdin, why, path));
    };
    const conn = exchange(path, JSON.stringify(request), {
      // A unix socket connect succeeds or fails at once: only the answer needs a deadline.
      connected: () => {
        mark('delegate: connected');
        sent = true;
        timer = setTimeout(() => gone(`no answer within ${timeoutMs} ms`), timeoutMs);
      },
      failed: gone,
      answered: (answer) => {
        mark('delegate: answered');
        const reply = readReply(answer.toString('utf8'));
        if (reply === 'garbage') gone('connection closed before a complete answer');
        else finish(reply === 'declined' ? undefined : reply);
      },
    });
    mark('delegate: connecting');
  });
}
