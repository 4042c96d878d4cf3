// bvcnid's command line on a simulated node: one place, for the demo and the
// daemon tests and benchmarks (test/support/kube-daemons.ts). Everything but
// the node's own names, directories and addresses stays at bvcnid's defaults.
import type { SimNode } from './cluster.js';

export interface BvcnidCommand {
  /** The Node.js that runs it (default: this process's). */
  node?: string;
  /** Environment set for it (through env(1)). */
  env?: Readonly<Record<string, string>>;
  /** The bvcnid bundle to run with this Node (dist/bin/bvcnid). */
  bvcnid: string;
  kubeconfig: string;
  healthAddr: string;
  metricsAddr?: string;
  logLevel?: string;
  /** Flags for Node itself, before the bundle. */
  nodeFlags?: readonly string[];
  /** More bvcnid flags, last (a repeated flag overrides). */
  extra?: readonly string[];
}

export function bvcnidCommand(n: SimNode, o: BvcnidCommand): string[] {
  const env = Object.entries(o.env ?? {});
  return [
    ...(env.length ? ['env', ...env.map(([k, v]) => `${k}=${v}`)] : []),
    o.node ?? process.execPath,
    ...(o.nodeFlags ?? []),
    o.bvcnid,
    '--node-name', n.name,
    '--kubeconfig', o.kubeconfig,
    '--iface', n.uplink,
    '--pin-dir', n.pinDir,
    '--cni-conf-dir', n.confDir,
    '--cni-bin-dir', n.binDir,
    '--state-dir', n.stateDir,
    '--health-addr', o.healthAddr,
    ...(o.metricsAddr ? ['--metrics-addr', o.metricsAddr] : []),
    '--bridge', n.bridge,
    '--vxlan-dev', n.vxlanDev,
    ...(o.logLevel ? ['--log-level', o.logLevel] : []),
    ...(o.extra ?? []),
  ];
}
