// The CNI_* environment, validated as the spec and libcni's skel do.
import { Code, CniError } from './errors.js';

export type Command = 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'STATUS' | 'GC';
export const COMMANDS: readonly Command[] = ['ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC'];

export interface CniEnv {
  command: Command;
  containerId: string;
  netns: string;
  ifname: string;
  args: string;
  path: string;
}

/**
 * The Pod a call is for, from CNI_ARGS (`K8S_POD_NAMESPACE=…;K8S_POD_NAME=…`,
 * as the kubelet's runtimes pass them); undefined when either is missing.
 */
export function k8sPodOf(args: string): { namespace: string; name: string } | undefined {
  const kv = new Map<string, string>();
  for (const part of args.split(';')) {
    const i = part.indexOf('=');
    if (i > 0) kv.set(part.slice(0, i), part.slice(i + 1));
  }
  const namespace = kv.get('K8S_POD_NAMESPACE');
  const name = kv.get('K8S_POD_NAME');
  return namespace && name ? { namespace, name } : undefined;
}

const CONTAINER_ID_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export function parseCommand(env: NodeJS.ProcessEnv): Command {
  const c = env.CNI_COMMAND;
  if (!c) throw new CniError(Code.invalidEnvironment, 'required env variables [CNI_COMMAND] missing');
  if (!(COMMANDS as readonly string[]).includes(c)) throw new CniError(Code.invalidEnvironment, `unknown CNI_COMMAND: ${c.slice(0, 64)}`);
  return c as Command;
}

/** Checks an interface name the way the kernel would accept it. */
export function validIfname(n: string): boolean {
  return n.length > 0 && Buffer.byteLength(n) <= 15 && n !== '.' && n !== '..' && !/[/:\s\0]/.test(n);
}

export function parseEnv(env: NodeJS.ProcessEnv): CniEnv {
  const command = parseCommand(env);
  const out: CniEnv = {
    command,
    containerId: env.CNI_CONTAINERID ?? '',
    netns: env.CNI_NETNS ?? '',
    ifname: env.CNI_IFNAME ?? '',
    args: env.CNI_ARGS ?? '',
    path: env.CNI_PATH ?? '',
  };
  if (command === 'ADD' || command === 'DEL' || command === 'CHECK') {
    const missing: string[] = [];
    if (!out.containerId) missing.push('CNI_CONTAINERID');
    if (command !== 'DEL' && !out.netns) missing.push('CNI_NETNS');
    if (!out.ifname) missing.push('CNI_IFNAME');
    if (missing.length) throw new CniError(Code.invalidEnvironment, `required env variables [${missing.join(',')}] missing`);
    if (!CONTAINER_ID_RE.test(out.containerId) || out.containerId.length > 1024)
      throw new CniError(Code.invalidEnvironment, 'invalid characters in CNI_CONTAINERID');
    if (!validIfname(out.ifname)) throw new CniError(Code.invalidEnvironment, `invalid CNI_IFNAME: ${JSON.stringify(out.ifname.slice(0, 32))}`);
    if (out.netns && !out.netns.startsWith('/')) throw new CniError(Code.invalidEnvironment, 'CNI_NETNS must be an absolute path');
  }
  return out;
}
