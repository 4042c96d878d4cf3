// bvcnid's side of the plugin's fast path (src/cni/delegate.ts): a unix
// socket in the state directory, one request per connection, answered by the
// plugin's own handler running in this warm process. Requests run one at a
// time (the handler is synchronous), which is also what the IPAM file lock
// would impose. The only difference from the plugin's own run is the DEL's
// veth: it is deleted after the answer, on libuv's thread pool.
import { mkdirSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import {
  COMMANDS,
  PinnedDataplane,
  cniVariables,
  configString,
  daemonSocketPath,
  handle,
  k8sPodOf,
  nsId,
  realServices,
  sameNs,
  type CniEnv,
  type DelegateReply,
  type DelegateRequest,
  type NetConf,
  type Outcome,
  type Services,
} from '../cni/index.js';
import { deleteLinkIndexAsync, getLink } from '../netlink/rtnl.js';
import type { DaemonMetrics } from './metrics.js';

const MAX_REQUEST_BYTES = 1 << 20;

export type CniHandler = (env: NodeJS.ProcessEnv, stdin: string) => Outcome;

export interface CniServerOptions {
  stateDir: string;
  pinDir: string;
  log: Logger;
  /** Defaults to the plugin's handler with daemonServices(). */
  handler?: CniHandler;
  metrics?: Pick<DaemonMetrics, 'cniRequests' | 'cniDuration'>;
  /**
   * After an ADD this process served succeeded, before the plugin gets the
   * answer (NetworkPolicy writes the pod's rules here: the pod never runs
   * without them). `pod` is from CNI_ARGS (K8S_POD_NAMESPACE/K8S_POD_NAME).
   */
  onAdded?: (a: { pod?: { namespace: string; name: string }; ip: string; containerId: string }) => void;
  /** After a DEL this process served. */
  onDeleted?: (a: { pod?: { namespace: string; name: string }; containerId: string }) => void;
}

export class CniServer {
  private server?: Server;
  private readonly handler: CniHandler;
  private readonly pending = new Set<Promise<unknown>>();
  private readonly nodeNs = nsId('/proc/self/ns/net');

  constructor(private readonly opts: CniServerOptions) {
    this.handler = opts.handler ?? ((env, stdin) => handle(env, stdin, daemonServices(opts.log, (p) => this.track(p))));
  }

  get path(): string {
    return daemonSocketPath(this.opts.stateDir);
  }

  async start(): Promise<void> {
    mkdirSync(this.opts.stateDir, { recursive: true, mode: 0o755 });
    // A socket file left by a killed daemon refuses connections: replace it.
    removeQuiet(this.path);
    const server = createServer({ allowHalfOpen: true }, (sock) => this.serve(sock));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // Whoever may run the plugin (root) may use it; nobody else, not even
      // between bind and a chmod: the socket file is created 0600 (the bind
      // happens inside listen(), synchronously).
      const umask = process.umask(0o177);
      try {
        server.listen(this.path, () => {
          server.off('error', reject);
          resolve();
        });
      } finally {
        process.umask(umask);
      }
    });
    server.on('error', (err) => this.opts.log.error({ err: err.message }, 'CNI socket failed'));
    this.server = server;
    this.opts.log.info({ socket: this.path }, 'serving the CNI plugin');
  }

  /** Stops listening and waits for deferred veth deletes; the socket file goes, so plugins work alone. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    removeQuiet(this.path);
    await Promise.allSettled([...this.pending]);
  }

  private track(p: Promise<unknown>): void {
    const tracked = p.catch((err: unknown) => this.opts.log.warn({ err: (err as Error).message }, 'deferred veth delete failed')).finally(() => this.pending.delete(tracked));
    this.pending.add(tracked);
  }

  private serve(sock: Socket): void {
    let text = '';
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      text += d;
      if (text.length > MAX_REQUEST_BYTES) sock.destroy();
    });
    sock.on('error', () => {
      /* the plugin went away; nothing to answer */
    });
    sock.on('end', () => sock.end(JSON.stringify(this.answer(text))));
  }

  private answer(text: string): DelegateReply {
    let req: DelegateRequest;
    try {
      req = JSON.parse(text) as DelegateRequest;
    } catch {
      return this.decline('undecodable request');
    }
    if (req.protocol !== 1 || typeof req.stdin !== 'string' || typeof req.env !== 'object' || req.env === null) return this.decline('unknown protocol');
    const env = cniVariables(req.env);
    const cmd = env.CNI_COMMAND;
    if (!sameNs(req.nodeNs, this.nodeNs)) return this.decline('the plugin runs in another network namespace', cmd);
    const netns = env.CNI_NETNS ?? '';
    if (netns && !sameNs(req.podNs, nsId(netns))) return this.decline(`CNI_NETNS ${netns} is another namespace (or none) from here`, cmd);
    // A config that is not JSON, or a bad pinDir, gets the handler's spec error, as from the plugin.
    const pinDir = configString(req.stdin, 'pinDir');
    if (pinDir !== undefined && pinDir !== this.opts.pinDir) return this.decline('the network config names another pin directory', cmd);
    const t0 = performance.now();
    const outcome = this.handler(env, req.stdin);
    if (outcome.exitCode === 0) this.after(env, outcome);
    const ms = performance.now() - t0;
    const command = commandLabel(env.CNI_COMMAND);
    this.opts.metrics?.cniRequests.inc({ command, result: outcome.exitCode === 0 ? 'ok' : 'error' });
    this.opts.metrics?.cniDuration.observe({ command }, ms / 1000);
    this.opts.log.debug({ command: env.CNI_COMMAND, containerId: env.CNI_CONTAINERID, exitCode: outcome.exitCode, ms: +ms.toFixed(3) }, 'CNI request served');
    return { outcome };
  }

  private after(env: NodeJS.ProcessEnv, outcome: Outcome): void {
    const pod = k8sPodOf(env.CNI_ARGS ?? '');
    const containerId = env.CNI_CONTAINERID ?? '';
    try {
      if (env.CNI_COMMAND === 'ADD' && this.opts.onAdded) {
        const ip = firstIp(outcome.stdout);
        if (ip) this.opts.onAdded({ pod, ip, containerId });
      } else if (env.CNI_COMMAND === 'DEL') this.opts.onDeleted?.({ pod, containerId });
    } catch (e) {
      // The pod keeps what the plugin wrote (fail closed when enforcement is on); bvcnid catches up later.
      this.opts.log.warn({ err: (e as Error).message, containerId }, 'after-CNI hook failed');
    }
  }

  private decline(reason: string, command?: string): DelegateReply {
    this.opts.metrics?.cniRequests.inc({ command: commandLabel(command), result: 'declined' });
    this.opts.log.debug({ reason }, 'CNI request declined; the plugin does it itself');
    return { declined: reason };
  }
}

/** A bounded label: whatever a client sends, the metric gets one of the spec's commands or "other". */
function commandLabel(command: string | undefined): string {
  return command && (COMMANDS as readonly string[]).includes(command) ? command : 'other';
}

/** The pod's IPv4 from an ADD's result (ips[0].address without its prefix length). */
function firstIp(stdout: string): string | undefined {
  try {
    const r = JSON.parse(stdout) as { ips?: { address?: unknown }[] };
    const a = r.ips?.[0]?.address;
    return typeof a === 'string' ? a.split('/')[0] : undefined;
  } catch {
    return undefined;
  }
}

function removeQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    /* not there */
  }
}

/** The plugin's services, except that a DEL's veth is deleted after the answer. */
export function daemonServices(log: Logger, defer: (p: Promise<unknown>) => void): (conf: NetConf, env: CniEnv) => Services {
  const dataplane = new PinnedDataplane();
  const removeHostVeth: Services['removeHostVeth'] = (host, name) => {
    const link = getLink(host, name);
    if (!link) return;
    log.debug({ veth: name, ifindex: link.index }, 'deleting veth after answering');
    defer(deleteLinkIndexAsync(link.index));
  };
  return (conf, env) => realServices(conf, env, { via: 'bvcnid', dataplane, removeHostVeth });
}
