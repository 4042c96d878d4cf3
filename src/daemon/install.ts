// Files the daemon puts on the host: the CNI plugin (and its support
// directory) in the CNI bin dir, and the conflist in the CNI conf dir. Every
// write is temp-then-rename so the kubelet or a running ADD never sees half a
// file; the conflist is what turns the node Ready, so it is written last.
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export const CONFLIST_NAME = '00-bvcni.conflist';
export const PLUGIN_NAME = 'bvcni';
/** The plugin's support directory (beside it, e.g. koffi's native module). */
export const PLUGIN_DIR_NAME = 'bvcni.d';

const tmpName = (p: string): string => join(dirname(p), `.${basename(p)}.tmp-${process.pid}`);

export function writeFileAtomic(path: string, data: string | Buffer, mode = 0o644): boolean {
  if (existsSync(path)) {
    try {
      if (readFileSync(path).equals(Buffer.isBuffer(data) ? data : Buffer.from(data))) return false;
    } catch {
      // unreadable: replace it
    }
  }
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tmpName(path);
  writeFileSync(tmp, data, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
  return true;
}

export interface PluginConfig {
  podCidr: string;
  bridge: string;
  mtu: number;
  dataDir: string;
  pinDir: string;
}

export function conflistText(c: PluginConfig): string {
  return (
    JSON.stringify(
      {
        cniVersion: '1.0.0',
        name: 'bvcni',
        plugins: [{ type: 'bvcni', podcidr: c.podCidr, bridge: c.bridge, mtu: c.mtu, dataDir: c.dataDir, pinDir: c.pinDir }],
      },
      null,
      2,
    ) + '\n'
  );
}

export function writeConflist(confDir: string, c: PluginConfig): { path: string; changed: boolean } {
  const path = join(confDir, CONFLIST_NAME);
  return { path, changed: writeFileAtomic(path, conflistText(c)) };
}

/**
 * Copies the plugin and, when present, its support directory into binDir.
 * The directory goes first (a new binary must find its new support files);
 * the old directory is replaced by rename, then removed.
 */
export function installPlugin(source: string, binDir: string): { binary: string; dir?: string; changed: boolean } {
  if (!existsSync(source)) throw new Error(`plugin ${source} does not exist (build it, or pass --plugin)`);
  mkdirSync(binDir, { recursive: true });
  let changed = false;
  const srcDir = join(dirname(source), PLUGIN_DIR_NAME);
  let dir: string | undefined;
  if (existsSync(srcDir) && statSync(srcDir).isDirectory()) {
    dir = join(binDir, PLUGIN_DIR_NAME);
    const tmp = tmpName(dir);
    rmSync(tmp, { recursive: true, force: true });
    cpSync(srcDir, tmp, { recursive: true, dereference: true });
    const old = `${tmp}.old`;
    rmSync(old, { recursive: true, force: true });
    if (existsSync(dir)) renameSync(dir, old);
    renameSync(tmp, dir);
    rmSync(old, { recursive: true, force: true });
    changed = true;
  }
  const binary = join(binDir, PLUGIN_NAME);
  // Always replaced (an upgrade or a rollback may keep size and age): the copy
  // runs in the kernel (copy_file_range), never through the JS heap, and the
  // rename makes it atomic for a concurrent ADD.
  const tmp = tmpName(binary);
  copyFileSync(source, tmp);
  chmodSync(tmp, 0o755);
  renameSync(tmp, binary);
  changed = true;
  return { binary, dir, changed };
}

/** Removes the conflist if present; returns its path when it did. */
export function removeConflist(confDir: string): string | undefined {
  const path = join(confDir, CONFLIST_NAME);
  if (!existsSync(path)) return undefined;
  rmSync(path, { force: true });
  return path;
}

export function removeInstalled(confDir: string, binDir: string): string[] {
  const removed: string[] = [];
  for (const p of [join(confDir, CONFLIST_NAME), join(binDir, PLUGIN_NAME), join(binDir, PLUGIN_DIR_NAME)]) {
    if (existsSync(p)) {
      rmSync(p, { recursive: true, force: true });
      removed.push(p);
    }
  }
  return removed;
}
