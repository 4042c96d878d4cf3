// bvcnictl doctor: every condition the node needs, each failed one with the
// command or action that fixes it. Non-zero exit when anything fails.
import { accessSync, constants, existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { runSync } from '../../common/exec.js';
import { connect } from 'node:net';
import { CONFLIST_NAME, PLUGIN_DIR_NAME, PLUGIN_NAME } from '../../kube/install.js';
import { daemonSocketPath } from '../../cni/index.js';
import { Defaults, VXLAN_OVERHEAD } from '../../common/defaults.js';
import { loadKubeConfig, nodeApi } from '../../kube/client.js';
import { openEndpointsMap } from '../../dataplane/maps.js';
import { endpointDevice } from '../../dataplane/endpoint.js';
import { BpfProgram, queryNetkit } from '../../../loader/index.js';
import { Programs, REQUIRED_SLOTS, programPin } from '../../dataplane/layout.js';
import type { ConfigValue } from '../../dataplane/abi.js';
import {
  ProgramNames,
  configReady,
  daemonHealth,
  hooksOf,
  isBpffs,
  isOurFilter,
  listLinks,
  readConfig,
  readSysctl,
  summarizeMaps,
  type Link,
} from '../inspect.js';
import { formatTable } from '../../common/table.js';
import { toJson, type CommandSpec, type OptionValues } from '../types.js';

export type CheckResult = 'ok' | 'fail' | 'skip';

export interface Check {
  name: string;
  result: CheckResult;
  detail: string;
  fix?: string;
}

const RESTART = 'restart bvcnid (kubectl -n kube-system delete pod -l app.kubernetes.io/name=bvcni --field-selector spec.nodeName=$NODE): it re-creates what is missing and adopts what is pinned';

interface Probe {
  pinDir: string;
  netns?: string;
  confDir: string;
  binDir: string;
  kubeconfig?: string;
  healthAddr: string;
  /** API reachability is async; everything else is a plain read. */
  apiCheck?: (kubeconfig: string | undefined) => Promise<Check>;
}

export async function apiReachable(kubeconfig: string | undefined): Promise<Check> {
  const name = 'API server reachable';
  if (!kubeconfig && !process.env.KUBERNETES_SERVICE_HOST)
    return { name, result: 'skip', detail: 'no --kubeconfig and not running in a pod' };
  try {
    const n = (await nodeApi(loadKubeConfig(kubeconfig)).list()).items.length;
    return { name, result: 'ok', detail: `listed ${n} Node${n === 1 ? '' : 's'}` };
  } catch (e) {
    return {
      name,
      result: 'fail',
      detail: (e as Error).message.split('\n')[0]!.slice(0, 200),
      fix: 'check the kubeconfig / service account token, that the API server is up, and that RBAC grants nodes list (deploy/bvcni.yaml)',
    };
  }
}

export async function runChecks(p: Probe): Promise<Check[]> {
  const checks: Check[] = [];
  const add = (c: Check): Check => (checks.push(c), c);

  const bpfRoot = dirname(p.pinDir);
  const fs = add(
    isBpffs(bpfRoot) || isBpffs(p.pinDir)
      ? { name: 'bpffs mounted', result: 'ok', detail: `${bpfRoot} is a bpf filesystem` }
      : { name: 'bpffs mounted', result: 'fail', detail: `${bpfRoot} is not a bpf filesystem`, fix: `mount -t bpf bpf ${bpfRoot}` },
  );

  const maps = fs.result === 'ok' && existsSync(p.pinDir) ? summarizeMaps(p.pinDir) : [];
  const missing = maps.filter((m) => !m.pinned).map((m) => m.name);
  const broken = maps.filter((m) => m.error);
  add(
    maps.length && !missing.length && !broken.length
      ? { name: 'maps pinned', result: 'ok', detail: `${maps.length} maps in ${p.pinDir}` }
      : {
          name: 'maps pinned',
          result: 'fail',
          detail: broken.length
            ? broken.map((m) => `${m.name}: ${m.error}`).join('; ')
            : `missing in ${p.pinDir}: ${(missing.length ? missing : ['all']).join(', ')}`,
          fix: broken.length
            ? 'the maps were pinned by an incompatible bvcni version: bvcnictl uninstall --yes, then restart bvcnid'
            : RESTART,
        },
  );

  let config: ConfigValue | undefined;
  try {
    config = maps.length ? readConfig(p.pinDir) : undefined;
  } catch {
    config = undefined;
  }
  add(
    configReady(config)
      ? { name: 'node config written', result: 'ok', detail: `node ${config!.node_ip}, podCIDR ${config!.pod_cidr}/${config!.pod_prefix}` }
      : {
          name: 'node config written',
          result: 'fail',
          detail: config ? 'config present but not marked ready' : 'no config in the config map',
          fix: 'bvcnid has not finished setting up this node: check its log (kubectl -n kube-system logs -l app.kubernetes.io/name=bvcni); it waits for the Node to get a podCIDR',
        },
  );

  const unpinnedProgs = REQUIRED_SLOTS.filter((s) => !existsSync(programPin(p.pinDir, s)));
  add(
    unpinnedProgs.length === 0
      ? { name: 'programs pinned', result: 'ok', detail: Object.values(Programs).map((x) => x.program).join(', ') }
      : { name: 'programs pinned', result: 'fail', detail: `missing: ${unpinnedProgs.map((s) => Programs[s].pin).join(', ')}`, fix: RESTART },
  );

  let links: Link[] = [];
  try {
    links = listLinks(p.netns);
  } catch (e) {
    add({ name: 'devices', result: 'fail', detail: (e as Error).message, fix: 'check --netns' });
  }
  const byIndex = new Map(links.map((l) => [l.ifindex, l]));
  const uplink = config ? byIndex.get(config.uplink_ifindex) : undefined;
  const bridge = config ? byIndex.get(config.bridge_ifindex) : undefined;
  const vxlan = config ? byIndex.get(config.vxlan_ifindex) : undefined;
  if (config) {
    const gone = [
      ['uplink', uplink, config.uplink_ifindex],
      ['bridge', bridge, config.bridge_ifindex],
      ['vxlan', vxlan, config.vxlan_ifindex],
    ].filter(([, l]) => !l);
    const down = [bridge, vxlan, uplink].filter((l): l is Link => !!l && l.operstate === 'DOWN');
    add(
      gone.length || down.length
        ? {
            name: 'devices present and up',
            result: 'fail',
            detail: [
              ...gone.map(([role, , idx]) => `${String(role)} (ifindex ${String(idx)}) not found`),
              ...down.map((l) => `${l.ifname} is down`),
            ].join('; '),
            fix: down.length && !gone.length ? `ip link set ${down[0]!.ifname} up` : RESTART,
          }
        : {
            name: 'devices present and up',
            result: 'ok',
            detail: `uplink ${uplink!.ifname}, bridge ${bridge!.ifname}, vxlan ${vxlan!.ifname}`,
          },
    );
  }

  // Hooks: which program must sit where.
  let endpointIfindexes: number[] = [];
  // Netkit pods' program sits on the pair, not in a tc hook (loader/netkit.ts).
  let netkitIfindexes: number[] = [];
  try {
    if (maps.some((m) => m.name === 'bvcni_endpoints' && m.pinned && !m.error)) {
      using eps = openEndpointsMap(p.pinDir);
      const all = [...eps.entries()].map(([, v]) => v);
      endpointIfindexes = all.filter((v) => endpointDevice(Number(v.flags)) === 'veth').map((v) => v.ifindex);
      netkitIfindexes = all.filter((v) => endpointDevice(Number(v.flags)) === 'netkit').map((v) => v.ifindex);
    }
  } catch {
    endpointIfindexes = [];
    netkitIfindexes = [];
  }
  if (config) {
    const want: { link: Link | undefined; what: string; direction: 'ingress' | 'egress'; prog: string }[] = [
      { link: uplink, what: 'uplink', direction: 'ingress', prog: ProgramNames.uplinkIngress },
      { link: vxlan, what: 'vxlan', direction: 'ingress', prog: ProgramNames.overlayIngress },
      { link: vxlan, what: 'vxlan', direction: 'egress', prog: ProgramNames.overlayEgress },
      ...endpointIfindexes.map((i) => ({
        link: byIndex.get(i),
        what: `pod veth ifindex ${i}`,
        direction: 'ingress' as const,
        prog: ProgramNames.pod,
      })),
      // What the host stack hands to the pod (bpf_to_pod): ABI 2's, absent once --prepare-downgrade ran.
      ...(existsSync(programPin(p.pinDir, 'toPod'))
        ? endpointIfindexes.map((i) => ({ link: byIndex.get(i), what: `pod veth ifindex ${i}`, direction: 'egress' as const, prog: ProgramNames.toPod }))
        : []),
    ];
    const problems: string[] = [];
    for (const w of want) {
      if (!w.link) {
        problems.push(`${w.what}: device missing`);
        continue;
      }
      const hook = hooksOf(w.link.ifname, p.netns).find((h) => h.direction === w.direction)!;
      const ours = hook.filters.filter(isOurFilter);
      if (!ours.some((f) => f.name === w.prog)) problems.push(`${w.link.ifname} ${w.direction}: ${w.prog} not attached`);
    }
    if (netkitIfindexes.length) {
      let podId: number | undefined;
      try {
        using prog = BpfProgram.openPinned(programPin(p.pinDir, 'pod'));
        podId = prog.id;
      } catch {
        problems.push(`${ProgramNames.pod} not pinned`);
      }
      // ABI 2's bpf_to_pod, on what the node sends the pod (absent once --prepare-downgrade ran).
      let toPodId: number | undefined;
      if (existsSync(programPin(p.pinDir, 'toPod'))) {
        using prog = BpfProgram.openPinned(programPin(p.pinDir, 'toPod'));
        toPodId = prog.id;
      }
      for (const i of netkitIfindexes) {
        const l = byIndex.get(i);
        if (!l) {
          problems.push(`pod netkit ifindex ${i}: device missing`);
          continue;
        }
        let ids: number[] = [];
        try {
          ids = queryNetkit({ ifindex: i, netns: p.netns, side: 'peer' });
        } catch {
          /* reported below */
        }
        if (podId !== undefined && !ids.includes(podId)) problems.push(`${l.ifname} netkit peer: ${ProgramNames.pod} not attached`);
        if (toPodId !== undefined) {
          let primary: number[] = [];
          try {
            primary = queryNetkit({ ifindex: i, netns: p.netns, side: 'primary' });
          } catch {
            /* reported above */
          }
          if (!primary.includes(toPodId)) problems.push(`${l.ifname} netkit primary: ${ProgramNames.toPod} not attached`);
        }
      }
    }
    add(
      problems.length
        ? { name: 'programs attached', result: 'fail', detail: problems.join('; '), fix: RESTART }
        : { name: 'programs attached', result: 'ok', detail: `${want.length} hooks (${endpointIfindexes.length} pod veths), ${netkitIfindexes.length} netkit pods` },
    );

    // Pods and the bridge have the uplink's MTU, their routes through the tunnel the overlay's
    // (cni/overlay-routes.ts); or all of them the overlay's (--mtu, or pods of an earlier release).
    const overlayMtu = Number(config.mtu);
    const podMtu = bridge?.mtu ?? overlayMtu;
    const mtuProblems: string[] = [];
    if (bridge && bridge.mtu !== overlayMtu && bridge.mtu !== uplink?.mtu)
      mtuProblems.push(`bridge ${bridge.ifname} has ${bridge.mtu}, neither the overlay's ${overlayMtu} nor the uplink's ${uplink?.mtu ?? '?'}`);
    if (vxlan && vxlan.mtu !== overlayMtu) mtuProblems.push(`vxlan ${vxlan.ifname} has ${vxlan.mtu}`);
    if (uplink && overlayMtu > uplink.mtu - VXLAN_OVERHEAD)
      mtuProblems.push(`overlay MTU ${overlayMtu} exceeds uplink ${uplink.ifname} MTU ${uplink.mtu} − ${VXLAN_OVERHEAD} (packets would be fragmented or dropped in the tunnel)`);
    for (const i of [...endpointIfindexes, ...netkitIfindexes]) {
      const l = byIndex.get(i);
      if (l && l.mtu !== podMtu && l.mtu !== overlayMtu) mtuProblems.push(`pod veth ${l.ifname} has ${l.mtu}`);
    }
    add(
      mtuProblems.length
        ? {
            name: 'MTU consistent',
            result: 'fail',
            detail: `pod MTU is ${podMtu}, overlay MTU ${overlayMtu}; ${mtuProblems.join('; ')}`,
            fix: `ip link set DEV mtu ${podMtu} (vxlan: ${overlayMtu}) for each device listed (pods: recreate them), or restart bvcnid after changing the uplink MTU`,
          }
        : {
            name: 'MTU consistent',
            result: 'ok',
            detail: `pods ${podMtu} on bridge and ${endpointIfindexes.length + netkitIfindexes.length} pods, overlay ${overlayMtu} on vxlan; uplink ${uplink?.mtu ?? '?'}`,
          },
    );
  }

  const fwd = readSysctl('net.ipv4.ip_forward', p.netns);
  add(
    fwd === '1'
      ? { name: 'IPv4 forwarding on', result: 'ok', detail: 'net.ipv4.ip_forward = 1' }
      : { name: 'IPv4 forwarding on', result: 'fail', detail: `net.ipv4.ip_forward = ${fwd ?? '?'}`, fix: 'sysctl -w net.ipv4.ip_forward=1' },
  );

  const health = daemonHealth(p.healthAddr, p.netns);
  add(
    health.state === 'ready'
      ? { name: 'bvcnid ready', result: 'ok', detail: health.detail }
      : health.state === 'unchecked'
        ? { name: 'bvcnid ready', result: 'skip', detail: health.detail }
        : {
            name: 'bvcnid ready',
            result: 'fail',
            detail: health.detail,
            fix:
              health.state === 'unreachable'
                ? 'bvcnid is not running here (or listens elsewhere: --health-addr): kubectl -n kube-system get pods -l app.kubernetes.io/name=bvcni -o wide'
                : 'bvcnid runs but is not ready: its log says why (kubectl -n kube-system logs -l app.kubernetes.io/name=bvcni)',
          },
  );
  add(conflistCheck(p.confDir, p.pinDir, config, uplink?.mtu));
  add(pluginCheck(p.binDir));
  add(await fastPathCheck(pluginDataDir(p.confDir)));
  add(await (p.apiCheck ?? apiReachable)(p.kubeconfig));
  return checks;
}

function conflistCheck(confDir: string, pinDir: string, config: ConfigValue | undefined, uplinkMtu: number | undefined): Check {
  const name = 'CNI conflist valid';
  const path = join(confDir, CONFLIST_NAME);
  const fail = (detail: string, fix: string): Check => ({ name, result: 'fail', detail, fix });
  if (!existsSync(path)) return fail(`${path} does not exist`, `bvcnid writes it once the dataplane is ready: ${RESTART}`);
  let parsed: { cniVersion?: unknown; name?: unknown; plugins?: Record<string, unknown>[] };
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8')) as typeof parsed;
  } catch (e) {
    return fail(`${path} is not valid JSON: ${(e as Error).message}`, `rm ${path} and ${RESTART}`);
  }
  const plugin = parsed.plugins?.[0];
  if (typeof parsed.cniVersion !== 'string' || typeof parsed.name !== 'string' || !plugin)
    return fail(`${path} lacks cniVersion, name or plugins`, `rm ${path} and ${RESTART}`);
  if (plugin.type !== 'bvcni') return fail(`first plugin is ${String(plugin.type)}, not bvcni`, `rm ${path} and ${RESTART}`);
  const problems: string[] = [];
  if (config) {
    const cidr = `${config.pod_cidr}/${config.pod_prefix}`;
    if (plugin.podcidr !== cidr) problems.push(`podcidr ${String(plugin.podcidr)} ≠ node's ${cidr}`);
    // What bvcnid writes (dataplane/node.ts): the uplink's, or with --mtu that one for everything.
    const overlay = Number(config.mtu);
    if (plugin.mtu !== undefined && plugin.mtu !== overlay && plugin.mtu !== uplinkMtu)
      problems.push(`mtu ${String(plugin.mtu)} is neither the uplink's ${uplinkMtu ?? '?'} nor the overlay's ${overlay}`);
  }
  if (plugin.pinDir !== undefined && plugin.pinDir !== pinDir) problems.push(`pinDir ${String(plugin.pinDir)} ≠ ${pinDir}`);
  // containerd and CRI-O use the lexically first config file of the directory.
  const first = readdirSync(confDir)
    .filter((f) => /\.(conf|conflist|json)$/.test(f))
    .sort()[0];
  if (first !== CONFLIST_NAME) problems.push(`${first} sorts before ${CONFLIST_NAME}: the runtime uses ${first}`);
  if (problems.length)
    return fail(problems.join('; '), first !== CONFLIST_NAME ? `move ${join(confDir, first!)} away (another CNI?)` : RESTART);
  return { name, result: 'ok', detail: `${path} (cniVersion ${parsed.cniVersion})` };
}

/** The plugin's dataDir as the conflist gives it (where bvcnid's socket is), else the default. */
function pluginDataDir(confDir: string): string {
  try {
    const conf = JSON.parse(readFileSync(join(confDir, CONFLIST_NAME), 'utf8')) as { plugins?: { dataDir?: unknown }[] };
    const d = conf.plugins?.[0]?.dataDir;
    if (typeof d === 'string') return d;
  } catch {
    /* no or bad conflist: reported by its own check */
  }
  return Defaults.stateDir;
}

/** Whether bvcnid answers on the plugin's socket. Without it the plugin works alone, only slower. */
export async function fastPathCheck(dataDir: string): Promise<Check> {
  const name = 'plugin served by bvcnid';
  const path = daemonSocketPath(dataDir);
  if (!existsSync(path)) return { name, result: 'skip', detail: `no ${path}: the plugin does its work alone (slower; bvcnid creates it at start)` };
  const answer = await new Promise<string>((resolve) => {
    let text = '';
    const sock = connect(path, () => sock.end(JSON.stringify({ protocol: 0 })));
    sock.setEncoding('utf8');
    sock.setTimeout(5000, () => sock.destroy(new Error('no answer within 5 s')));
    sock.on('data', (d: string) => (text += d));
    sock.on('end', () => resolve(text));
    sock.on('error', (e) => resolve(`error: ${e.message}`));
  });
  // A probe of an unknown protocol version is declined: that answer proves a live bvcnid.
  if (answer.includes('"declined"')) return { name, result: 'ok', detail: `bvcnid answers on ${path}` };
  return { name, result: 'fail', detail: `${path}: ${answer.slice(0, 200) || 'closed without an answer'} (the plugin works alone meanwhile)`, fix: RESTART };
}

function pluginCheck(binDir: string): Check {
  const name = 'CNI plugin installed';
  const bin = join(binDir, PLUGIN_NAME);
  const fail = (detail: string): Check => ({ name, result: 'fail', detail, fix: `the bvcni pod's install-cni init container installs it (bvcnid --install-cni; by hand: bvcnid --cni-bin-dir ${binDir}): ${RESTART}` });
  if (!existsSync(bin)) return fail(`${bin} does not exist`);
  try {
    accessSync(bin, constants.X_OK);
  } catch {
    return fail(`${bin} is not executable`);
  }
  // As a runtime calls it: empty environment, VERSION on stdin.
  const r = runSync(['env', '-i', 'CNI_COMMAND=VERSION', bin], { input: '{"cniVersion":"1.0.0"}', allowFail: true, timeoutMs: 15_000 });
  let versions: string[] | undefined;
  try {
    versions = (JSON.parse(r.stdout) as { supportedVersions?: string[] }).supportedVersions;
  } catch {
    versions = undefined;
  }
  if (r.code !== 0 || !versions) return fail(`${bin} VERSION failed (exit ${r.code}): ${(r.stdout + r.stderr).trim().slice(0, 200)}`);
  // The support directory sits beside the binary's resolved path (one per installed version).
  const real = realpathSync(bin);
  const dir = existsSync(join(dirname(real), PLUGIN_DIR_NAME)) ? ` + ${PLUGIN_DIR_NAME}/` : '';
  return { name, result: 'ok', detail: `${bin}${real === bin ? '' : ` → ${real}`}${dir} speaks ${versions.join(', ')}` };
}

export function makeDoctorCommand(apiCheck?: Probe['apiCheck']): CommandSpec {
  return {
    name: 'doctor',
    description: 'check everything the node needs; each failure with its fix (exit 1 on any failure)',
    options: [
      { flags: '--cni-conf-dir <dir>', description: 'CNI config directory', defaultValue: Defaults.cniConfDir },
      { flags: '--cni-bin-dir <dir>', description: 'CNI plugin directory', defaultValue: Defaults.cniBinDir },
      { flags: '--kubeconfig <path>', description: 'check the API server through this kubeconfig (default: in-cluster when in a pod)' },
      { flags: '--health-addr <host:port>', description: "bvcnid's health endpoint ('none' to skip)", defaultValue: Defaults.healthAddr },
    ],
    async run(opts: OptionValues) {
      const checks = await runChecks({
        pinDir: opts.pinDir,
        netns: opts.netns,
        confDir: String(opts.cniConfDir),
        binDir: String(opts.cniBinDir),
        kubeconfig: opts.kubeconfig as string | undefined,
        healthAddr: String(opts.healthAddr),
        apiCheck,
      });
      const failed = checks.filter((c) => c.result === 'fail');
      const exitCode = failed.length ? 1 : 0;
      if (opts.json) return { output: toJson({ ok: !failed.length, checks }), exitCode };
      let out = formatTable(
        ['CHECK', 'RESULT', 'DETAIL'],
        checks.map((c) => [c.name, c.result === 'ok' ? 'ok' : c.result === 'skip' ? 'skipped' : 'FAIL', c.detail]),
      );
      if (failed.length) {
        out += `\n${failed.length} check${failed.length === 1 ? '' : 's'} failed:\n`;
        for (const c of failed) out += `  ${c.name}\n    fix: ${c.fix ?? '-'}\n`;
      } else out += '\nall checks passed\n';
      return { output: out, exitCode };
    },
  };
}

export const doctor = makeDoctorCommand();
