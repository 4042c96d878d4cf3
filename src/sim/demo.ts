// `make demo`: a 3-node bvcni cluster on this machine, end to end. Simulated
// nodes (network namespaces), a fake API server holding their Node objects,
// the real bvcnid on every node, pods created through the plugin the daemons
// installed; then a connectivity matrix, `bvcnictl status` and the tunnel map
// as bpftool prints it. Torn down at the end, or left running with KEEP=1.
//
//   node --import tsx src/sim/demo.ts [--keep] [--prefix P] [--summary FILE]
//   node --import tsx src/sim/demo.ts --cleanup [--prefix P]
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { Defaults } from '../common/defaults.js';
import { run } from '../common/exec.js';
import { openTunnelMap } from '../dataplane/maps.js';
import { formatTable } from '../common/table.js';
import { nodeObject } from './kube-node.js';
import {
  bvcnidCommand,
  cleanupLeftovers,
  createCluster,
  ping,
  probeMany,
  startResponder,
  uniquePrefix,
  INTERNET_IP,
  UNDERLAY_GATEWAY,
  type Cluster,
  type SimNode,
  type SimPod,
} from './index.js';
import { median } from '../common/stats.js';
import { waitFor } from '../common/wait.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const BVCNID = join(REPO_ROOT, 'dist/bin/bvcnid');
const BVCNICTL = join(REPO_ROOT, 'dist/bin/bvcnictl');
const THIS_FILE = fileURLToPath(import.meta.url);
const DEFAULT_BASE = 'bvdemo';
const API_PORT = 6443;
const HEALTH = Defaults.healthAddr;
const NODES = 3;
const PODS_PER_NODE = 2;

const started = Date.now();
const stamp = (): string => `[${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s]`;
const say = (msg: string): void => void process.stdout.write(`${stamp()} ${msg}\n`);

interface Pair {
  from: string;
  fromIp: string;
  to: string;
  toIp: string;
  kind: 'same-node' | 'cross-node' | 'internet';
  ok: boolean;
  rttMs: number | null;
  /** Source address the receiver saw on a TCP connection. */
  seenAs: string | null;
  expectedSource: string;
  error?: string;
}

export interface DemoSummary {
  prefix: string;
  ok: boolean;
  seconds: number;
  kept: boolean;
  pairs: Pair[];
}

// ---- the fake API server, as its own process inside the underlay namespace ----

async function serveApi(dir: string): Promise<void> {
  // Loaded only here: the demo proper never needs the server's code in-process.
  const { FakeKubeApiServer } = await import('./kube-apiserver.js');
  const api = new FakeKubeApiServer();
  const nodes = JSON.parse(readFileSync(join(dir, 'nodes.json'), 'utf8')) as Parameters<typeof api.addNode>[0][];
  for (const n of nodes) api.addNode(n);
  await api.start({ host: '0.0.0.0', port: API_PORT });
  writeFileSync(join(dir, 'kubeconfig'), api.kubeconfig(UNDERLAY_GATEWAY));
  const stop = (): void => void api.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdout.write('ready\n');
}

/** Detached, output to a log file: with KEEP=1 these outlive the demo process (see keepRunning). */
function startDetached(netns: string, argv: string[], log: string): ChildProcess {
  const fd = openSync(log, 'a');
  try {
    return spawn('nsenter', [`--net=${netns}`, '--', ...argv], { detached: true, stdio: ['ignore', fd, fd], cwd: REPO_ROOT });
  } finally {
    closeSync(fd);
  }
}

const tail = (file: string, lines = 8): string =>
  existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n') : '(no log)';

async function startApiServer(c: Cluster): Promise<{ child: ChildProcess; kubeconfig: string }> {
  const dir = join(c.dir, 'api');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'nodes.json'), JSON.stringify(c.nodes.map(nodeObject)));
  const log = join(dir, 'apiserver.log');
  const child = startDetached(c.underlay.path, [process.execPath, '--import', 'tsx', THIS_FILE, '--serve-api', dir], log);
  const kubeconfig = join(dir, 'kubeconfig');
  await waitFor('the API server', () => readFileSync(log, 'utf8').includes('ready'), {
    timeoutMs: 30_000,
    intervalMs: 100,
    abortIf: () => (child.exitCode !== null ? `exited ${child.exitCode}: ${tail(log)}` : undefined),
  });
  return { child, kubeconfig };
}

function startDaemon(n: SimNode, kubeconfig: string, log: string): ChildProcess {
  return startDetached(
    n.path,
    bvcnidCommand(n, { bvcnid: BVCNID, kubeconfig, healthAddr: HEALTH }),
    log,
  );
}

// Node itself as the HTTP client: a fresh Debian has no curl.
const READYZ_CLIENT = `require('node:http').get('http://${HEALTH}/readyz', { timeout: 2000 }, (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on('error', () => process.exit(1));`;

async function readyz(n: SimNode): Promise<boolean> {
  const r = await run([process.execPath, '-e', READYZ_CLIENT], { netns: n.path, allowFail: true, timeoutMs: 5000 });
  return r.code === 0;
}

function tunnelEntries(n: SimNode): number {
  try {
    using m = openTunnelMap(n.pinDir);
    let k = 0;
    for (const _ of m.keys()) k++;
    return k;
  } catch {
    return -1;
  }
}

// ---- the matrix ----

const RTT_RE = /rtt min\/avg\/max\/mdev = [\d.]+\/([\d.]+)\//;

async function matrix(c: Cluster, pods: SimPod[]): Promise<Pair[]> {
  const responders = await Promise.all([...pods.map((p) => startResponder(p.path)), startResponder(c.internet.path)]);
  try {
    const perSource = await Promise.all(
      pods.map(async (src) => {
        const targets = [
          ...pods.filter((p) => p !== src).map((p) => ({ name: label(p), ip: p.ip, kind: p.node === src.node ? ('same-node' as const) : ('cross-node' as const) })),
          { name: 'internet', ip: INTERNET_IP, kind: 'internet' as const },
        ];
        const tcp = await probeMany(src.path, targets.map((t) => ({ ip: t.ip, proto: 'tcp' as const })), 3000);
        const pings = await Promise.all(targets.map((t) => ping(src.path, t.ip, { count: 3, timeoutS: 2 })));
        return targets.map((t, i): Pair => {
          const probe = tcp[i]!;
          const p = pings[i]!;
          const expectedSource = t.kind === 'internet' ? src.node.ip : src.ip;
          const seenAs = probe.ok ? probe.peer : null;
          const m = RTT_RE.exec(p.stdout);
          const ok = p.ok && probe.ok && seenAs === expectedSource;
          return {
            from: label(src),
            fromIp: src.ip,
            to: t.name,
            toIp: t.ip,
            kind: t.kind,
            ok,
            rttMs: m ? Number(m[1]) : null,
            seenAs,
            expectedSource,
            ...(ok ? {} : { error: !p.ok ? 'ping failed' : !probe.ok ? `tcp: ${probe.error}` : `receiver saw ${seenAs}, expected ${expectedSource}` }),
          };
        });
      }),
    );
    return perSource.flat();
  } finally {
    for (const r of responders) r.kill('SIGKILL');
  }
}

const label = (p: SimPod): string => `n${p.node.index}/${p.podName}`;

function printMatrix(pods: SimPod[], pairs: Pair[]): void {
  const cols = [...pods.map(label), 'internet'];
  const rows = pods.map((src) => [
    `${label(src)} ${src.ip}`,
    ...cols.map((to) => {
      if (to === label(src)) return '·';
      const p = pairs.find((x) => x.from === label(src) && x.to === to)!;
      if (!p.ok) return '✗ FAIL';
      return `✓ ${p.rttMs?.toFixed(3) ?? '?'}`;
    }),
  ]);
  process.stdout.write('\nConnectivity: ping RTT in ms (avg of 3); every ✓ also passed a TCP exchange whose receiver saw the expected source\n');
  process.stdout.write(formatTable(['FROM \\ TO', ...cols], rows));
  for (const kind of ['same-node', 'cross-node', 'internet'] as const) {
    const ps = pairs.filter((p) => p.kind === kind);
    const good = ps.filter((p) => p.ok);
    const rtts = good.map((p) => p.rttMs).filter((x): x is number => x !== null);
    const what =
      kind === 'internet'
        ? `pod → internet (${INTERNET_IP}), masqueraded: the internet saw each pod as its node's IP`
        : kind === 'same-node'
          ? 'pod ↔ pod on the same node'
          : 'pod ↔ pod across nodes, over VXLAN: the receiver saw the real pod IP';
    process.stdout.write(`  ${good.length}/${ps.length} ${what}; median RTT ${median(rtts).toFixed(3)} ms\n`);
  }
  for (const p of pairs.filter((x) => !x.ok)) process.stdout.write(`  FAIL ${p.from} → ${p.to} (${p.toIp}): ${p.error}\n`);
}

// ---- main ----

async function demo(opts: { prefix: string; keep: boolean; summary?: string }): Promise<number> {
  for (const f of [BVCNID, join(REPO_ROOT, 'dist/bin/bvcni')])
    if (!existsSync(f)) throw new Error(`${f} is missing: run make build (make demo does)`);
  process.stdout.write(`bvcni demo: ${NODES} simulated nodes on this machine (prefix ${opts.prefix})\n`);

  const c = await createCluster({ prefix: opts.prefix, nodes: NODES, dataplane: 'none' });
  const daemons: ChildProcess[] = [];
  let api: ChildProcess | undefined;
  let kept = false;
  const teardown = async (): Promise<void> => {
    if (kept) return;
    // SIGTERM, as the kubelet would: bvcnid leaves the dataplane in place; the
    // namespaces and pins go with the cluster right after.
    await Promise.all(
      daemons.map((d) => (d.exitCode === null && d.signalCode === null ? new Promise<void>((r) => (d.once('exit', () => r()), d.kill('SIGTERM'))) : undefined)),
    );
    api?.kill('SIGTERM');
    await c.destroy();
  };
  const onSignal = (): void => void teardown().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    say(`underlay (192.0.2.0/24), internet (${INTERNET_IP}) and ${NODES} node namespaces: ${c.nodes.map((n) => `${n.name} ${n.ip} ${n.podCidr}`).join(', ')}`);
    const s = await startApiServer(c);
    api = s.child;
    say(`fake API server in the underlay at http://${UNDERLAY_GATEWAY}:${API_PORT} holding ${NODES} Node objects`);

    const logs = c.nodes.map((n) => join(dirname(n.confDir), 'bvcnid.log'));
    c.nodes.forEach((n, i) => daemons.push(startDaemon(n, s.kubeconfig, logs[i]!)));
    for (const [i, n] of c.nodes.entries()) {
      const d = daemons[i]!;
      await waitFor(`bvcnid on ${n.name} to be ready`, async () => (await readyz(n)) && tunnelEntries(n) === 2 * (NODES - 1), {
        timeoutMs: 60_000,
        intervalMs: 100,
        abortIf: () => (d.exitCode !== null || d.signalCode !== null ? `exited (${d.exitCode ?? d.signalCode}): ${tail(logs[i]!)}` : undefined),
      });
    }
    say(`bvcnid ready on every node: dataplane attached, plugin + conflist installed, tunnel maps converged (${2 * (NODES - 1)} entries each)`);

    const pods: SimPod[] = [];
    for (const n of c.nodes) for (let k = 0; k < PODS_PER_NODE; k++) pods.push(await c.addPod(n, `p${k}`, { via: 'plugin' }));
    say(`${pods.length} pods created through the installed plugin (CNI ADD): ${pods.map((p) => `${label(p)}=${p.ip}`).join(' ')}`);

    const pairs = await matrix(c, pods);
    printMatrix(pods, pairs);
    const ok = pairs.every((p) => p.ok);

    const n0 = c.nodes[0]!;
    process.stdout.write(`\n$ bvcnictl status --pin-dir ${n0.pinDir} --netns ${n0.path}\n`);
    const ctl = existsSync(BVCNICTL)
      ? await run([process.execPath, BVCNICTL, 'status', '--pin-dir', n0.pinDir, '--netns', n0.path], { allowFail: true })
      : { code: 1, stdout: '', stderr: `${BVCNICTL} missing` };
    process.stdout.write(ctl.stdout + ctl.stderr);
    process.stdout.write(`\n$ bpftool map dump pinned ${n0.pinDir}/bvcni_tunnel\n`);
    const dump = await run(['bpftool', 'map', 'dump', 'pinned', `${n0.pinDir}/bvcni_tunnel`], { allowFail: true });
    process.stdout.write(dump.stdout + dump.stderr);

    const seconds = (Date.now() - started) / 1000;
    if (opts.summary) {
      const summary: DemoSummary = { prefix: opts.prefix, ok, seconds, kept: opts.keep, pairs };
      writeFileSync(opts.summary, JSON.stringify(summary, null, 2));
    }
    process.stdout.write(`\n${ok ? 'all green' : 'SOME CHECKS FAILED'} in ${seconds.toFixed(1)} s\n`);

    if (opts.keep) {
      keepRunning(c, [...daemons, api]);
      kept = true;
      printKeepHelp(c, pods, s.kubeconfig, logs);
    }
    return ok ? 0 : 1;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    if (!kept) {
      await teardown();
      say('torn down: namespaces, devices, pinned maps and programs, temp files');
    }
  }
}

/** The cluster removes itself when this process exits unless told otherwise. */
function keepRunning(c: Cluster, children: ChildProcess[]): void {
  for (const child of children) child.unref();
  c.keepAfterExit();
}

function printKeepHelp(c: Cluster, pods: SimPod[], kubeconfig: string, logs: string[]): void {
  const n0 = c.nodes[0]!;
  const p = pods.find((x) => x.node !== n0) ?? pods[0]!;
  // The pinned Node this demo runs under (the machine's own may be another major).
  const node = process.execPath.startsWith(`${REPO_ROOT}/`) ? process.execPath.slice(REPO_ROOT.length + 1) : process.execPath;
  const lines = [
    '',
    'KEEP=1: the cluster stays up. Explore it:',
    `  bvcnictl (any node):   ${node} dist/bin/bvcnictl status --pin-dir ${n0.pinDir} --netns ${n0.path}`,
    `                         nsenter --net=${n0.path} ${node} dist/bin/bvcnictl nodes --pin-dir ${n0.pinDir} --kubeconfig ${kubeconfig}`,
    `                         ${node} dist/bin/bvcnictl doctor --pin-dir ${n0.pinDir} --netns ${n0.path} --cni-conf-dir ${n0.confDir} --cni-bin-dir ${n0.binDir}`,
    `  a shell in a pod:      nsenter --net=${pods[0]!.path} bash      (then: ping ${p.ip}; ping ${INTERNET_IP})`,
    `  a shell on a node:     nsenter --net=${n0.path} bash      (tc filter show dev ${n0.vxlanDev} ingress; ip -d link)`,
    `  maps:                  bpftool map dump pinned ${n0.pinDir}/bvcni_endpoints`,
    `  daemon logs:           ${logs[0]}  (one per node)`,
    `  API server:            ${kubeconfig}  (reachable from the node namespaces only, hence nsenter above)`,
    'Remove it:',
    `  ${node} --import tsx src/sim/demo.ts --cleanup --prefix ${c.prefix}`,
    `  (or --cleanup alone, or make demo-clean: every demo cluster, prefix ${DEFAULT_BASE}*)`,
    '',
  ];
  process.stdout.write(lines.join('\n'));
}

async function cleanup(prefix: string): Promise<number> {
  const r = await cleanupLeftovers(prefix);
  const n = r.netns.length + r.pins.length + r.dirs.length;
  process.stdout.write(
    n ? `removed ${r.netns.length} namespaces (and the processes in them), ${r.pins.length} pin dirs, ${r.dirs.length} temp dirs for ${prefix}*\n` : `nothing to remove for ${prefix}*\n`,
  );
  return 0;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      keep: { type: 'boolean', default: process.env.KEEP === '1' },
      cleanup: { type: 'boolean', default: false },
      prefix: { type: 'string' },
      summary: { type: 'string' },
      'serve-api': { type: 'string' },
    },
    strict: true,
  });
  if (values['serve-api']) {
    await serveApi(values['serve-api']);
    return -1; // keep serving
  }
  if (values.prefix !== undefined && !/^[a-z][a-z0-9]{2,11}$/.test(values.prefix))
    throw new Error(`--prefix must be 3-12 lowercase letters/digits: ${JSON.stringify(values.prefix)}`);
  if (values.cleanup) return cleanup(values.prefix ?? DEFAULT_BASE);
  return demo({ prefix: values.prefix ?? uniquePrefix(DEFAULT_BASE), keep: values.keep, summary: values.summary });
}

main().then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`demo failed: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
