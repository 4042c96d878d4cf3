// bvcnictl endpoints: the endpoint map (pod IP -> host veth, MACs), as the
// plugin registered it, with the host veth resolved to its name.
import { CliError, ok, toJson, type CommandSpec } from '../types.js';
import { EndpointFlags } from '../../dataplane/abi.js';
import { openEndpointsMap } from '../../dataplane/maps.js';
import { listLinks, requirePinDir } from '../inspect.js';
import { formatTable } from '../../common/table.js';
import { ipv4ToInt } from '../../../loader/codec.js';

export const endpoints: CommandSpec = {
  name: 'endpoints',
  description: 'local pods in the endpoint map: IP, host interface, MACs',
  async run(opts) {
    requirePinDir(opts.pinDir);
    let rows;
    try {
      using m = openEndpointsMap(opts.pinDir);
      rows = [...m.entries()];
    } catch (e) {
      throw new CliError(`cannot read the endpoint map in ${opts.pinDir}: ${(e as Error).message}`, 'run bvcnictl doctor');
    }
    const links = new Map(listLinks(opts.netns).map((l) => [l.ifindex, l]));
    const list = rows
      .map(([k, v]) => ({
        ip: k.ip,
        ifindex: v.ifindex,
        ifname: links.get(v.ifindex)?.ifname ?? null,
        podMac: v.pod_mac,
        gatewayMac: v.gw_mac,
        identity: Number(v.identity),
        flags: Number(v.flags),
        pod: (Number(v.flags) & EndpointFlags.pod) !== 0,
      }))
      .sort((a, b) => ipv4ToInt(a.ip) - ipv4ToInt(b.ip));
    if (opts.json) return ok(toJson({ endpoints: list }));
    return ok(
      formatTable(
        ['POD IP', 'IFINDEX', 'HOST IFACE', 'POD MAC', 'GATEWAY MAC', 'IDENTITY'],
        list.map((e) => [e.ip, String(e.ifindex), e.ifname ?? '(gone)', e.podMac, e.gatewayMac, String(e.identity)]),
      ),
    );
  },
};
