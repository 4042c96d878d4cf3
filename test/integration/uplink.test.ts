// findUplink on a node with two NICs: the one holding the InternalIP wins over
// the default route's; without such an address, the default route's.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { run } from '../../src/common/exec.js';
import { findUplink } from '../../src/dataplane/index.js';
import { createNetns, deleteNetnsSync, uniquePrefix } from '../../src/sim/netns.js';

const name = `${uniquePrefix('bvu')}-n`;
let ns = '';

before(async () => {
  ns = await createNetns(name);
  for (const [dev, peer, addr] of [['nat0', 'nat0p', '198.51.100.15/24'], ['priv0', 'priv0p', '192.0.2.21/24']] as const) {
    await run(['ip', 'link', 'add', dev, 'type', 'veth', 'peer', 'name', peer], { netns: ns });
    await run(['ip', 'addr', 'add', addr, 'dev', dev], { netns: ns });
    await run(['ip', 'link', 'set', dev, 'up'], { netns: ns });
    await run(['ip', 'link', 'set', peer, 'up'], { netns: ns });
  }
});
after(() => deleteNetnsSync(name));

test('the interface holding the InternalIP, not the default route\'s, then the default route\'s as a fallback', async () => {
  await assert.rejects(findUplink('192.0.2.99', ns), /no interface holds 192\.0\.2\.99 and there is no default route/);
  await run(['ip', 'route', 'add', 'default', 'via', '198.51.100.1', 'dev', 'nat0'], { netns: ns });
  assert.equal(await findUplink('192.0.2.21', ns), 'priv0');
  assert.equal(await findUplink('192.0.2.99', ns), 'nat0');
});
