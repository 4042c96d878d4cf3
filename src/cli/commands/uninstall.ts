// bvcnictl uninstall: removes this node's bvcni — programs, pinned maps, the
// bridge and VXLAN device, the conflist and the installed plugin. Without
// --yes it only says what it would remove. Pods on the node lose their network.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CONFLIST_NAME, installedPluginFiles, removeInstalled } from '../../kube/install.js';
import { removeNodeDataplane } from '../../dataplane/node.js';
import { Defaults } from '../../common/defaults.js';
import { isBpffs, listLinks, readConfig } from '../inspect.js';
import { CliError, toJson, type CommandSpec } from '../types.js';

export const uninstall: CommandSpec = {
  name: 'uninstall',
  description: 'remove programs, maps, devices, conflist and plugin from this node (needs --yes)',
  options: [
    { flags: '--yes', description: 'really remove (otherwise: show what would be removed)', defaultValue: false },
    { flags: '--cni-conf-dir <dir>', description: 'CNI config directory', defaultValue: Defaults.cniConfDir },
    { flags: '--cni-bin-dir <dir>', description: 'CNI plugin directory', defaultValue: Defaults.cniBinDir },
    { flags: '--bridge <name>', description: 'bridge name when the config map is gone', defaultValue: Defaults.bridge },
    { flags: '--vxlan-dev <name>', description: 'VXLAN device name when the config map is gone', defaultValue: Defaults.vxlanDev },
  ],
  async run(opts) {
    const confDir = String(opts.cniConfDir);
    const binDir = String(opts.cniBinDir);
    let config;
    try {
      config = existsSync(opts.pinDir) && isBpffs(opts.pinDir) ? readConfig(opts.pinDir) : undefined;
    } catch {
      config = undefined;
    }
    const links = listLinks(opts.netns);
    const nameOf = (ifindex: number | undefined, fallback: string): string =>
      links.find((l) => l.ifindex === ifindex)?.ifname ?? fallback;
    const target = {
      pinDir: opts.pinDir,
      netns: opts.netns,
      bridge: nameOf(config?.bridge_ifindex, String(opts.bridge)),
      vxlanDev: nameOf(config?.vxlan_ifindex, String(opts.vxlanDev)),
      // Only its tc filter is removed; without a config there is nothing of ours on it to find.
      uplink: nameOf(config?.uplink_ifindex, ''),
    };
    const present = new Set(links.map((l) => l.ifname));
    const plan = {
      pinDir: existsSync(opts.pinDir) ? opts.pinDir : null,
      devices: [target.bridge, target.vxlanDev].filter((d) => present.has(d)),
      uplinkFilter: target.uplink || null,
      files: [join(confDir, CONFLIST_NAME)].filter((f) => existsSync(f)).concat(installedPluginFiles(binDir)),
    };
    if (!opts.yes) {
      const out = opts.json
        ? toJson({ removed: false, wouldRemove: plan })
        : [
            'would remove (run again with --yes):',
            `  pinned maps and programs: ${plan.pinDir ?? '(none)'}`,
            `  devices: ${plan.devices.join(', ') || '(none)'}`,
            `  tc filter on uplink: ${plan.uplinkFilter ?? '(none)'}`,
            `  files: ${plan.files.join(', ') || '(none)'}`,
            'pods on this node lose their network; if the bvcni DaemonSet still runs here it sets everything up again.',
            '',
          ].join('\n');
      return { output: out, exitCode: 0 };
    }
    const problems: string[] = [];
    try {
      await removeNodeDataplane(target.uplink ? target : { ...target, uplink: target.bridge });
    } catch (e) {
      problems.push((e as Error).message);
    }
    let files: string[] = [];
    try {
      files = removeInstalled(confDir, binDir);
    } catch (e) {
      problems.push((e as Error).message);
    }
    if (problems.length) throw new CliError(`uninstall incomplete: ${problems.join('; ')}`, 'run it again: every step tolerates what is already gone');
    if (opts.json) return { output: toJson({ removed: true, ...plan, files }), exitCode: 0 };
    return {
      output: `removed: ${[plan.pinDir, ...plan.devices, ...files].filter(Boolean).join(', ') || 'nothing (already clean)'}\n`,
      exitCode: 0,
    };
  },
};
