// The BPF filters on a tc hook, as tc(8) reports them. libbpf cannot
// enumerate filters (bpf_tc_query needs the handle and priority), so this is
// the one place that asks tc for a JSON dump: for inspection (bvcnictl) and
// tests, never a hot path. Outside loader/, which binds libraries and runs
// no tools.
import { BpfError, Errno, ifIndex, type TcDirection, type TcTarget } from '../../loader/index.js';
import { runSync } from '../common/exec.js';
import { getLinkByIndex } from '../netlink/rtnl.js';
import { NetlinkSocket, socketIn } from '../netlink/socket.js';

const { ENODEV } = Errno;

export interface TcFilter {
  handle: number;
  priority: number;
  progId: number;
  name: string;
}

/**
 * Every BPF filter on one hook. libbpf cannot enumerate filters, so this
 * asks tc(8) for a JSON dump; it is for inspection, not hot paths.
 */
export function listTc(t: TcTarget, direction: TcDirection): TcFilter[] {
  const dev = t.ifname ?? ifnameOf(ifIndex(t), t.netns);
  const res = runSync(['tc', '-j', 'filter', 'show', 'dev', dev, direction], { netns: t.netns, allowFail: true });
  if (res.code !== 0) {
    if (/Cannot find device/i.test(res.stderr)) throw new BpfError(`list tc ${direction} on ${`${t.ifname ?? `ifindex ${t.ifindex}`}${t.netns ? ` in ${t.netns}` : ''}`}`, ENODEV);
    return [];
  }
  const rows = JSON.parse(res.stdout || '[]') as {
    pref?: number;
    kind?: string;
    options?: { handle?: string; prog?: { id?: number; name?: string } };
  }[];
  return rows
    .filter((r) => r.kind === 'bpf' && r.options?.prog?.id !== undefined)
    .map((r) => ({
      handle: parseInt(r.options?.handle ?? '0', 16),
      priority: r.pref ?? 0,
      progId: r.options!.prog!.id!,
      name: r.options!.prog!.name ?? '',
    }));
}

/** The name of an interface in the namespace, through rtnetlink. */
function ifnameOf(ifindex: number, netns: string | undefined): string {
  using s = netns ? socketIn(netns) : new NetlinkSocket();
  const l = getLinkByIndex(s, ifindex);
  if (!l) throw new BpfError(`find interface ${ifindex}`, ENODEV);
  return l.name;
}
