// Running the real bvcnid binary on simulated nodes against the fake API
// server, for the daemon tests and benchmarks.
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { withNetns } from '../../loader/index.js';
import { openDataplaneMaps } from '../../src/dataplane/index.js';
import { TunnelFlags } from '../../src/dataplane/abi.js';
import { UNDERLAY_GATEWAY, bvcnidCommand, type Cluster, type SimNetns, type SimNode } from '../../src/sim/index.js';
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

export { nodeObject } from '../../src/sim/kube-node.js';

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
