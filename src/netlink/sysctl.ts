// Kernel settings through /proc/sys, the one way product code changes them (no
// `sysctl` child process). /proc/sys/net shows the network namespace of the
// thread that looks, so a namespace is entered for the synchronous read or write.
import { readFileSync, writeFileSync } from 'node:fs';
import { maybeInNetns } from '../../loader/netns.js';

/** A key as a path under /proc/sys ("net/ipv4/ip_forward"); a device name keeps its dots ("net/ipv4/conf/vxlan.1/rp_filter"). */
function procPath(key: string): string {
  if (!/^[A-Za-z0-9_.\-/]+$/.test(key) || key.split('/').some((p) => p === '' || p === '.' || p === '..')) {
    throw new TypeError(`bad sysctl key ${JSON.stringify(key)}`);
  }
  return `/proc/sys/${key}`;
}

export function readSysctl(key: string, netns?: string): string {
  const path = procPath(key);
  return maybeInNetns(netns, () => readFileSync(path, 'utf8')).trim();
}

/**
 * Writes value unless the setting already has it. Read first: in the
 * DaemonSet /proc/sys is read-only (unprivileged container), so values its
 * init container already set must not be written again. Tabs and runs of
 * spaces count as one space (the kernel prints some lists with tabs).
 */
export function ensureSysctl(key: string, value: string, netns?: string): void {
  const path = procPath(key);
  maybeInNetns(netns, () => {
    const norm = (v: string): string => v.trim().replace(/\s+/g, ' ');
    try {
      if (norm(readFileSync(path, 'utf8')) === norm(value)) return;
      writeFileSync(path, value);
    } catch (e) {
      throw new Error(`set ${key}=${value}${netns ? ` in ${netns}` : ''}: ${(e as Error).message}`, { cause: e });
    }
  });
}
