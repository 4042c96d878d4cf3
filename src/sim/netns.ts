// Named network namespaces for the simulator and the tests. Names carry a
// caller-chosen prefix so a crashed run's leftovers can be found and removed.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { run, runSync } from '../common/exec.js';

export function netnsPath(name: string): string {
  return `/run/netns/${name}`;
}

/** A short prefix unique to this run: `<base><6 hex>`, kept short because ifnames are ≤ 15 chars. */
export function uniquePrefix(base: string): string {
  return `${base}${randomBytes(3).toString('hex')}`;
}

export async function createNetns(name: string): Promise<string> {
  await run(['ip', 'netns', 'add', name]);
  const path = netnsPath(name);
  // Loopback up and forwarding explicit: the defaults differ between kernels.
  await run(['ip', 'link', 'set', 'lo', 'up'], { netns: path });
  return path;
}

export function deleteNetnsSync(name: string): void {
  if (!existsSync(netnsPath(name))) return;
  // Processes still inside would keep the namespace (and its devices) alive.
  runSync(['ip', 'netns', 'pids', name], { allowFail: true })
    .stdout.split(/\s+/)
    .filter(Boolean)
    .forEach((pid) => runSync(['kill', '-9', pid], { allowFail: true }));
  runSync(['ip', 'netns', 'del', name], { allowFail: true });
}

export function listNetns(prefix: string): string[] {
  const out = runSync(['ip', 'netns', 'list'], { allowFail: true }).stdout;
  return out
    .split('\n')
    .map((l) => l.split(/\s+/)[0] ?? '')
    .filter((n) => n.startsWith(prefix));
}
