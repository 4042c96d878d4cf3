// Read-only views of one node for bvcnictl: its pinned maps, its devices and
// its tc hooks. Pinned maps live on the global bpffs (--pin-dir picks the
// node); devices and sysctls live in the node's network namespace (--netns).
import { existsSync, statfsSync, statSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { join } from 'node:path';
import { BpfMap, MapType, type TcDirection } from '../../loader/index.js';
import { listTc, type TcFilter } from '../dataplane/tc-filters.js';
import { run, runSync } from '../common/exec.js';
import { listLinks as rtnlListLinks } from '../netlink/rtnl.js';
import { NetlinkSocket, socketIn } from '../netlink/socket.js';
import { readSysctl as readProcSysctl } from '../netlink/sysctl.js';
import { ConfigFlags, MapName, type ConfigValue } from '../dataplane/abi.js';
import { openConfigMap, openEndpointsMap, openNatMap, openStatsMap, openTunnelMap } from '../dataplane/maps.js';
import { Programs, TC_HANDLE } from '../dataplane/layout.js';
import { openHostportFlowsMap, openHostportMap } from '../dataplane/hostport.js';
import { openIpcacheMap, openPodCtMap, openPolicyMap } from '../dataplane/policy.js';
import { openMonitorBucketMap, openMonitorConfigMap } from '../dataplane/monitor.js';
import { CliError } from './types.js';

const BPF_FS_MAGIC = 0xcafe4a11;

export function isBpffs(path: string): boolean {
  try {
    return statfsSync(path).type === BPF_FS_MAGIC;
  } catch {
    return false;
  }
}

/** Fails with a hint when the pin directory holds no bvcni maps at all. */
export function requirePinDir(pinDir: string): void {
  if (!existsSync(pinDir))
    throw new CliError(
      `pin directory ${pinDir} does not exist`,
      'is bvcnid running on this node? For a simulated node pass --pin-dir of that node',
    );
  if (!isBpffs(pinDir)) throw new CliError(`${pinDir} is not on a bpf filesystem`, 'mount -t bpf bpf /sys/fs/bpf');
}

export function readConfig(pinDir: string): ConfigValue | undefined {
  requirePinDir(pinDir);
  if (!existsSync(join(pinDir, MapName.config))) return undefined;
  using m = openConfigMap(pinDir);
  const c = m.lookup(0);
  // An array element always exists; all zeros means the daemon has not written it.
  return c && c.node_ip !== '0.0.0.0' ? c : undefined;
}

export function configReady(c: ConfigValue | undefined): boolean {
  return !!c && (Number(c.flags) & ConfigFlags.ready) !== 0;
}

export interface MapSummary {
  name: string;
  pinned: boolean;
  type?: number;
  maxEntries?: number;
  /** Live entries (hash, LRU, LPM); undefined for arrays, whose size is fixed. */
  entries?: number;
  id?: number;
  error?: string;
}

const ARRAY_TYPES = new Set([2, 6]);

const OPENERS: Record<MapName, (pinDir: string) => BpfMap<unknown, unknown>> = {
  [MapName.tunnel]: openTunnelMap,
  [MapName.endpoints]: openEndpointsMap,
  [MapName.config]: openConfigMap,
  [MapName.nat]: openNatMap,
  [MapName.stats]: openStatsMap,
  [MapName.hostport]: openHostportMap,
  [MapName.hostportFlows]: openHostportFlowsMap,
  [MapName.ipcache]: openIpcacheMap,
  [MapName.policy]: openPolicyMap,
  [MapName.podCt]: openPodCtMap,
  [MapName.events]: (pinDir: string) => BpfMap.openPinnedRaw(join(pinDir, MapName.events)),
  [MapName.monitor]: openMonitorConfigMap,
  [MapName.monitorBucket]: openMonitorBucketMap,
} satisfies Record<MapName, unknown> as Record<MapName, (pinDir: string) => BpfMap<unknown, unknown>>;

/** Every map of the ABI: pinned or not, its size, and whether its layout matches ours. */
export function summarizeMaps(pinDir: string): MapSummary[] {
  return Object.values(MapName).map((name) => {
    if (!existsSync(join(pinDir, name))) return { name, pinned: false };
    try {
      using m = OPENERS[name](pinDir);
      const info = m.info;
      let entries: number | undefined;
      if (!ARRAY_TYPES.has(info.type) && info.type !== MapType.ringbuf) {
        entries = 0;
        for (const _ of m.keys()) entries++;
      }
      return { name, pinned: true, type: info.type, maxEntries: info.maxEntries, entries, id: info.id };
    } catch (e) {
      return { name, pinned: true, error: (e as Error).message };
    }
  });
}

export interface Link {
  ifindex: number;
  ifname: string;
  mtu: number;
  operstate: string;
  address: string;
  kind?: string;
  master?: string;
}

export function listLinks(netns?: string): Link[] {
  let raw: ReturnType<typeof rtnlListLinks>;
  try {
    using s = netns ? socketIn(netns) : new NetlinkSocket();
    raw = rtnlListLinks(s);
  } catch (e) {
    throw new CliError(`cannot list devices${netns ? ` in ${netns}` : ''}: ${(e as Error).message}`);
  }
  const names = new Map(raw.map((l) => [l.index, l.name]));
  return raw.map((l) => ({
    ifindex: l.index,
    ifname: l.name,
    mtu: l.mtu,
    operstate: l.operstate ?? 'UNKNOWN',
    address: l.mac,
    kind: l.kind,
    master: l.master ? names.get(l.master) : undefined,
  }));
}

/** A sysctl by its dotted name ("net.ipv4.ip_forward"), undefined when it cannot be read. */
export function readSysctl(name: string, netns?: string): string | undefined {
  try {
    return readProcSysctl(name.replaceAll('.', '/'), netns);
  } catch {
    return undefined;
  }
}

export interface Hook {
  ifname: string;
  direction: TcDirection;
  filters: TcFilter[];
}

export function hooksOf(ifname: string, netns?: string): Hook[] {
  return (['ingress', 'egress'] as const).map((direction) => {
    let filters: TcFilter[] = [];
    try {
      filters = listTc({ ifname, netns }, direction);
    } catch {
      filters = [];
    }
    return { ifname, direction, filters };
  });
}

/** Kernel program names are cut at 15 characters. */
export function kernelProgName(name: string): string {
  return name.slice(0, 15);
}

export function isOurFilter(f: TcFilter): boolean {
  return f.handle === TC_HANDLE;
}

export const ProgramNames = {
  pod: kernelProgName(Programs.pod.program),
  overlayIngress: kernelProgName(Programs.overlayIngress.program),
  overlayEgress: kernelProgName(Programs.overlayEgress.program),
  uplinkIngress: kernelProgName(Programs.uplinkIngress.program),
  toPod: kernelProgName(Programs.toPod.program),
} as const;

export type DaemonHealth = { state: 'ready' | 'not-ready' | 'unreachable' | 'unchecked'; detail: string };

// A child node process does the HTTP call: with --netns it must run inside the
// node's namespace, and a socket only lands there if created there.
const HEALTH_CLIENT = `
const http = require('node:http');
const get = (p) => new Promise((res) => http.get(process.argv[1] + p, { timeout: 2000 }, (r) => {
  let b = ''; r.on('data', (d) => (b += d)); r.on('end', () => res({ status: r.statusCode, body: b.slice(0, 300) }));
}).on('error', (e) => res({ error: e.code || e.message })).on('timeout', function () { this.destroy(new Error('timeout')); }));
Promise.all([get('/healthz'), get('/readyz')]).then((r) => process.stdout.write(JSON.stringify(r)));
`;

const GET_CLIENT = `
const http = require('node:http');
http.get(process.argv[1], { timeout: 5000 }, (r) => {
  let b = ''; r.on('data', (d) => (b += d)); r.on('end', () => process.stdout.write(JSON.stringify({ status: r.statusCode, body: b })));
}).on('error', (e) => process.stdout.write(JSON.stringify({ error: e.code || e.message }))).on('timeout', function () { this.destroy(new Error('timeout')); });
`;

export type DaemonAnswer = { status: number; body: string } | { error: string };

/**
 * Whether reaching something in `netns` takes another network namespace than
 * this thread's: none given, or the same namespace under another name (the
 * node's own, as in bvcnid's pod), needs no switch.
 */
export function needsNetnsSwitch(netns: string | undefined): boolean {
  if (!netns) return false;
  try {
    const there = statSync(netns);
    const here = statSync('/proc/thread-self/ns/net');
    return there.dev !== here.dev || there.ino !== here.ino;
  } catch {
    // Not a namespace we can look at: the child says what is wrong with it.
    return true;
  }
}

/** One GET in this process (its socket in this thread's namespace). */
function getHere(url: string, signal?: AbortSignal): Promise<DaemonAnswer> {
  return new Promise((resolve) => {
    const req = httpGet(url, { timeout: 5000, signal, agent: false }, (r) => {
      let b = '';
      r.setEncoding('utf8');
      r.on('data', (d: string) => (b += d));
      r.on('end', () => resolve({ status: r.statusCode ?? 0, body: b }));
      r.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
    });
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'timeout' })));
  });
}

/**
 * One GET on bvcnid's health listener. A socket lands in the namespace of the
 * thread that creates it, and Node creates a client's socket on a later tick,
 * outside any synchronous setns: so with --netns naming another namespace a
 * short-lived child inside it does the call; otherwise (bvcnictl in bvcnid's
 * pod, or --netns naming our own namespace) this process does, with no child.
 */
export async function daemonGet(healthAddr: string, path: string, netns?: string, signal?: AbortSignal): Promise<DaemonAnswer> {
  const url = `http://${healthAddr}${path}`;
  if (!needsNetnsSwitch(netns)) return getHere(url, signal);
  const r = await run([process.execPath, '-e', GET_CLIENT, url], { netns, allowFail: true, timeoutMs: 10_000, signal });
  try {
    return JSON.parse(r.stdout) as DaemonAnswer;
  } catch {
    return { error: `${url}: ${(r.stderr || r.stdout).trim().slice(0, 200) || (signal?.aborted ? 'aborted' : `exit ${r.code}`)}` };
  }
}

/** bvcnid's /healthz and /readyz at host:port ('none' skips the check). */
export function daemonHealth(healthAddr: string, netns?: string): DaemonHealth {
  if (healthAddr === 'none') return { state: 'unchecked', detail: '--health-addr none' };
  const url = `http://${healthAddr}`;
  const r = runSync([process.execPath, '-e', HEALTH_CLIENT, url], { netns, allowFail: true, timeoutMs: 10_000 });
  let res: { status?: number; body?: string; error?: string }[];
  try {
    res = JSON.parse(r.stdout) as typeof res;
  } catch {
    return { state: 'unreachable', detail: `${url}: ${(r.stderr || r.stdout).trim().slice(0, 200)}` };
  }
  const [healthz, readyz] = res;
  if (healthz?.error || readyz?.error) return { state: 'unreachable', detail: `${url}: ${healthz?.error ?? readyz?.error}` };
  if (healthz?.status === 200 && readyz?.status === 200) return { state: 'ready', detail: `${url}/readyz 200` };
  return {
    state: 'not-ready',
    // A failing /healthz says why (stopping, API sync or reconcile loop stuck): the kubelet restarts bvcnid then.
    detail: `${url}: /healthz ${healthz?.status}${healthz?.status === 200 ? '' : ` ${(healthz?.body ?? '').trim().slice(0, 160)}`}, /readyz ${readyz?.status} ${(readyz?.body ?? '').trim().slice(0, 120)}`,
  };
}
