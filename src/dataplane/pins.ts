// Pins in bpffs: replaced atomically, removed tolerantly. One place for the
// node set-up and the map migration.
import { existsSync, readdirSync, renameSync, rmdirSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';

export function unlinkIfExists(path: string): void {
  // Not rmSync: its lstat gets EPERM on bpffs for a missing file.
  if (existsSync(path)) unlinkSync(path);
}

/**
 * Moves a pin to `to`, replacing what is pinned there in one rename where
 * bpffs allows it, so a reader (the plugin, a restarted bvcnid) never finds
 * nothing at `to`.
 */
export function renamePin(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch {
    unlinkIfExists(to);
    renameSync(from, to);
  }
}

/** Pins with `pin` beside `path` (bpffs refuses names with a dot), then renames over it. */
export function pinReplacing(pin: (path: string) => void, path: string): void {
  const tmp = `${path}_new`;
  unlinkIfExists(tmp);
  pin(tmp);
  renamePin(tmp, path);
}

/** Unpins everything under dir (subdirectories too) and removes it. */
export function unpinTree(dir: string): void {
  if (!existsSync(dir)) return;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) unpinTree(p);
    else unlinkSync(p);
  }
  rmdirSync(dir);
}
