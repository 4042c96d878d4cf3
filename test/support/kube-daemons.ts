// Running the real bvcnid binary on simulated nodes against the fake API
// server, for the daemon tests and benchmarks.
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { withNetns } from '../../loader/index.js';
import { openDataplaneMaps } from '../../src/dataplane/index.js';
import { TunnelFlags } from '../../src/dataplane/abi.js';
import { UNDERLAY_GATEWAY, bvcnidCommand, createCluster, uniquePrefix, type Cluster, type SimNetns, type SimNode } from '../../src/sim/index.js';
import { FakeKubeApiServer, type FakeApiOptions } from '../../src/sim/kube-apiserver.js';
import { waitFor } from './kube-util.js';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const BVCNID = process.env.BVK_BVCNID ?? join(REPO_ROOT, 'dist/bin/bvcnid');
export const HEALTH_PORT = 9099;
/** The daemons under test serve /metrics on a listener of its own (--metrics-addr), as an operator may choose. */
export const METRICS_PORT = 9102;

/** GET url with curl inside a namespace: the status (0 when nothing answered) and the body. */
export async function httpGet(c: Cluster, ns: SimNetns, url: string, timeoutS = 3): Promise<{ status: number; body: string }> {
  const r = await c.exec(ns, ['curl', '-s', '-m', String(timeoutS), '-o', '-', '-w', '\n%{http_code}', url], { allowFail: true });
  const i = r.stdout.lastIndexOf('\n');
  return { status: Number(r.stdout.slice(i + 1)) || 0, body: r.stdout.slice(0, Math.max(0, i)) };
}

/** The fake API server listening inside the cluster's underlay namespace, reachable from every node at 192.0.2.1. */
export async function startApiInUnderlay(c: Cluster, opts: FakeApiOptions = {}): Promise<{ api: FakeKubeApiServer; kubeconfig: string }> {
  const api = new FakeKubeApiServer(opts, withNetns);
  await api.start({ netns: c.underlay.path });
  const kubeconfig = join(c.dir, 'kubeconfig');
  writeFileSync(kubeconfig, api.kubeconfig(UNDERLAY_GATEWAY));
  return { api, kubeconfig };
}

/** NODE_OPTIONS of the bvcnid container in deploy/bvcni.yaml (V8 heap flags that decide its RSS). */
export function deployedNodeOptions(): string {
  const field = (o: unknown, k: string): unknown => (typeof o === 'object' && o !== null ? (o as Record<string, unknown>)[k] : undefined);
  const list = (o: unknown): unknown[] => (Array.isArray(o) ? o : []);
  for (const doc of parseAllDocuments(readFileSync(join(REPO_ROOT, 'deploy/bvcni.yaml'), 'utf8'))) {
    const o: unknown = doc.toJS();
    if (field(o, 'kind') !== 'DaemonSet') continue;
    const pod = field(field(field(o, 'spec'), 'template'), 'spec');
    const daemon = list(field(pod, 'containers')).find((c) => field(c, 'name') === 'bvcnid');
    if (!daemon) throw new Error('deploy/bvcni.yaml: the DaemonSet has no bvcnid container');
    const env = list(field(daemon, 'env')).find((e) => field(e, 'name') === 'NODE_OPTIONS');
    return String(field(env, 'value') ?? '');
  }
  throw new Error('deploy/bvcni.yaml has no DaemonSet');
}
/** VmRSS counts the node binary's shared text pages too (~40 MiB); RssAnon is the daemon's own memory. */
export function rssMiB(pid: number): { rss: number; hwm: number; anon: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024, anon: kb('RssAnon') / 1024 };
}

import { nodeObject } from '../../src/sim/kube-node.js';
export { nodeObject };

/** Which bvcnid a DaemonProc runs: this build, or a release (test/support/release-build.ts). */
export interface DaemonBuild {
  name: string;
  node: string;
  bvcnid: string;
  /** v0.1.0 has no --metrics-addr (it serves /metrics on the health listener). */
  metricsAddr: boolean;
}
export const THIS_BUILD: DaemonBuild = { name: 'this build', node: process.execPath, bvcnid: BVCNID, metricsAddr: true };

export class DaemonProc {
  child?: ChildProcess;
  /** Changed between starts to roll the node to another release. */
  build: DaemonBuild = THIS_BUILD;
  /** Extra environment for the next start. */
  env: Record<string, string> = {};
  readonly logs: Record<string, unknown>[] = [];
  exits = 0;

  constructor(
    readonly c: Cluster,
    readonly node: SimNode,
    readonly kubeconfig: string,
    readonly extraArgs: string[] = [],
  ) {}

  args(): string[] {
    return bvcnidCommand(this.node, {
      node: this.build.node,
      env: this.env,
      bvcnid: this.build.bvcnid,
      nodeFlags: process.env.BVK_NODE_FLAGS && this.build === THIS_BUILD ? process.env.BVK_NODE_FLAGS.split(' ') : [],
      kubeconfig: this.kubeconfig,
      healthAddr: `127.0.0.1:${HEALTH_PORT}`,
      metricsAddr: this.build.metricsAddr ? `127.0.0.1:${METRICS_PORT}` : undefined,
      logLevel: 'debug',
      extra: this.extraArgs,
    });
  }

  start(): ChildProcess {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) throw new Error(`daemon on ${this.node.name} already runs`);
    const child = this.c.spawn(this.node, this.args());
    let buf = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          this.logs.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          this.logs.push({ msg: line, raw: true });
        }
      }
    });
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      err += d;
      if (err.length > 20_000) err = err.slice(-10_000);
    });
    child.once('exit', () => {
      this.exits++;
      if (err.trim()) this.logs.push({ msg: `stderr: ${err.trim()}`, raw: true });
    });
    this.child = child;
    return child;
  }

  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  async kill(signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const child = this.child;
    if (!child || !this.running) return { code: child?.exitCode ?? null, signal: child?.signalCode ?? null };
    const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, sig) => r({ code, signal: sig })));
    // nsenter (without --fork) execs the daemon: the child pid is the daemon's.
    child.kill(signal);
    return done;
  }

  /** GET of path on the node's loopback: /metrics from the metrics listener, the rest from the health one. */
  async http(path: string): Promise<{ status: number; body: string }> {
    return httpGet(this.c, this.node, `http://127.0.0.1:${path === '/metrics' ? METRICS_PORT : HEALTH_PORT}${path}`);
  }

  async ready(): Promise<boolean> {
    return (await this.http('/readyz')).status === 200;
  }

  async metric(name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
    const { body } = await this.http('/metrics');
    for (const line of body.split('\n')) {
      if (!line.startsWith(name)) continue;
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
      if (!m || m[1] !== name) continue;
      const ls = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
      if (Object.entries(labels).every(([k, v]) => ls[k] === v)) return Number(m[3]);
    }
    return undefined;
  }

  logged(msg: RegExp, filter: (l: Record<string, unknown>) => boolean = () => true): Record<string, unknown>[] {
    return this.logs.filter((l) => typeof l.msg === 'string' && msg.test(l.msg) && filter(l));
  }
}

/** The node's pinned tunnel map as sorted "cidr>nodeip[*]" strings (* = node /32 entry). */
export function tunnelDump(n: SimNode): string[] {
  using maps = openDataplaneMaps(n.pinDir);
  return [...maps.tunnel.entries()]
    .map(([k, v]) => `${k.addr}/${k.prefixlen}>${v.node_ip}${v.flags & TunnelFlags.nodeIp ? '*' : ''}`)
    .sort();
}

/** What the tunnel map of `local` must hold for the given remote nodes. */
export function expectedTunnel(remotes: { podCidr: string; ip: string }[]): string[] {
  return remotes.flatMap((r) => [`${r.podCidr}>${r.ip}`, `${r.ip}/32>${r.ip}*`]).sort();
}

export async function waitTunnel(n: SimNode, want: string[], timeoutMs = 15_000): Promise<void> {
  let last: string[] = [];
  try {
    await waitFor(
      `tunnel map of ${n.name}`,
      () => {
        try {
          last = tunnelDump(n);
        } catch {
          return false;
        }
        return JSON.stringify(last) === JSON.stringify(want);
      },
      timeoutMs,
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}\n  want ${JSON.stringify(want)}\n  have ${JSON.stringify(last)}`);
  }
}

export interface KubeClusterOptions {
  /** Passed to uniquePrefix: the cluster's namespaces and pins are named after it. */
  prefix: string;
  nodes: number;
  /** How many nodes (the first ones) get a Node object in the API before the daemons start; default all. */
  registered?: number;
  /** How many daemons (the first ones) start(); default `registered`. Every node gets a DaemonProc. */
  started?: number;
  /** Which bvcnid the daemons run; default this build. */
  build?: DaemonBuild;
  /** Extra bvcnid arguments of node i's daemon. */
  daemonArgs?: (i: number) => string[];
  api?: FakeApiOptions;
  /** Waits for every started daemon's /readyz (default true), each up to readyTimeoutMs (default 60 s). */
  waitReady?: boolean;
  readyTimeoutMs?: number;
}

/**
 * The Kubernetes path on simulated nodes: a cluster, the fake API server in its underlay, a
 * DaemonProc per node. Construct it where the test declares its state (daemons is filled by
 * start()), start() in `before`, teardown() in `after`: it undoes whatever start() got to.
 */
export class KubeCluster {
  c!: Cluster;
  api!: FakeKubeApiServer;
  kubeconfig = '';
  readonly daemons: DaemonProc[] = [];

  constructor(readonly opts: KubeClusterOptions) {}

  /** `late`: options known only in `before` (a release build, say), over the constructor's. */
  async start(late: Partial<KubeClusterOptions> = {}): Promise<this> {
    const o = { ...this.opts, ...late };
    if (!existsSync(BVCNID)) throw new Error(`${BVCNID} missing: run make build`);
    this.c = await createCluster({ prefix: uniquePrefix(o.prefix), nodes: o.nodes, dataplane: 'none' });
    ({ api: this.api, kubeconfig: this.kubeconfig } = await startApiInUnderlay(this.c, o.api));
    const registered = o.registered ?? o.nodes;
    const started = o.started ?? registered;
    this.c.nodes.slice(0, registered).forEach((n) => this.api.addNode(nodeObject(n)));
    this.c.nodes.forEach((n, i) => {
      const d = new DaemonProc(this.c, n, this.kubeconfig, o.daemonArgs?.(i) ?? []);
      if (o.build) d.build = o.build;
      this.daemons.push(d);
    });
    const first = this.daemons.slice(0, started);
    for (const d of first) d.start();
    if (o.waitReady ?? true) for (const d of first) await waitFor(`${d.node.name} ready on ${d.build.name}`, () => d.ready(), o.readyTimeoutMs ?? 60_000);
    return this;
  }

  /** SIGKILLs every running daemon, closes the API server, destroys the cluster: safe after a partial start(). */
  async teardown(): Promise<void> {
    try {
      for (const d of this.daemons) if (d.running) await d.kill('SIGKILL');
      await this.api?.close();
    } finally {
      await this.c?.destroy();
    }
  }
}
