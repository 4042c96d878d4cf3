// The flannel-style kernel VXLAN baseline: what flannel's vxlan backend
// programs on every node (a bridge for pods, a VXLAN device with learning
// off, and per remote node one FDB entry, one neighbour entry and one onlink
// route), plus the nft masquerade flannel's iptables rules amount to. It is
// the reference the benchmarks compare bvcni against, not part of the product.
import { run } from '../common/exec.js';
import { CLUSTER_CIDR, FLANNEL_VXLAN_PORT, VNI } from './topology.js';

export const FLANNEL_DEV = 'flannel.1';
export const BASELINE_NFT_TABLE = 'sim_baseline_nat';

export interface FlannelNode {
  path: string;
  index: number;
  ip: string;
  gateway: string;
  bridge: string;
  uplink: string;
  podMtu: number;
}

/** Network address of the node's podCIDR: flannel puts it on flannel.1 as the VTEP address. */
function vtepIp(index: number): string {
  return `10.244.${index}.0`;
}

export async function setupFlannelNode(n: FlannelNode, opts: { masquerade: boolean }): Promise<void> {
  const ip = (...a: string[]): Promise<unknown> => run(['ip', ...a], { netns: n.path });
  await ip('link', 'add', n.bridge, 'type', 'bridge');
  await ip('link', 'set', n.bridge, 'mtu', String(n.podMtu), 'up');
  await ip('addr', 'add', `${n.gateway}/24`, 'dev', n.bridge);
  await ip(
    'link', 'add', FLANNEL_DEV, 'type', 'vxlan', 'id', String(VNI), 'local', n.ip, 'dev', n.uplink,
    'dstport', String(FLANNEL_VXLAN_PORT), 'nolearning',
  );
  await ip('link', 'set', FLANNEL_DEV, 'mtu', String(n.podMtu), 'up');
  await ip('addr', 'add', `${vtepIp(n.index)}/32`, 'dev', FLANNEL_DEV);
  if (opts.masquerade) {
    // flannel: -s podnet ! -d podnet -j MASQUERADE --random-fully
    const rules = [
      `table ip ${BASELINE_NFT_TABLE} {`,
      '  chain post {',
      '    type nat hook postrouting priority srcnat; policy accept;',
      `    ip saddr ${CLUSTER_CIDR} ip daddr != ${CLUSTER_CIDR} masquerade fully-random`,
      '  }',
      '}',
    ].join('\n');
    await run(['nft', '-f', '-'], { netns: n.path, input: rules });
  }
}

export async function vtepMac(n: FlannelNode): Promise<string> {
  const r = await run(['ip', '-j', 'link', 'show', FLANNEL_DEV], { netns: n.path });
  const mac = (JSON.parse(r.stdout) as { address: string }[])[0]?.address;
  if (!mac) throw new Error(`no MAC on ${FLANNEL_DEV}`);
  return mac;
}

/** What flannel's subnet watcher adds on `local` for one remote node. */
export async function addFlannelPeer(local: FlannelNode, remote: FlannelNode, remoteMac: string): Promise<void> {
  const ip = (...a: string[]): Promise<unknown> => run(['ip', ...a], { netns: local.path });
  await ip('neigh', 'replace', vtepIp(remote.index), 'lladdr', remoteMac, 'dev', FLANNEL_DEV, 'nud', 'permanent');
  await run(['bridge', 'fdb', 'replace', remoteMac, 'dev', FLANNEL_DEV, 'dst', remote.ip, 'self', 'permanent'], {
    netns: local.path,
  });
  await ip('route', 'replace', `10.244.${remote.index}.0/24`, 'via', vtepIp(remote.index), 'dev', FLANNEL_DEV, 'onlink');
}

export async function setupFlannel(nodes: FlannelNode[], opts: { masquerade: boolean }): Promise<void> {
  await Promise.all(nodes.map((n) => setupFlannelNode(n, opts)));
  const macs = await Promise.all(nodes.map((n) => vtepMac(n)));
  for (const a of nodes)
    for (const b of nodes) if (a !== b) await addFlannelPeer(a, b, macs[nodes.indexOf(b)]!);
}
