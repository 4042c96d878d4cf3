// bvcnictl drops: the per-CPU stats map summed, by reason and direction.
import { isDropRow, readStats } from '../../dataplane/stats.js';
import { requirePinDir } from '../inspect.js';
import { formatBytes, formatTable } from '../../common/table.js';
import { CliError, ok, toJson, type CommandSpec } from '../types.js';

export const drops: CommandSpec = {
  name: 'drops',
  description: 'drop counters by reason (and forwarded packets), summed over CPUs',
  options: [{ flags: '--all', description: 'include reasons with zero packets', defaultValue: false }],
  async run(opts) {
    requirePinDir(opts.pinDir);
    let rows;
    try {
      rows = readStats(opts.pinDir);
    } catch (e) {
      throw new CliError(`cannot read the stats map in ${opts.pinDir}: ${(e as Error).message}`, 'run bvcnictl doctor');
    }
    const shown = opts.all ? rows : rows.filter((r) => r.packets > 0n);
    const drops = shown.filter(isDropRow);
    const totalDropped = rows.filter(isDropRow).reduce((s, r) => s + r.packets, 0n);
    if (opts.json) return ok(toJson({ counters: shown, totalDropped }));
    const forward = shown.filter((r) => !isDropRow(r));
    let out = formatTable(
      ['REASON', 'DIRECTION', 'PACKETS', 'BYTES'],
      [...drops, ...forward].map((r) => [r.reason, r.direction, r.packets.toString(), formatBytes(r.bytes)]),
    );
    out += `\ntotal dropped: ${totalDropped} packets\n`;
    return ok(out);
  },
};
