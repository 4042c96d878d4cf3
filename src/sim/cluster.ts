// A simulated cluster on one machine: an underlay namespace (a bridge joining
// the nodes on 192.0.2.0/24 and routing to an "internet" namespace on
// 198.51.100.0/24), one namespace per node, pods as further namespaces.
// Everything is named `<prefix>-...` so cleanupLeftovers(prefix) can find
// what a crashed run left; nothing is ever created in the root namespace.
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Defaults } from '../common/defaults.js';
import { run, runSync, startProcess, type RunOptions, type RunResult } from '../common/exec.js';
import { createNetns, deleteNetnsSync, listNetns, netnsPath } from './netns.js';
import { loadDataplane, type DataplaneApi, type SimNodeDataplaneConfig } from './dataplane.js';
import { setupFlannel } from './flannel.js';
import {
  CLUSTER_CIDR,
  directPodIp,
  INTERNET_GATEWAY,
  INTERNET_IP,
  INTERNET_PREFIX,
  nodeIp,
  podCidr,
  podGateway,
  UNDERLAY_GATEWAY,
  UNDERLAY_PREFIX,
  VNI,
  VXLAN_OVERHEAD,
  VXLAN_PORT,
} from './topology.js';

export type DataplaneKind = 'bvcni' | 'flannel' | 'none';

export interface ClusterOptions {
  /** Unique per run, e.g. uniquePrefix('bvs'); ≤ 12 lowercase letters/digits. */
  prefix: string;
  nodes: number;
  dataplane: DataplaneKind;
  /** Pods wired by the simulator itself ('direct') on every node at creation. */
  podsPerNode?: number;
  /** Uplink MTU of every node (default 1500); pods get MTU − 50. */
  mtu?: number;
  /** flannel only: add the nft masquerade flannel would (default true). */
  masquerade?: boolean;
  /** bvcni only: fill the tunnel maps as the daemon would (default true). */
  programTunnels?: boolean;
  /**
   * The underlay drops (and counts) packets with a pod address, as a cloud VPC
   * does, so anything that skips the overlay fails visibly (default true).
   */
  vpcFilter?: boolean;
}

export interface SimNetns {
  name: string;
  path: string;
}

export interface SimNode extends SimNetns {
  index: number;
  ip: string;
  podCidr: string;
  /** Bridge address, the pods' gateway. */
  gateway: string;
  uplink: string;
  bridge: string;
  vxlanDev: string;
  /** What pods get on their interface: the uplink's under bvcni (its default), the overlay's under flannel. */
  podMtu: number;
  /** What crosses the tunnel: pods' routes to the cluster CIDR carry it when it is below podMtu. */
  overlayMtu: number;
  pinDir: string;
  /** Per-node directories under the cluster's temp dir. */
  confDir: string;
  binDir: string;
  stateDir: string;
  pods: SimPod[];
  /** The config ensureNodeDataplane was (or would be) called with. */
  dataplaneConfig: SimNodeDataplaneConfig;
}

export interface SimPod extends SimNetns {
  podName: string;
  node: SimNode;
  ip: string;
  mac: string;
  ifname: string;
  hostIfname: string;
  via: 'direct' | 'plugin';
}

export interface AddPodOptions {
  via?: 'direct' | 'plugin';
  /** plugin only: the CNI binary (default: node.binDir/bvcni if installed, else dist/bin/bvcni). */
  plugin?: string;
  /**
   * plugin only: what a runtime passes as runtimeConfig.portMappings (hostPorts)
   * when the conflist declares the portMappings capability.
   */
  portMappings?: { hostPort: number; containerPort: number; protocol?: string; hostIP?: string }[];
  /** plugin only: the config's podDevice (src/cni/config.ts), over what the node's conflist says. */
  podDevice?: 'veth' | 'netkit';
  /** plugin only: CNI_ARGS, as a kubelet's runtime passes them (`K8S_POD_NAMESPACE=…;K8S_POD_NAME=…`). */
  args?: string;
}

const NAME_RE = /^[a-z][a-z0-9]{1,11}$/;

export const VPC_TABLE = 'sim_vpc';
// Bridged (node to node) and routed (to the internet) traffic both pass here.
const VPC_RULES = ['bridge', 'ip']
  .map((family) =>
    [
      `table ${family} ${VPC_TABLE} {`,
      '  chain forward {',
      '    type filter hook forward priority 0; policy accept;',
      `    ip saddr ${CLUSTER_CIDR} counter drop`,
      `    ip daddr ${CLUSTER_CIDR} counter drop`,
      '  }',
      '}',
    ].join('\n'),
  )
  .join('\n');
const POD_RE = /^[a-z][a-z0-9]{0,9}$/;
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export class Cluster {
  readonly underlay: SimNetns;
  readonly internet: SimNetns & { ip: string };
  readonly nodes: SimNode[] = [];
  private readonly children = new Set<ChildProcess>();
  private readonly extraNetns = new Set<string>();
  private readonly podCounters = new Map<SimNode, number>();
  private destroyed = false;

  private constructor(
    readonly prefix: string,
    readonly dataplane: DataplaneKind,
    readonly dir: string,
    readonly mtu: number,
  ) {
    this.underlay = { name: `${prefix}-u`, path: netnsPath(`${prefix}-u`) };
    this.internet = { name: `${prefix}-inet`, path: netnsPath(`${prefix}-inet`), ip: INTERNET_IP };
    liveClusters.add(this);
    if (liveClusters.size === 1) process.on('exit', destroyLiveClusters);
  }

  static async create(opts: ClusterOptions): Promise<Cluster> {
    if (!NAME_RE.test(opts.prefix)) throw new Error(`cluster prefix must match ${NAME_RE}: ${JSON.stringify(opts.prefix)}`);
    if (!Number.isInteger(opts.nodes) || opts.nodes < 1 || opts.nodes > 50) throw new RangeError(`nodes must be 1..50: ${opts.nodes}`);
    if (!['bvcni', 'flannel', 'none'].includes(opts.dataplane)) throw new Error(`unknown dataplane ${String(opts.dataplane)}`);
    const mtu = opts.mtu ?? 1500;
    if (!Number.isInteger(mtu) || mtu < 1280 || mtu > 9000) throw new RangeError(`mtu must be 1280..9000: ${mtu}`);
    const dir = mkdtempSync(join(tmpdir(), `${opts.prefix}-`));
    const c = new Cluster(opts.prefix, opts.dataplane, dir, mtu);
    try {
      await c.buildUnderlay(opts.vpcFilter ?? true);
      // allSettled: tearing down while a sibling is still creating devices would race with it.
      const built = await Promise.allSettled(Array.from({ length: opts.nodes }, (_, i) => c.buildNode(i)));
      const failed = built.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
      if (opts.dataplane === 'flannel') await setupFlannel(c.nodes, { masquerade: opts.masquerade ?? true });
      if (opts.dataplane === 'bvcni') {
        const dp = await loadDataplane();
        for (const n of c.nodes) {
          const nd = await dp.ensureNodeDataplane(n.dataplaneConfig);
          n.podMtu = nd.mtu;
          n.overlayMtu = nd.overlayMtu;
          nd.close();
        }
        if (opts.programTunnels ?? true) await programTunnels(c);
      }
      for (const n of c.nodes)
        for (let k = 0; k < (opts.podsPerNode ?? 0); k++) await c.addPod(n, `p${k}`);
      return c;
    } catch (e) {
      c.destroySync();
      throw e;
    }
  }

  private async sh(ns: SimNetns, ...argv: string[]): Promise<RunResult> {
    return run(argv, { netns: ns.path });
  }

  private async buildUnderlay(vpcFilter: boolean): Promise<void> {
    const u = this.underlay;
    const inet = this.internet;
    await createNetns(u.name);
    await createNetns(inet.name);
    if (vpcFilter) await run(['nft', '-f', '-'], { netns: u.path, input: VPC_RULES });
    await this.sh(u, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    await this.sh(u, 'ip', 'link', 'add', 'br0', 'type', 'bridge');
    await this.sh(u, 'ip', 'addr', 'add', `${UNDERLAY_GATEWAY}/${UNDERLAY_PREFIX}`, 'dev', 'br0');
    await this.sh(u, 'ip', 'link', 'set', 'br0', 'up');
    // Created from inside the internet namespace, so no device ever appears in the root one.
    await this.sh(inet, 'ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'inet', 'netns', u.name);
    await this.sh(inet, 'ip', 'addr', 'add', `${INTERNET_IP}/${INTERNET_PREFIX}`, 'dev', 'eth0');
    await this.sh(inet, 'ip', 'link', 'set', 'eth0', 'up');
    await this.sh(inet, 'ip', 'route', 'add', 'default', 'via', INTERNET_GATEWAY);
    await this.sh(u, 'ip', 'addr', 'add', `${INTERNET_GATEWAY}/${INTERNET_PREFIX}`, 'dev', 'inet');
    await this.sh(u, 'ip', 'link', 'set', 'inet', 'up');
  }

  private async buildNode(i: number): Promise<void> {
    const name = `${this.prefix}-n${i}`;
    const path = await createNetns(name);
    const dir = join(this.dir, `n${i}`);
    const node: SimNode = {
      name,
      path,
      index: i,
      ip: nodeIp(i),
      podCidr: podCidr(i),
      gateway: podGateway(i),
      uplink: 'eth0',
      bridge: Defaults.bridge,
      vxlanDev: Defaults.vxlanDev,
      podMtu: this.mtu - VXLAN_OVERHEAD,
      overlayMtu: this.mtu - VXLAN_OVERHEAD,
      pinDir: `/sys/fs/bpf/${name}`,
      confDir: join(dir, 'net.d'),
      binDir: join(dir, 'bin'),
      stateDir: join(dir, 'state'),
      pods: [],
      dataplaneConfig: {
        pinDir: `/sys/fs/bpf/${name}`,
        netns: path,
        bridge: Defaults.bridge,
        vxlanDev: Defaults.vxlanDev,
        vxlanPort: VXLAN_PORT,
        vni: VNI,
        uplink: 'eth0',
        nodeIp: nodeIp(i),
        podCidr: podCidr(i),
        clusterCidr: CLUSTER_CIDR,
      },
    };
    this.nodes[i] = node;
    for (const d of [node.confDir, node.binDir, node.stateDir]) mkdirSync(d, { recursive: true });
    const u = this.underlay;
    await this.sh(node, 'ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `n${i}`, 'netns', u.name);
    await this.sh(node, 'ip', 'link', 'set', 'eth0', 'mtu', String(this.mtu), 'up');
    await this.sh(node, 'ip', 'addr', 'add', `${node.ip}/${UNDERLAY_PREFIX}`, 'dev', 'eth0');
    await this.sh(node, 'ip', 'route', 'add', 'default', 'via', UNDERLAY_GATEWAY);
    await this.sh(node, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    await this.sh(u, 'ip', 'link', 'set', `n${i}`, 'mtu', String(this.mtu), 'master', 'br0', 'up');
  }

  /** Wires a pod into a node: directly (veth into the bridge, endpoint registered) or through the CNI plugin. */
  async addPod(node: SimNode, podName: string, opts: AddPodOptions = {}): Promise<SimPod> {
    if (!POD_RE.test(podName)) throw new Error(`pod name must match ${POD_RE}: ${JSON.stringify(podName)}`);
    if (node.pods.some((p) => p.podName === podName)) throw new Error(`pod ${podName} already exists on ${node.name}`);
    const name = `${node.name}-${podName}`;
    const path = await createNetns(name);
    try {
      if (opts.portMappings && opts.via !== 'plugin') throw new Error('portMappings need via: plugin');
      const pod = opts.via === 'plugin' ? await this.addPodViaPlugin(node, podName, name, path, opts.plugin, opts.portMappings, opts.podDevice, opts.args) : await this.addPodDirect(node, podName, name, path);
      node.pods.push(pod);
      return pod;
    } catch (e) {
      deleteNetnsSync(name);
      throw e;
    }
  }

  private async addPodDirect(node: SimNode, podName: string, name: string, path: string): Promise<SimPod> {
    const bridge = await run(['ip', 'link', 'show', 'dev', node.bridge], { netns: node.path, allowFail: true });
    if (bridge.code !== 0) {
      throw new Error(`${node.name} has no bridge ${node.bridge} yet: a 'direct' pod needs the node's dataplane (wait for the daemon, or use via: 'plugin')`);
    }
    // Never reused, so a removed pod's address and veth name stay free of stale state.
    const n = this.podCounters.get(node) ?? 0;
    this.podCounters.set(node, n + 1);
    const ip = directPodIp(node.index, n);
    const hostIfname = `vp${n}`;
    const pod: SimNetns = { name, path };
    await this.sh(node, 'ip', 'link', 'add', hostIfname, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name);
    try {
      return await this.wireDirectPod(node, podName, pod, ip, hostIfname);
    } catch (e) {
      await run(['ip', 'link', 'del', hostIfname], { netns: node.path, allowFail: true });
      throw e;
    }
  }

  private async wireDirectPod(node: SimNode, podName: string, pod: SimNetns, ip: string, hostIfname: string): Promise<SimPod> {
    const { name, path } = pod;
    await this.sh(node, 'ip', 'link', 'set', hostIfname, 'mtu', String(node.podMtu), 'master', node.bridge, 'up');
    await this.sh(pod, 'ip', 'link', 'set', 'eth0', 'mtu', String(node.podMtu), 'up');
    await this.sh(pod, 'ip', 'addr', 'add', `${ip}/24`, 'dev', 'eth0');
    await this.sh(pod, 'ip', 'route', 'add', 'default', 'via', node.gateway);
    // As the plugin routes its pods (src/cni/overlay-routes.ts).
    if (node.overlayMtu < node.podMtu) {
      const { clusterCidr, serviceCidr } = node.dataplaneConfig;
      for (const dst of [clusterCidr, ...(serviceCidr ? [serviceCidr] : [])])
        await this.sh(pod, 'ip', 'route', 'add', dst, 'via', node.gateway, 'mtu', String(node.overlayMtu));
    }
    const podLink = await linkInfo(path, 'eth0');
    const hostLink = await linkInfo(node.path, hostIfname);
    if (this.dataplane === 'bvcni') {
      const gw = await linkInfo(node.path, node.bridge);
      const dp = await loadDataplane();
      dp.registerEndpoint(node.pinDir, {
        ip,
        hostIfname,
        hostIfindex: hostLink.ifindex,
        podMac: podLink.address,
        gwMac: gw.address,
        netns: node.path,
      });
    }
    return { name, path, podName, node, ip, mac: podLink.address, ifname: 'eth0', hostIfname, via: 'direct' };
  }

  private cniConfig(node: SimNode): { conf: string; name: string } {
    // Prefer what a daemon installed: that is the config kubelet would use.
    const files = existsSync(node.confDir) ? readdirSync(node.confDir).filter((f) => /\.conflist$/.test(f)).sort() : [];
    if (files.length > 0) {
      const list = JSON.parse(readFileSync(join(node.confDir, files[0]!), 'utf8')) as {
        cniVersion: string;
        name: string;
        plugins: Record<string, unknown>[];
      };
      const first = list.plugins[0];
      if (!first) throw new Error(`${files[0]} has no plugins`);
      return { conf: JSON.stringify({ cniVersion: list.cniVersion, name: list.name, ...first }), name: list.name };
    }
    const conf = {
      cniVersion: '1.0.0',
      name: 'bvcni',
      type: 'bvcni',
      podcidr: node.podCidr,
      bridge: node.bridge,
      dataDir: node.stateDir,
      pinDir: node.pinDir,
      capabilities: { portMappings: true },
    };
    return { conf: JSON.stringify(conf), name: 'bvcni' };
  }

  private pluginEnv(node: SimNode, command: string, containerId: string, path: string, args?: string): NodeJS.ProcessEnv {
    return {
      ...(args ? { CNI_ARGS: args } : {}),
      PATH: process.env.PATH,
      CNI_COMMAND: command,
      CNI_CONTAINERID: containerId,
      CNI_NETNS: path,
      CNI_IFNAME: 'eth0',
      CNI_PATH: `${node.binDir}:${join(REPO_ROOT, 'dist/bin')}:/usr/lib/cni`,
    };
  }

  private pluginPath(node: SimNode, override?: string): string {
    if (override) return override;
    const installed = join(node.binDir, 'bvcni');
    if (existsSync(installed)) return installed;
    const built = join(REPO_ROOT, 'dist/bin/bvcni');
    if (!existsSync(built)) throw new Error(`no CNI plugin: neither ${installed} nor ${built} exists (run make build)`);
    return built;
  }

  private async addPodViaPlugin(
    node: SimNode,
    podName: string,
    name: string,
    path: string,
    plugin?: string,
    portMappings?: AddPodOptions['portMappings'],
    podDevice?: 'veth' | 'netkit',
    args?: string,
  ): Promise<SimPod> {
    const bin = this.pluginPath(node, plugin);
    let { conf } = this.cniConfig(node);
    if (podDevice) conf = JSON.stringify({ ...(JSON.parse(conf) as object), podDevice });
    if (portMappings) {
      // As libcni does: runtimeConfig carries only the capabilities the plugin's config declares.
      const c = JSON.parse(conf) as { capabilities?: { portMappings?: boolean } };
      if (!c.capabilities?.portMappings) throw new Error(`${node.name}'s CNI config declares no portMappings capability`);
      conf = JSON.stringify({ ...c, runtimeConfig: { portMappings } });
    }
    const r = await run([bin], { netns: node.path, input: conf, env: this.pluginEnv(node, 'ADD', name, path, args), allowFail: true });
    if (r.code !== 0) throw new Error(`CNI ADD for ${name} failed (${r.code}): ${(r.stdout || r.stderr).trim()}`);
    const result = JSON.parse(r.stdout) as {
      ips?: { address: string }[];
      ip4?: { ip: string };
      interfaces?: { name: string; mac?: string; sandbox?: string }[];
    };
    const cidr = result.ips?.[0]?.address ?? result.ip4?.ip;
    if (!cidr) throw new Error(`CNI ADD for ${name} returned no IP: ${r.stdout}`);
    const podLink = await linkInfo(path, 'eth0');
    const hostIfname = result.interfaces?.find((i) => !i.sandbox && i.name !== node.bridge)?.name ?? '';
    return { name, path, podName, node, ip: cidr.split('/')[0]!, mac: podLink.address, ifname: 'eth0', hostIfname, via: 'plugin' };
  }

  async removePod(pod: SimPod): Promise<void> {
    const node = pod.node;
    try {
      if (pod.via === 'plugin') {
        const { conf } = this.cniConfig(node);
        const r = await run([this.pluginPath(node)], { netns: node.path, input: conf, env: this.pluginEnv(node, 'DEL', pod.name, pod.path), allowFail: true });
        if (r.code !== 0) throw new Error(`CNI DEL for ${pod.name} failed (${r.code}): ${(r.stdout || r.stderr).trim()}`);
      } else {
        if (this.dataplane === 'bvcni') (await loadDataplane()).unregisterEndpoint(node.pinDir, pod.ip, { netns: node.path });
        // The kernel frees a deleted namespace (and the veth in it) asynchronously, sometimes
        // much later under load: delete the pair now so the pod is unreachable on return.
        await run(['ip', 'link', 'del', pod.hostIfname], { netns: node.path, allowFail: true });
      }
    } finally {
      deleteNetnsSync(pod.name);
      node.pods = node.pods.filter((p) => p !== pod);
    }
  }

  /** A command in a namespace of this cluster (nsenter, so /sys/fs/bpf stays visible). */
  exec(ns: SimNetns, argv: readonly string[], opts: Omit<RunOptions, 'netns'> = {}): Promise<RunResult> {
    return run(argv, { ...opts, netns: ns.path });
  }

  /** A long-running process in a namespace; killed by destroy() if still running. */
  spawn(ns: SimNetns, argv: readonly string[]): ChildProcess {
    const child = startProcess(argv, { netns: ns.path });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** Adopts a process started elsewhere so destroy() kills it. */
  track(child: ChildProcess): ChildProcess {
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** An extra namespace named under this cluster's prefix, removed by destroy(). */
  async addNetns(suffix: string): Promise<SimNetns> {
    const name = `${this.prefix}-${suffix}`;
    const path = await createNetns(name);
    this.extraNetns.add(name);
    return { name, path };
  }

  get pods(): SimPod[] {
    return this.nodes.flatMap((n) => n.pods);
  }

  /**
   * Leaves the cluster in place when this process exits (e.g. `make demo`
   * with KEEP=1); cleanupLeftovers(prefix) or destroy() still remove it.
   */
  keepAfterExit(): void {
    liveClusters.delete(this);
    if (liveClusters.size === 0) process.removeListener('exit', destroyLiveClusters);
  }

  async destroy(): Promise<void> {
    this.destroySync();
  }

  /** Synchronous so it also runs from process exit hooks; safe to call twice. */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    liveClusters.delete(this);
    if (liveClusters.size === 0) process.removeListener('exit', destroyLiveClusters);
    for (const c of this.children) c.kill('SIGKILL');
    this.children.clear();
    // Pods first: their veths' host ends live in the node namespaces.
    for (const n of this.nodes) if (n) for (const p of n.pods) deleteNetnsSync(p.name);
    for (const name of this.extraNetns) deleteNetnsSync(name);
    for (const name of listNetns(`${this.prefix}-`)) deleteNetnsSync(name);
    removePins(this.prefix);
    rmSync(this.dir, { recursive: true, force: true });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.destroy();
  }
}

// One exit listener for all clusters of the process: a test that throws
// before its own teardown still leaves nothing behind.
const liveClusters = new Set<Cluster>();
function destroyLiveClusters(): void {
  for (const c of [...liveClusters]) c.destroySync();
}

export function createCluster(opts: ClusterOptions): Promise<Cluster> {
  return Cluster.create(opts);
}

/**
 * What the daemon's reconcile would write into every node's tunnel map: each
 * other node's podCIDR, and its own IP as a /32 (node ↔ pod traffic rides the
 * overlay too), both pointing at that node's underlay address.
 */
export async function programTunnels(c: Cluster, opts: { only?: SimNode[] } = {}): Promise<void> {
  if (c.dataplane !== 'bvcni') throw new Error(`programTunnels needs a bvcni cluster, not ${c.dataplane}`);
  const dp = await loadDataplane();
  for (const local of opts.only ?? c.nodes) {
    const maps = dp.openDataplaneMaps(local.pinDir);
    try {
      for (const remote of c.nodes) if (remote !== local) writeTunnel(maps.tunnel, remote);
    } finally {
      maps.close();
    }
  }
}

type TunnelMap = Awaited<ReturnType<DataplaneApi['openDataplaneMaps']>>['tunnel'];

function writeTunnel(tunnel: TunnelMap, remote: SimNode): void {
  const [addr, len] = remote.podCidr.split('/');
  tunnel.update({ prefixlen: Number(len), addr: addr! }, { node_ip: remote.ip, flags: 0 });
  tunnel.update({ prefixlen: 32, addr: remote.ip }, { node_ip: remote.ip, flags: 1 /* TunnelFlags.nodeIp */ });
}

/** Removes `remote`'s entries from `local`'s tunnel map (as the daemon does on a Node delete). */
export async function removeTunnel(local: SimNode, remote: SimNode): Promise<void> {
  const maps = (await loadDataplane()).openDataplaneMaps(local.pinDir);
  try {
    const [addr, len] = remote.podCidr.split('/');
    maps.tunnel.delete({ prefixlen: Number(len), addr: addr! });
    maps.tunnel.delete({ prefixlen: 32, addr: remote.ip });
  } finally {
    maps.close();
  }
}

export async function restoreTunnel(local: SimNode, remote: SimNode): Promise<void> {
  const maps = (await loadDataplane()).openDataplaneMaps(local.pinDir);
  try {
    writeTunnel(maps.tunnel, remote);
  } finally {
    maps.close();
  }
}

/** Packets the underlay dropped for carrying a pod address bare (0 unless something skipped the overlay). */
export async function vpcDrops(c: Cluster): Promise<number> {
  let total = 0;
  for (const family of ['bridge', 'ip']) {
    const r = await run(['nft', '-j', 'list', 'table', family, VPC_TABLE], { netns: c.underlay.path, allowFail: true });
    if (r.code !== 0) throw new Error(`no VPC filter in ${c.underlay.name} (created with vpcFilter: false?)`);
    const items = (JSON.parse(r.stdout) as { nftables: { rule?: { expr: { counter?: { packets: number } }[] } }[] }).nftables;
    for (const it of items) for (const e of it.rule?.expr ?? []) total += e.counter?.packets ?? 0;
  }
  return total;
}

/** Turns checksum offloads off on both ends of every pod veth and on the underlay, so bad checksums are seen. */
export async function disableChecksumOffload(c: Cluster): Promise<void> {
  const off = (ns: SimNetns, dev: string): Promise<RunResult> =>
    run(['ethtool', '-K', dev, 'tx', 'off', 'rx', 'off'], { netns: ns.path });
  const jobs: Promise<RunResult>[] = [off(c.internet, 'eth0'), off(c.underlay, 'inet')];
  for (const n of c.nodes) {
    jobs.push(off(n, n.uplink), off(c.underlay, `n${n.index}`));
    for (const p of n.pods) {
      jobs.push(off(p, p.ifname));
      if (p.hostIfname) jobs.push(off(n, p.hostIfname));
    }
  }
  await Promise.all(jobs);
}

export async function linkInfo(netns: string, dev: string): Promise<{ ifindex: number; address: string; mtu: number }> {
  const r = await run(['ip', '-j', 'link', 'show', 'dev', dev], { netns });
  const l = (JSON.parse(r.stdout) as { ifindex: number; address: string; mtu: number }[])[0];
  if (!l) throw new Error(`no link ${dev} in ${netns}`);
  return { ifindex: l.ifindex, address: l.address, mtu: l.mtu };
}

function removePins(prefix: string): string[] {
  const removed: string[] = [];
  let names: string[] = [];
  try {
    names = readdirSync('/sys/fs/bpf');
  } catch {
    return removed;
  }
  for (const n of names.filter((x) => x.startsWith(prefix))) {
    const p = join('/sys/fs/bpf', n);
    try {
      rmSync(p, { recursive: true, force: true });
      removed.push(p);
    } catch {
      runSync(['rm', '-rf', p], { allowFail: true });
      if (!existsSync(p)) removed.push(p);
    }
  }
  return removed;
}

/**
 * Removes what a crashed run with this prefix left: processes in its
 * namespaces, the namespaces (and so their devices), pins under
 * /sys/fs/bpf/<prefix>*, and temp dirs. Pass a run's own prefix; a base
 * prefix ('bvs') also removes concurrent runs of the same owner.
 */
export async function cleanupLeftovers(prefix: string): Promise<{ netns: string[]; pins: string[]; dirs: string[] }> {
  if (!/^[a-z][a-z0-9-]{2,}$/.test(prefix)) throw new Error(`refusing to clean up with a short or odd prefix: ${JSON.stringify(prefix)}`);
  const netns = listNetns(prefix);
  // Pod namespaces hold veth ends of node namespaces: remove the longest names first.
  for (const n of [...netns].sort((a, b) => b.length - a.length)) deleteNetnsSync(n);
  const pins = removePins(prefix);
  const dirs: string[] = [];
  for (const d of readdirSync(tmpdir()).filter((x) => x.startsWith(`${prefix}`) && /-[A-Za-z0-9]{6}$/.test(x))) {
    rmSync(join(tmpdir(), d), { recursive: true, force: true });
    dirs.push(join(tmpdir(), d));
  }
  return { netns, pins, dirs };
}
