// Files bvcni puts on the host: the CNI plugin (and its support directory) in
// the CNI bin dir — by `bvcnid --install-cni` in the DaemonSet's init container,
// or by a bvcnid given --cni-bin-dir when run by hand or by the simulator — and
// the conflist in the CNI conf dir, by the running bvcnid. Every write is
// temp-then-rename so the kubelet or a running ADD never sees half a file; the
// conflist is what turns the node Ready, so it is written last.
import { createHash } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  copyFileSync,
  cpSync,
  existsSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';

export const CONFLIST_NAME = '00-bvcni.conflist';
export const PLUGIN_NAME = 'bvcni';
/** The plugin's support directory (beside it: the Node plugin, koffi's native module, libbpf). */
export const PLUGIN_DIR_NAME = 'bvcni.d';
/**
 * The Node plugin, in the support directory: `bvcni` itself is the native
 * front (src/cni/front/), which runs this for everything bvcnid does not answer.
 */
export const NODE_PLUGIN_NAME = 'bvcni-node';

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

/** fsync of a file or a directory (a directory's fsync makes the names in it durable). */
function fsyncPath(p: string): void {
  const fd = openSync(p, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Every file under dir, then dir itself, flushed to disk. */
function fsyncTree(dir: string): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) fsyncTree(p);
    else if (e.isFile()) fsyncPath(p);
  }
  fsyncPath(dir);
}

export interface PluginConfig {
  podCidr: string;
  bridge: string;
  mtu: number;
  dataDir: string;
  pinDir: string;
  /** What pods get (src/cni/config.ts): written only when not the plugin's default, veth. */
  podDevice?: 'veth' | 'netkit';
  /** bvcnid --network-policy: the plugin registers new endpoints fail-closed (ENDPOINT_F_POLICY_PENDING). */
  networkPolicy?: boolean;
}

export function conflistText(c: PluginConfig): string {
  return (
    JSON.stringify(
      {
        cniVersion: '1.0.0',
        name: 'bvcni',
        plugins: [
          {
            type: 'bvcni',
            podcidr: c.podCidr,
            bridge: c.bridge,
            mtu: c.mtu,
            dataDir: c.dataDir,
            pinDir: c.pinDir,
            ...(c.podDevice === 'netkit' ? { podDevice: c.podDevice } : {}),
            // bvcnid --network-policy: a pod the plugin adds alone starts fail-closed until bvcnid writes its rules.
            ...(c.networkPolicy ? { networkPolicy: true } : {}),
            // Runtimes pass runtimeConfig.portMappings (hostPorts) to the plugin, which maps them in eBPF.
            capabilities: { portMappings: true },
          },
        ],
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

/** Each installed version of the plugin: `<binDir>/.bvcni-<digest>/{bvcni, bvcni.d/}`. */
const VERSION_PREFIX = `.${PLUGIN_NAME}-`;

/**
 * A digest of what is being installed: size and mtime of the binary and of
 * every support file. Cheap (no 100 MB file through the heap) and enough: a
 * restart with the same image finds its version in place, an upgrade or a
 * rollback brings other files.
 */
function versionDigest(source: string, srcDir: string | undefined): string {
  const h = createHash('sha256');
  const add = (p: string, name: string): void => {
    const st = statSync(p);
    h.update(`${name}\0${st.size}\0${st.mtimeMs}\0`);
  };
  add(source, PLUGIN_NAME);
  if (srcDir) for (const f of readdirSync(srcDir).sort()) add(join(srcDir, f), f);
  return h.digest('hex').slice(0, 12);
}

/**
 * Installs the plugin and its support directory so that a concurrent ADD
 * sees either the old version or the new one, whole, never a mix: each
 * version is copied into a directory of its own, then the `bvcni` symlink is
 * switched with one rename. The plugin finds its support directory beside its
 * resolved path (process.execPath follows the symlink). The previous version
 * is kept for calls that started before the switch; older ones are removed.
 */
export function installPlugin(source: string, binDir: string): { binary: string; version: string; changed: boolean } {
  if (!existsSync(source)) throw new Error(`plugin ${source} does not exist (build it, or pass --plugin)`);
  mkdirSync(binDir, { recursive: true });
  const srcDir = join(dirname(source), PLUGIN_DIR_NAME);
  const hasDir = existsSync(srcDir) && statSync(srcDir).isDirectory();
  const version = `${VERSION_PREFIX}${versionDigest(source, hasDir ? srcDir : undefined)}`;
  const versionDir = join(binDir, version);
  const created = !existsSync(versionDir);
  if (created) {
    const tmp = tmpName(versionDir);
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp);
    // copy_file_range in the kernel: the binary never passes through the JS heap.
    copyFileSync(source, join(tmp, PLUGIN_NAME));
    chmodSync(join(tmp, PLUGIN_NAME), 0o755);
    if (hasDir) cpSync(srcDir, join(tmp, PLUGIN_DIR_NAME), { recursive: true, dereference: true });
    // On disk before the name that makes it a version: after a power cut the
    // version directory is whole or absent, never an empty or torn binary
    // that a restart would take for installed (same size and mtime digest).
    fsyncTree(tmp);
    renameSync(tmp, versionDir);
  }
  const binary = join(binDir, PLUGIN_NAME);
  const target = join(version, PLUGIN_NAME);
  let previous: string | undefined;
  try {
    previous = readlinkSync(binary);
  } catch {
    previous = undefined; // absent, or a plain file from an older layout
  }
  const changed = previous !== target;
  if (changed) {
    const tmpLink = tmpName(binary);
    rmSync(tmpLink, { force: true });
    symlinkSync(target, tmpLink);
    renameSync(tmpLink, binary);
  }
  // The version directory's and the link's new names, durable.
  if (created || changed) fsyncPath(binDir);
  const keep = new Set([version, previous?.split('/')[0]]);
  for (const f of readdirSync(binDir)) {
    const stale = (f.startsWith(VERSION_PREFIX) && !keep.has(f)) || (f === PLUGIN_DIR_NAME && changed);
    if (stale) rmSync(join(binDir, f), { recursive: true, force: true });
  }
  return { binary, version, changed };
}

/** What an install put in binDir: the link (or binary), every version, an old layout's bvcni.d. */
export function installedPluginFiles(binDir: string): string[] {
  if (!existsSync(binDir)) return [];
  return readdirSync(binDir)
    .filter((f) => f === PLUGIN_NAME || f === PLUGIN_DIR_NAME || f.startsWith(VERSION_PREFIX))
    .map((f) => join(binDir, f));
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
  for (const p of [join(confDir, CONFLIST_NAME), ...installedPluginFiles(binDir)]) {
    // lstat, not exists: a symlink whose version is gone must go too.
    if (lstatSync(p, { throwIfNoEntry: false })) {
      rmSync(p, { recursive: true, force: true });
      removed.push(p);
    }
  }
  return removed;
}
