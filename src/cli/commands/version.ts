// bvcnictl version: what this bvcnictl was built from, and what dataplane ABI
// the node's pinned maps must speak for it to read them.
import { buildInfo } from '../../dataplane/build.js';
import { formatPairs } from '../../common/table.js';
import { ok, toJson, type CommandSpec } from '../types.js';

export const version: CommandSpec = {
  name: 'version',
  description: 'release, git commit and dataplane ABI version of this build',
  async run(opts) {
    const b = buildInfo();
    if (opts.json) return ok(toJson(b));
    return ok(
      formatPairs([
        ['release', b.release],
        ['commit', b.commit],
        ['dataplane ABI', String(b.abiVersion)],
        ['Node.js', b.node],
      ]),
    );
  },
};
