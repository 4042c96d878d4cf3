// cgroup BPF programs through links: attached to a cgroup, pinned so they
// outlive the process, replaced in place (bpf_link_update) by a new program.
// A cgroup link is always attached in multi mode: other programs on the same
// cgroup (another simulated node's, systemd's) are left alone.
import { closeSync, existsSync, openSync, unlinkSync } from 'node:fs';
import { bpf, c } from './bindings.js';
import { BpfError, check } from './errors.js';
import { koffi } from './ffi.js';
import { libc } from './libc.js';
import { maybeInNetns } from './netns.js';
import type { BpfProgram } from './program.js';

/** enum bpf_attach_type values this module knows. */
export const CgroupAttach = { inet4Connect: 10 } as const;
export type CgroupAttachType = keyof typeof CgroupAttach;

/**
 * Attaches prog to the cgroup (a cgroup v2 directory) through a link pinned
 * at linkPin, or, when that pin exists, puts prog into the pinned link in
 * place of its program. Returns whether it created the link.
 */
export function attachCgroupPinned(prog: BpfProgram, o: { cgroup: string; type: CgroupAttachType; linkPin: string }): { created: boolean } {
  if (existsSync(o.linkPin)) {
    const link = check(`open pinned link ${o.linkPin}`, bpf().bpf_obj_get(o.linkPin) as number);
    try {
      check(`update link ${o.linkPin} with ${prog.name}`, bpf().bpf_link_update(link, prog.fd, null) as number);
    } finally {
      closeSync(link);
    }
    return { created: false };
  }
  let cg: number;
  try {
    cg = openSync(o.cgroup, 'r');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new BpfError(`open cgroup ${o.cgroup}`, -(err.errno ?? -2), err.code);
  }
  try {
    const link = check(`attach ${prog.name} to cgroup ${o.cgroup} (${o.type})`, bpf().bpf_link_create(prog.fd, cg, CgroupAttach[o.type], null) as number);
    try {
      check(`pin link at ${o.linkPin}`, bpf().bpf_obj_pin(link, o.linkPin) as number);
    } finally {
      closeSync(link);
    }
  } finally {
    closeSync(cg);
  }
  return { created: true };
}

/**
 * Detaches the link pinned at linkPin from its cgroup, whoever else still holds
 * the link (BPF_LINK_DETACH: another process's descriptor would otherwise keep
 * it attached after the pin goes), then removes the pin. False when nothing
 * was pinned there.
 */
export function detachCgroupPinned(linkPin: string): boolean {
  if (!existsSync(linkPin)) return false;
  const link = check(`open pinned link ${linkPin}`, bpf().bpf_obj_get(linkPin) as number);
  try {
    check(`detach link ${linkPin}`, bpf().bpf_link_detach(link) as number);
  } finally {
    closeSync(link);
  }
  unlinkSync(linkPin);
  return true;
}

const AF_INET = 2;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_NETNS_COOKIE = 71;

/** The network namespace's cookie (what bpf_get_netns_cookie answers there): SO_NETNS_COOKIE, Linux 5.14+. */
export function netnsCookie(netns?: string): bigint {
  const l = libc();
  const fd = maybeInNetns(netns, () => l.socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (fd < 0) throw new BpfError('socket for the namespace cookie', l.errno());
  try {
    const val = Buffer.alloc(8);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(8);
    if ((c().getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, val, len) as number) !== 0) {
      throw new BpfError('getsockopt(SO_NETNS_COOKIE)', koffi().errno());
    }
    return val.readBigUInt64LE(0);
  } finally {
    l.close(fd);
  }
}
