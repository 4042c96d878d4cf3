// bvcnictl hostports: the hostPort map (host IP, port, protocol -> pod), as
// the plugin claimed it at ADD, with the endpoint behind each (a mapping whose
// pod has no endpoint entry is dropped by the programs as DROP_HOSTPORT_NO_POD).
import { CliError, ok, toJson, type CommandSpec } from '../types.js';
import { listHostPorts } from '../../dataplane/hostport.js';
import { openEndpointsMap } from '../../dataplane/maps.js';
import { requirePinDir } from '../inspect.js';
import { formatTable } from '../../common/table.js';

export const hostports: CommandSpec = {
  name: 'hostports',
  description: 'hostPort mappings: host IP, port, protocol -> pod IP and port, owner',
  async run(opts) {
    requirePinDir(opts.pinDir);
    let rows;
    let pods: Set<string>;
    try {
      rows = listHostPorts(opts.pinDir);
      using m = openEndpointsMap(opts.pinDir);
      pods = new Set([...m.keys()].map((k) => String(k.ip)));
    } catch (e) {
      throw new CliError(`cannot read the hostPort map in ${opts.pinDir}: ${(e as Error).message}`, 'run bvcnictl doctor');
    }
    const list = rows
      .map((e) => ({
        hostIp: e.hostIp === '0.0.0.0' ? '*' : e.hostIp,
        hostPort: e.hostPort,
        protocol: e.protocol,
        podIp: e.podIp,
        containerPort: e.containerPort,
        owner: e.owner.toString(16).padStart(16, '0'),
        endpoint: pods.has(e.podIp),
      }))
      .sort((a, b) => a.hostPort - b.hostPort || a.protocol.localeCompare(b.protocol) || a.hostIp.localeCompare(b.hostIp));
    if (opts.json) return ok(toJson({ hostports: list }));
    return ok(
      formatTable(
        ['HOST IP', 'HOST PORT', 'PROTO', 'POD IP', 'POD PORT', 'OWNER', 'ENDPOINT'],
        list.map((e) => [e.hostIp, String(e.hostPort), e.protocol, e.podIp, String(e.containerPort), e.owner, e.endpoint ? 'yes' : 'MISSING']),
      ),
    );
  },
};
