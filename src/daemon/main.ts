// bvcnid: the node daemon (DaemonSet). Flags each have an environment
// fallback so the same binary runs in a cluster and, several at once, in the
// simulator.
import { Command, InvalidArgumentError, Option } from 'commander';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { pino, type Logger } from 'pino';
import { DAEMON_DEFAULTS, Daemon, type DaemonConfig } from './daemon.js';
import { kernelDataplane, killAtStep } from './dataplane.js';
import { installPlugin, removeInstalled } from '../kube/install.js';
import { Defaults, VXLAN_OVERHEAD } from '../common/defaults.js';
import {
  DEFAULT_API_BOUNDS,
  conditionPatcher,
  listWatchApi,
  loadKubeConfig,
  nodeApi,
  nodeGetter,
  POLICY_PATHS,
  slimNamespace,
  slimNetworkPolicy,
  slimPod,
  type ApiBounds,
} from '../kube/client.js';
import { PolicySync, preparse } from './policy.js';
import { PinnedPolicyMaps, clearPolicyWhenOff } from './policy-maps.js';
import { parseNamespace, parseNetworkPolicy, parsePod, policyView } from '../policy/index.js';
import { DaemonMetrics, parseHostPort, startHealthServers } from './metrics.js';
import { cidrsOverlap, parseCidr } from '../common/cidr.js';
import { setLibbpfLogger } from '../../loader/index.js';
import { CniServer } from './cni-server.js';
import { buildInfo, buildLine } from '../dataplane/build.js';
import { kernelGate, podDeviceGate } from './kernel.js';
import type { PodDeviceChoice } from '../dataplane/features.js';
import { watchForConntrack } from './conntrack-watch.js';
import { probeConntrack, programSetDir, type ProgramSetName } from '../dataplane/features.js';
import { ABI1_SUBDIR, defaultObjDir } from '../dataplane/layout.js';
import { migratePinnedMaps } from '../dataplane/migrate.js';
import { removeHostPorts } from '../dataplane/hostport.js';
import { removeToPodProgram } from '../dataplane/node.js';
import { removePolicyMaps } from '../dataplane/policy.js';
import { EndpointFlags, MapName } from '../dataplane/abi.js';
import { listEndpoints } from '../dataplane/endpoint.js';
import { mapPin } from '../dataplane/maps.js';
import { getLinkByIndex } from '../netlink/rtnl.js';
import { NetlinkSocket } from '../netlink/socket.js';
import { removeMonitorMaps } from '../dataplane/monitor.js';

/** How often a node without conntrack looks for it again: one stat() each time. */
const CONNTRACK_RECHECK_MS = 30_000;

interface Flags {
  nodeName?: string;
  kubeconfig?: string;
  iface?: string;
  clusterCidr: string;
  serviceCidr: string;
  podDevice: PodDeviceChoice;
  pinDir: string;
  cniConfDir: string;
  cniBinDir?: string;
  stateDir: string;
  healthAddr: string;
  metricsAddr?: string;
  apiTimeout: number;
  apiBodyTimeout: number;
  watchIdleTimeout: number;
  stuckAfter: number;
  natCountInterval: number;
  bridge: string;
  vxlanDev: string;
  vxlanPort: number;
  vni: number;
  mtu?: number;
  cgroupRoot?: string;
  plugin?: string;
  logLevel: string;
  uninstall?: boolean;
  installCni?: boolean;
  networkPolicy?: boolean;
  prepareDowngrade?: boolean;
}

/** Where --install-cni and --uninstall put and find the plugin when --cni-bin-dir is not given. */
const DEFAULT_CNI_BIN_DIR = Defaults.cniBinDir;

const intIn = (lo: number, hi: number, what: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < lo || n > hi) throw new InvalidArgumentError(`${what} must be an integer ${lo}..${hi}`);
  return n;
};

/** A duration in ms from "500ms", "30s", "5m" or a bare number of seconds. */
const duration = (what: string) => (v: string): number => {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(v.trim());
  if (!m) throw new InvalidArgumentError(`${what} must be a duration such as 500ms, 30s or 5m`);
  const ms = Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 'm' ? 60_000 : 1000);
  if (!(ms >= 1) || ms > 24 * 3600_000) throw new InvalidArgumentError(`${what} must be between 1ms and 24h`);
  return Math.round(ms);
};

const secs = (ms: number): string => `${ms / 1000}s`;

function program(): Command {
  return new Command('bvcnid')
    .description('bvcni node daemon: owns the node dataplane and keeps the tunnel map equal to the cluster\'s Nodes')
    .addOption(new Option('--node-name <name>', 'this node\'s Node name').env('NODE_NAME'))
    .addOption(new Option('--kubeconfig <path>', 'kubeconfig (default: in-cluster service account)').env('KUBECONFIG'))
    .addOption(new Option('--iface <dev>', "uplink interface (default: the one holding the Node's InternalIP, else the default route's)").env('BVCNI_IFACE'))
    .addOption(new Option('--cluster-cidr <cidr>', 'cluster pod CIDR').env('BVCNI_CLUSTER_CIDR').default(Defaults.clusterCidr))
    .addOption(
      new Option('--service-cidr <cidr>', "Service ClusterIP range, handed to kube-proxy in the host stack ('' to disable)")
        .env('BVCNI_SERVICE_CIDR')
        .default(Defaults.serviceCidr),
    )
    .addOption(new Option('--pin-dir <dir>', 'bpffs directory of the pinned maps').env('BVCNI_PIN_DIR').default(Defaults.pinDir))
    .addOption(new Option('--cni-conf-dir <dir>', 'CNI config directory').env('BVCNI_CNI_CONF_DIR').default(Defaults.cniConfDir))
    .addOption(
      new Option(
        '--cni-bin-dir <dir>',
        `CNI plugin directory: the running daemon installs the plugin there when given one (the DaemonSet gives none: its init container runs --install-cni); --install-cni and --uninstall default to ${DEFAULT_CNI_BIN_DIR}`,
      ).env('BVCNI_CNI_BIN_DIR'),
    )
    .addOption(new Option('--state-dir <dir>', 'IPAM state directory (the plugin\'s dataDir)').env('BVCNI_STATE_DIR').default(Defaults.stateDir))
    .addOption(new Option('--health-addr <host:port>', '/healthz and /readyz address (loopback: the kubelet probes 127.0.0.1 with hostNetwork)').env('BVCNI_HEALTH_ADDR').default(Defaults.healthAddr))
    .addOption(
      new Option('--metrics-addr <host:port>', "/metrics address, 'none' for no /metrics; any address but loopback is reachable from pods (default: the --health-addr listener)")
        .env('BVCNI_METRICS_ADDR'),
    )
    .addOption(
      new Option('--api-timeout <duration>', 'deadline for connect and response headers of every API request, a watch included')
        .env('BVCNI_API_TIMEOUT')
        .default(DEFAULT_API_BOUNDS.timeoutMs, secs(DEFAULT_API_BOUNDS.timeoutMs))
        .argParser(duration('--api-timeout')),
    )
    .addOption(
      new Option('--api-body-timeout <duration>', 'deadline for a whole response body once its headers are in (one list page, a GET, a PATCH)')
        .env('BVCNI_API_BODY_TIMEOUT')
        .default(DEFAULT_API_BOUNDS.bodyTimeoutMs, secs(DEFAULT_API_BOUNDS.bodyTimeoutMs))
        .argParser(duration('--api-body-timeout')),
    )
    .addOption(
      new Option('--watch-idle-timeout <duration>', 'a Node watch with no event and no bookmark for this long is restarted from its resourceVersion')
        .env('BVCNI_WATCH_IDLE_TIMEOUT')
        .default(DAEMON_DEFAULTS.watchIdleTimeoutMs, secs(DAEMON_DEFAULTS.watchIdleTimeoutMs))
        .argParser(duration('--watch-idle-timeout')),
    )
    .addOption(
      new Option('--stuck-after <duration>', '/healthz fails when the API sync or the reconcile loop has been stuck this long (README: "/healthz")')
        .env('BVCNI_STUCK_AFTER')
        .default(DAEMON_DEFAULTS.stuckAfterMs, secs(DAEMON_DEFAULTS.stuckAfterMs))
        .argParser(duration('--stuck-after')),
    )
    .addOption(
      new Option('--nat-count-interval <duration>', 'pause between background counts of the NAT table (bvcni_nat_entries lags by at most this plus one count)')
        .env('BVCNI_NAT_COUNT_INTERVAL')
        .default(DAEMON_DEFAULTS.natCountIntervalMs, secs(DAEMON_DEFAULTS.natCountIntervalMs))
        .argParser(duration('--nat-count-interval')),
    )
    .addOption(new Option('--bridge <name>', 'pod bridge').env('BVCNI_BRIDGE').default(Defaults.bridge))
    .addOption(new Option('--vxlan-dev <name>', 'VXLAN device').env('BVCNI_VXLAN_DEV').default(Defaults.vxlanDev))
    .addOption(new Option('--vxlan-port <port>', 'VXLAN UDP port').env('BVCNI_VXLAN_PORT').default(Defaults.vxlanPort).argParser(intIn(1, 65535, '--vxlan-port')))
    .addOption(new Option('--vni <n>', 'VXLAN network identifier').env('BVCNI_VNI').default(Defaults.vni).argParser(intIn(1, 16777215, '--vni')))
    .addOption(
      new Option('--pod-device <kind>', "pods' interfaces: netkit pairs (Linux 6.7), veth pairs, or auto: netkit where the kernel has it")
        .env('BVCNI_POD_DEVICE')
        .default('auto')
        .choices(['auto', 'veth', 'netkit']),
    )
    .addOption(new Option('--mtu <n>', `one MTU for pods, bridge and VXLAN (default: pods and bridge the uplink's; VXLAN and pods' routes through it uplink MTU - ${VXLAN_OVERHEAD})`).env('BVCNI_MTU').argParser(intIn(576, 9000, '--mtu')))
    .addOption(
      new Option('--cgroup-root <dir>', "cgroup v2 root whose sockets of the node's namespace reach hostPorts (default: the one mounted here; '' none)").env(
        'BVCNI_CGROUP_ROOT',
      ),
    )
    .addOption(new Option('--plugin <path>', 'CNI plugin to install (default: bvcni beside this program)').env('BVCNI_PLUGIN'))
    .addOption(new Option('--log-level <level>', 'log level').env('BVCNI_LOG_LEVEL').default(Defaults.logLevel).choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal']))
    .addOption(
      new Option(
        '--network-policy',
        "enforce NetworkPolicy: list and watch Pods, Namespaces and NetworkPolicies and write this node's rules to the pinned maps (needs the RBAC of deploy/network-policy-rbac.yaml; new pods are fail-closed until their rules are written)",
      ).env('BVCNI_NETWORK_POLICY'),
    )
    .addOption(new Option('--uninstall', 'remove programs, maps, devices, the conflist and the plugin, then exit'))
    .addOption(
      new Option('--install-cni', 'install the CNI plugin (and its bvcni.d/) into --cni-bin-dir, then exit (the DaemonSet\'s init container)').conflicts('uninstall'),
    )
    .addOption(
      new Option(
        '--prepare-downgrade',
        "convert this node's pinned maps back to ABI 1 (v0.1.0's layouts) in place, running this release's programs built for them, then exit: run it before rolling bvcnid back to v0.1.0 (README, \"Upgrades and downgrades\")",
      ).conflicts(['uninstall', 'installCni']),
    )
    .version(buildLine('bvcnid'), '--version', 'print the release, commit and dataplane ABI version, then exit')
    .showHelpAfterError();
}

/** GET /policy?pod=NS/NAME: the rules bvcnid compiled for one local endpoint (bvcnictl policy). */
function policyAnswer(policy: PolicySync | undefined, pod: string): { status: number; body: unknown } {
  if (!policy) return { status: 404, body: { error: 'NetworkPolicy is not enabled on this node (bvcnid --network-policy)' } };
  const m = /^([^/]+)\/([^/]+)$/.exec(pod);
  if (!m) return { status: 400, body: { error: `pod must be NAMESPACE/NAME, not ${JSON.stringify(pod)}` } };
  if (!policy.synced) return { status: 503, body: { error: 'not synced yet: Pods, Namespaces and NetworkPolicies are still being listed' } };
  const ep = policy.endpointOf(m[1]!, m[2]!);
  if (!ep) return { status: 404, body: { error: `${pod} is not an endpoint on this node (unknown Pod, another node, host network, or no address yet)` } };
  return { status: 200, body: policyView(ep, (id) => policy.compiler.identity(id)) };
}

function defaultPlugin(): string {
  // dist/bin/bvcnid → dist/bin/bvcni; under tsx (src/daemon/main.ts) → dist/bin/bvcni of the repo.
  const here = dirname(resolve(process.argv[1] ?? '.'));
  const beside = join(here, 'bvcni');
  if (existsSync(beside)) return beside;
  return resolve(here, '../../dist/bin/bvcni');
}

async function uninstall(flags: Flags, cfg: DaemonConfig, log: Logger): Promise<number> {
  await kernelDataplane.remove({
    pinDir: cfg.pinDir,
    bridge: cfg.bridge,
    vxlanDev: cfg.vxlanDev,
    vxlanPort: cfg.vxlanPort,
    vni: cfg.vni,
    // Empty: the uplink recorded in the pinned config.
    uplink: cfg.iface,
    nodeIp: '0.0.0.0',
    podCidr: '0.0.0.0/32',
    clusterCidr: cfg.clusterCidr,
  });
  const removed = removeInstalled(cfg.cniConfDir, flags.cniBinDir || DEFAULT_CNI_BIN_DIR);
  log.info({ removed, pinDir: flags.pinDir }, 'bvcni uninstalled from this node');
  return 0;
}

/**
 * Before a rollback to v0.1.0, which cannot read ABI 2 maps (its libbpf refuses
 * to reuse them: it would stay not ready, its set-up failing): the maps go back
 * to ABI 1 in place, under this release's programs built for ABI 1
 * (dist/bpf/abi1), whose maps v0.1.0 then adopts and whose programs it
 * replaces in place. A bvcnid of this release started again before the
 * rollback migrates them forward again.
 */
function prepareDowngrade(cfg: DaemonConfig, set: ProgramSetName, log: Logger): number {
  const objDir = programSetDir(set, join(defaultObjDir(), ABI1_SUBDIR));
  try {
    const netkit = netkitPods(cfg);
    if (netkit.length) {
      const names = netkit.map((p) => `${p.ip} (${[p.device, p.containerId && `container ${p.containerId}`].filter(Boolean).join(', ')})`);
      log.fatal(
        { pods: netkit, pinDir: cfg.pinDir },
        `cannot prepare the downgrade: v0.1.0 has no netkit and cannot serve this node's netkit pods: ${names.join(', ')}. ` +
          'Delete them (drain the node), or run bvcnid with --pod-device veth and recreate them, then run --prepare-downgrade again. Nothing was changed.',
      );
      return 1;
    }
    const report = migratePinnedMaps({ pinDir: cfg.pinDir, objDir, onStep: killAtStep() });
    log.info({ ...report, objDir, pinDir: cfg.pinDir }, report.converted.length ? 'pinned maps converted to ABI 1: ready for v0.1.0' : 'pinned maps already have the ABI 1 layouts');
    // Only once the ABI 1 programs are in place: until then the ABI 2 ones use these maps.
    const toPod = removeToPodProgram(cfg.pinDir);
    if (toPod >= 0) log.info({ pods: toPod, pinDir: cfg.pinDir }, "the pods' host-delivery program (bpf_to_pod, NetworkPolicy: ABI 2) unpinned and detached");
    const hp = removeHostPorts(cfg.pinDir);
    if (hp.linkDetached || hp.mapsRemoved.length)
      log.info({ ...hp, pinDir: cfg.pinDir }, "hostPorts (ABI 2) removed: the node's cgroup connect4 link detached, the hostPort maps unpinned");
    const pol = removePolicyMaps(cfg.pinDir);
    if (pol.length) log.info({ mapsRemoved: pol, pinDir: cfg.pinDir }, 'NetworkPolicy maps (ABI 2) unpinned');
    const events = removeMonitorMaps(cfg.pinDir);
    if (events.length) log.info({ mapsRemoved: events, pinDir: cfg.pinDir }, 'drop events (ABI 2) removed: their maps unpinned');
    return 0;
  } catch (e) {
    log.fatal({ err: (e as Error).message, pinDir: cfg.pinDir }, 'cannot convert the pinned maps to ABI 1');
    return 1;
  }
}

/**
 * The pods v0.1.0 could not serve: netkit pods (ENDPOINT_F_NETKIT), which it
 * knows nothing of. Its programs would be attached to the pair's host end as
 * if it were a veth (where a netkit pod needs them as its pair's peer
 * program, and same-node delivery from it a bpf_redirect its programs never
 * make), its plugin's DEL, CHECK and GC look for veths only, and ABI 1 has
 * no ENDPOINT_F_NETKIT for its programs to read. Named by
 * address, host device and (from the IPAM store under --state-dir) container.
 * Read in either layout: the maps may already be ABI 1.
 */
function netkitPods(cfg: DaemonConfig): { ip: string; device?: string; containerId?: string }[] {
  if (!existsSync(mapPin(cfg.pinDir, MapName.endpoints))) return [];
  const found = listEndpoints(cfg.pinDir).filter((e) => (Number(e.flags) & EndpointFlags.netkit) !== 0);
  if (!found.length) return [];
  using s = new NetlinkSocket();
  const networks = (() => {
    try {
      return readdirSync(cfg.stateDir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => join(cfg.stateDir, d.name));
    } catch {
      return [];
    }
  })();
  return found.map((e) => {
    const ip = String(e.ip);
    const device = getLinkByIndex(s, e.ifindex)?.name;
    let containerId: string | undefined;
    for (const dir of networks) {
      try {
        containerId = readFileSync(join(dir, ip), 'utf8').split(/\r?\n/)[0]?.trim() || undefined;
        if (containerId) break;
      } catch {
        /* not reserved in this network */
      }
    }
    return { ip, ...(device ? { device } : {}), ...(containerId ? { containerId } : {}) };
  });
}

/**
 * The plugin's install, apart from the daemon: the DaemonSet runs it in an init
 * container, the only one that mounts the host's CNI bin dir writable. Nothing
 * else is touched (no API, no dataplane), so it needs no capability.
 */
function installCni(flags: Flags, cfg: DaemonConfig, log: Logger): number {
  const binDir = flags.cniBinDir || DEFAULT_CNI_BIN_DIR;
  try {
    const inst = installPlugin(cfg.plugin, binDir);
    log.info({ plugin: inst.binary, version: inst.version, changed: inst.changed }, inst.changed ? 'CNI plugin installed' : 'CNI plugin already installed');
    return 0;
  } catch (e) {
    log.fatal({ err: (e as Error).message, binDir }, 'cannot install the CNI plugin');
    return 1;
  }
}

export async function main(argv: string[]): Promise<number> {
  const cmd = program();
  cmd.parse(argv);
  const flags = cmd.opts<Flags>();
  const log = pino({ level: flags.logLevel, base: { node: flags.nodeName }, timestamp: pino.stdTimeFunctions.isoTime });
  try {
    const cluster = parseCidr(flags.clusterCidr, { what: '--cluster-cidr', strict: true });
    if (flags.serviceCidr) {
      const service = parseCidr(flags.serviceCidr, { what: '--service-cidr', strict: true });
      // Pods and ClusterIPs sharing addresses would send pod traffic to kube-proxy.
      if (cidrsOverlap(cluster, service)) {
        throw new Error(`--service-cidr ${flags.serviceCidr} overlaps --cluster-cidr ${flags.clusterCidr}`);
      }
    }
    parseHostPort(flags.healthAddr, '--health-addr');
    if (flags.metricsAddr !== undefined && flags.metricsAddr !== 'none') parseHostPort(flags.metricsAddr, '--metrics-addr');
    // A quiet healthy cluster must never look stuck: its watch is restarted
    // (progress) after --watch-idle-timeout, and the new one answers within --api-timeout.
    if (flags.stuckAfter <= flags.watchIdleTimeout + flags.apiTimeout) {
      throw new Error(
        `--stuck-after (${secs(flags.stuckAfter)}) must be longer than --watch-idle-timeout plus --api-timeout (${secs(flags.watchIdleTimeout + flags.apiTimeout)}): a quiet cluster would look stuck`,
      );
    }
  } catch (e) {
    log.fatal({ err: (e as Error).message }, 'bad flag');
    return 2;
  }
  const cfg: DaemonConfig = {
    nodeName: flags.nodeName ?? '',
    iface: flags.iface ?? '',
    clusterCidr: flags.clusterCidr,
    serviceCidr: flags.serviceCidr,
    pinDir: flags.pinDir,
    cniConfDir: flags.cniConfDir,
    cniBinDir: flags.cniBinDir ?? '',
    stateDir: flags.stateDir,
    bridge: flags.bridge,
    vxlanDev: flags.vxlanDev,
    vxlanPort: flags.vxlanPort,
    vni: flags.vni,
    mtu: flags.mtu,
    ...(flags.cgroupRoot !== undefined ? { cgroupRoot: flags.cgroupRoot } : {}),
    plugin: flags.plugin ?? defaultPlugin(),
    watchIdleTimeoutMs: flags.watchIdleTimeout,
    stuckAfterMs: flags.stuckAfter,
    natCountIntervalMs: flags.natCountInterval,
    networkPolicy: flags.networkPolicy === true,
  };
  const bounds: ApiBounds = { timeoutMs: flags.apiTimeout, bodyTimeoutMs: flags.apiBodyTimeout };
  log.info(buildInfo(), 'build');
  if (flags.installCni) return installCni(flags, cfg, log);
  setLibbpfLogger((level, msg) => log[level === 'warn' ? 'warn' : 'debug']({ libbpf: true }, msg.trimEnd()));
  if (flags.uninstall) return uninstall(flags, cfg, log);
  if (flags.prepareDowngrade) {
    const set = await kernelGate(log);
    return set ? prepareDowngrade(cfg, set.name, log) : 1;
  }
  if (!cfg.nodeName) {
    log.fatal('--node-name (or NODE_NAME) is required');
    return 2;
  }
  // Before anything is created: a kernel below the floor gets a refusal, not half a dataplane.
  const programs = await kernelGate(log);
  if (!programs) return 1;
  cfg.objDir = programs.dir;
  const podDevice = await podDeviceGate(log, flags.podDevice);
  if (!podDevice) return 1;
  cfg.podDevice = podDevice;

  let kc;
  try {
    kc = loadKubeConfig(flags.kubeconfig);
  } catch (e) {
    log.fatal({ err: (e as Error).message }, 'cannot load the kubeconfig');
    return 2;
  }
  const metrics = new DaemonMetrics();
  let policy: PolicySync | undefined;
  const daemon = new Daemon(cfg, {
    nodesChanged: () => policy?.nodesChanged(),
    log,
    api: nodeApi(kc, bounds),
    getNode: nodeGetter(kc, bounds),
    patcher: conditionPatcher(kc, bounds),
    dataplane: kernelDataplane,
    metrics,
  });
  let servers: Server[];
  try {
    servers = await startHealthServers(flags.healthAddr, flags.metricsAddr ?? flags.healthAddr, daemon, metrics, {
      // The local endpoints' names and isolating policies (bvcnictl monitor); 404 without --network-policy.
      '/endpoints': (res) => {
        const answer = !policy
          ? { status: 404, body: { error: 'NetworkPolicy is not enabled on this node (bvcnid --network-policy)' } }
          : !policy.synced
            ? { status: 503, body: { error: 'not synced yet' } }
            : { status: 200, body: { endpoints: policy.endpointNames() } };
        res.writeHead(answer.status, { 'content-type': 'application/json' }).end(`${JSON.stringify(answer.body)}\n`);
      },
      '/policy': (res, url) => {
        const answer = policyAnswer(policy, url.searchParams.get('pod') ?? '');
        res.writeHead(answer.status, { 'content-type': 'application/json' }).end(`${JSON.stringify(answer.body)}\n`);
      },
    });
  } catch (e) {
    log.fatal({ err: (e as Error).message, healthAddr: flags.healthAddr, metricsAddr: flags.metricsAddr }, 'cannot serve health and metrics');
    return 1;
  }
  // The plugin's fast path; without it the plugin does the work itself, so a failure here is not fatal.
  const cni = new CniServer({
    stateDir: cfg.stateDir,
    pinDir: cfg.pinDir,
    log: log.child({ component: 'cni' }),
    metrics,
    // NetworkPolicy: the pod's rules are written before the plugin answers the ADD.
    onAdded: ({ pod, ip }) => {
      if (policy && pod && !policy.endpointAdded(pod.namespace, pod.name, ip))
        log.info({ pod: `${pod.namespace}/${pod.name}`, ip }, 'pod not known yet: its endpoint stays fail-closed until it is');
    },
    onDeleted: ({ pod }) => {
      if (policy && pod) policy.endpointDeleted(pod.namespace, pod.name);
    },
  });
  try {
    await cni.start();
  } catch (e) {
    log.error({ err: (e as Error).message, socket: cni.path }, 'cannot serve the CNI plugin; it will work alone');
  }
  daemon.start();
  policy = flags.networkPolicy
    ? new PolicySync({
        nodeName: cfg.nodeName,
        log: log.child({ component: 'policy' }),
        apis: {
          pods: listWatchApi(kc, POLICY_PATHS.pods, preparse(slimPod, parsePod), bounds),
          namespaces: listWatchApi(kc, POLICY_PATHS.namespaces, preparse(slimNamespace, parseNamespace), bounds),
          networkPolicies: listWatchApi(kc, POLICY_PATHS.networkPolicies, preparse(slimNetworkPolicy, parseNetworkPolicy), bounds),
        },
        nodes: () => daemon.nodes(),
        idleTimeoutMs: cfg.watchIdleTimeoutMs,
        maps: new PinnedPolicyMaps(cfg.pinDir),
        metrics: { syncDuration: metrics.policySyncDuration, writes: metrics.policyWrites, writeErrors: metrics.policyWriteErrors },
      })
    : undefined;
  policy?.start();
  // Without the flag, nothing keeps policy state right: what a run with it left goes, once the dataplane is up.
  const policyOff = flags.networkPolicy
    ? undefined
    : setInterval(() => {
        if (!kernelDataplane.ready(cfg.pinDir)) return;
        try {
          const found = clearPolicyWhenOff(cfg.pinDir);
          if (found && (found.entries || found.ipcache || found.flagged))
            log.info({ ...found }, 'NetworkPolicy is off (no --network-policy): removed the policy state a previous run left');
          clearInterval(policyOff);
        } catch (e) {
          log.warn({ err: (e as Error).message }, 'cannot clear the policy state left by a previous run; retrying');
        }
      }, 1000);
  // Without conntrack now, perhaps with it later (kube-proxy loads Debian's nf_conntrack module).
  const ctWatch =
    programs.name === 'no-conntrack'
      ? watchForConntrack({
          log,
          intervalMs: CONNTRACK_RECHECK_MS,
          probe: () => probeConntrack(),
          onAvailable: () => daemon.useObjects(programSetDir('conntrack')),
        })
      : undefined;

  return new Promise<number>((resolveExit) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      ctWatch?.stop();
      if (policyOff) clearInterval(policyOff);
      log.info({ signal }, 'stopping; the dataplane stays in place');
      const force = setTimeout(() => resolveExit(0), 5000);
      force.unref();
      void Promise.allSettled([daemon.stop(), cni.stop(), policy?.stop()]).finally(() => {
        for (const server of servers) server.closeAllConnections();
        void Promise.all(servers.map((server) => new Promise<void>((r) => server.close(() => r())))).then(() => resolveExit(0));
      });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}

main(process.argv).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`bvcnid: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(1);
  },
);
