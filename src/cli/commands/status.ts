// bvcnictl status: what this node runs — its identity, devices, attached
// programs, map sizes and readiness.
import { configReady, daemonHealth, hooksOf, isOurFilter, listLinks, readConfig, summarizeMaps, type Link } from '../inspect.js';
import { Defaults } from '../../common/defaults.js';
import { formatPairs, formatTable } from '../../common/table.js';
import { ok, toJson, type CommandSpec } from '../types.js';
import { choosePodDevice, formatFeatures, probeKernelFeatures, programSet } from '../../dataplane/features.js';
import { endpointDevice, listEndpoints } from '../../dataplane/endpoint.js';
import { CONFLIST_NAME } from '../../kube/install.js';
import { queryNetkit } from '../../../loader/index.js';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The pod device the conflist tells the plugin to make ('veth' when it names none), or undefined without a conflist. */
function conflistPodDevice(confDir: string): string | undefined {
  const path = join(confDir, CONFLIST_NAME);
  if (!existsSync(path)) return undefined;
  try {
    const c = JSON.parse(readFileSync(path, 'utf8')) as { plugins?: { podDevice?: unknown }[] };
    const d = c.plugins?.[0]?.podDevice;
    return typeof d === 'string' ? d : 'veth';
  } catch {
    return undefined;
  }
}
import { pinnedAbi } from '../../dataplane/migrate.js';
import { ABI_VERSION } from '../../dataplane/abi.js';

export const status: CommandSpec = {
  name: 'status',
  description: 'node, podCIDR, devices, attached programs, map sizes, readiness',
  options: [
    { flags: '--health-addr <host:port>', description: "bvcnid's health endpoint ('none' to skip)", defaultValue: Defaults.healthAddr },
    { flags: '--cni-conf-dir <dir>', description: 'CNI config directory (where bvcnid says which pod device the plugin makes)', defaultValue: Defaults.cniConfDir },
  ],
  async run(opts) {
    const config = readConfig(opts.pinDir);
    const links = listLinks(opts.netns);
    const byIndex = new Map(links.map((l) => [l.ifindex, l]));
    const dev = (role: string, ifindex: number | undefined): { role: string; link?: Link; ifindex?: number } => ({
      role,
      ifindex,
      link: ifindex ? byIndex.get(ifindex) : undefined,
    });
    const devices = config
      ? [dev('uplink', config.uplink_ifindex), dev('bridge', config.bridge_ifindex), dev('vxlan', config.vxlan_ifindex)]
      : [];
    // Programs: every tc BPF filter in the node's namespace that carries our handle
    // (pod veths included), not only on the three devices above.
    const programs: { ifname: string; direction: string; progId: number; name: string }[] = links.flatMap((l) =>
      hooksOf(l.ifname, opts.netns).flatMap((h) =>
        h.filters.filter(isOurFilter).map((f) => ({ ifname: l.ifname, direction: h.direction, progId: f.progId, name: f.name })),
      ),
    );
    // Netkit pods' programs are no tc filters: they sit on the pair (loader/netkit.ts).
    let endpoints: { ifindex: number; flags: number }[] = [];
    try {
      endpoints = listEndpoints(opts.pinDir).map((e) => ({ ifindex: e.ifindex, flags: Number(e.flags) }));
    } catch {
      /* no map: the maps table says so */
    }
    const netkitPods = endpoints.filter((e) => endpointDevice(e.flags) === 'netkit');
    for (const e of netkitPods)
      for (const side of ['peer', 'primary'] as const) {
        let ids: number[] = [];
        try {
          ids = queryNetkit({ ifindex: e.ifindex, netns: opts.netns, side });
        } catch {
          /* the pair is gone: its entry goes at DEL or GC */
        }
        for (const id of ids) programs.push({ ifname: byIndex.get(e.ifindex)?.ifname ?? `#${e.ifindex}`, direction: `netkit ${side}`, progId: id, name: '' });
      }
    const maps = summarizeMaps(opts.pinDir);
    const daemon = daemonHealth(String(opts.healthAddr), opts.netns);
    const dataplaneReady = configReady(config) && programs.length > 0 && maps.every((m) => m.pinned && !m.error);
    const ready = dataplaneReady && (daemon.state === 'ready' || daemon.state === 'unchecked');
    // The same probes bvcnid runs at start-up, on the same kernel.
    const kernel = await probeKernelFeatures();
    // The build bvcnid loads on this kernel as it is now (its start-up log says which it loaded).
    const programSetName = programSet(kernel, '').name;
    const autoPick = choosePodDevice(kernel, 'auto');
    const podDevice = {
      conflist: conflistPodDevice(String(opts.cniConfDir)) ?? null,
      auto: 'device' in autoPick ? autoPick.device : 'veth',
      pods: { veth: endpoints.length - netkitPods.length, netkit: netkitPods.length },
    };
    const pinned = pinnedAbi(opts.pinDir);

    const report = {
      node: config
        ? {
            nodeIp: config.node_ip,
            podCidr: `${config.pod_cidr}/${config.pod_prefix}`,
            clusterCidr: `${config.cluster_cidr}/${config.cluster_prefix}`,
            vni: config.vni,
            /** Pods' (the bridge's); overlayMtu is what their routes through the tunnel carry. */
            mtu: devices.find((d) => d.role === 'bridge')?.link?.mtu ?? config.mtu,
            overlayMtu: config.mtu,
            natPorts: `${config.nat_port_min}-${config.nat_port_max}`,
            configReady: configReady(config),
          }
        : null,
      devices: devices.map((d) => ({
        role: d.role,
        ifindex: d.ifindex,
        ifname: d.link?.ifname ?? null,
        mtu: d.link?.mtu ?? null,
        state: d.link?.operstate ?? 'missing',
      })),
      programs,
      maps,
      dataplaneReady,
      daemon,
      ready,
      pinDir: opts.pinDir,
      netns: opts.netns ?? null,
      kernel,
      programSet: programSetName,
      podDevice,
      abi: { pinned: pinned.version ?? null, migrating: pinned.migrating, thisBuild: ABI_VERSION },
    };
    if (opts.json) return ok(toJson(report));

    let out = formatPairs([
      ['node IP', report.node?.nodeIp ?? '(config not written: is bvcnid running?)'],
      ['pod CIDR', report.node?.podCidr ?? '-'],
      ['cluster CIDR', report.node?.clusterCidr ?? '-'],
      ['pod MTU', report.node ? String(report.node.mtu) : '-'],
      ['overlay MTU', report.node ? String(report.node.overlayMtu) : '-'],
      ['VNI', report.node ? String(report.node.vni) : '-'],
      ['NAT ports', report.node?.natPorts ?? '-'],
      ['pin dir', opts.pinDir],
      ['dataplane', dataplaneReady ? 'ready' : 'NOT READY'],
      ['bvcnid', `${daemon.state} (${daemon.detail})`],
      ['ready', ready ? 'yes' : 'NO (run bvcnictl doctor)'],
      [
        'pod device',
        `${podDevice.conflist ?? '(no conflist)'}; auto picks ${podDevice.auto} on this kernel; pods: ${podDevice.pods.netkit} netkit, ${podDevice.pods.veth} veth`,
      ],
      [
        'dataplane ABI',
        `pinned ${pinned.version ?? 'unknown'}${pinned.migrating ? ' (a migration is under way: bvcnid finishes or rolls it back at its start)' : ''}, this bvcnictl ${ABI_VERSION}` +
          (pinned.version !== undefined && pinned.version !== ABI_VERSION && !pinned.migrating ? ' (bvcnid of this release migrates the maps at its start)' : ''),
      ],
      ['program set', programSetName === 'conntrack' ? 'conntrack' : 'no-conntrack (Service replies are not handed to conntrack)'],
    ]);
    out += '\nDevices\n';
    out += formatTable(
      ['ROLE', 'IFINDEX', 'NAME', 'MTU', 'STATE'],
      report.devices.map((d) => [d.role, String(d.ifindex ?? '-'), d.ifname ?? '-', String(d.mtu ?? '-'), d.state]),
    );
    out += '\nPrograms\n';
    out += formatTable(
      ['DEVICE', 'HOOK', 'PROG ID', 'NAME'],
      programs.map((p) => [p.ifname, p.direction, String(p.progId), p.name]),
    );
    out += '\nMaps\n';
    out += formatTable(
      ['NAME', 'ID', 'ENTRIES', 'MAX', 'STATE'],
      maps.map((m) => [
        m.name,
        String(m.id ?? '-'),
        m.entries === undefined ? (m.pinned && !m.error ? 'array' : '-') : String(m.entries),
        String(m.maxEntries ?? '-'),
        m.error ? `error: ${m.error}` : m.pinned ? 'pinned' : 'missing',
      ]),
    );
    out += `\nKernel ${kernel.kernel}\n`;
    out += formatTable(['FEATURE', 'SINCE', 'PRESENT', 'DETAIL'], formatFeatures(kernel));
    return ok(out);
  },
};
