// Programs on netkit devices (Linux 6.7) through BPF_PROG_ATTACH on the
// device's multi-program list (bpf_mprog). libbpf 1.1 has no
// bpf_program__attach_netkit, but its bpf_prog_attach_opts, bpf_prog_query
// and bpf_prog_detach2 pass the ifindex and attach type through unchanged.
//
// Why an attachment and not a bpf_link: a link lives only as long as an fd or
// a bpffs pin holds it, and the plugin that attaches exits at once. A pinned
// link per pod would be one more object that DEL, GC and uninstall must find
// and remove, and that outlives its device when they do not. A program
// attached this way belongs to the device, like a tc filter on a veth: it goes
// when the pair is deleted, and is replaced in place (BPF_F_REPLACE, atomic)
// when bvcnid loads new programs.
//
// The kernel resolves the ifindex in the calling thread's namespace, so every
// call can run inside another one (maybeInNetns).
import { bpf, closeFd } from './bindings.js';
import { BpfError, check, Errno } from './errors.js';
import { maybeInNetns } from './netns.js';
import type { BpfProgram } from './program.js';

/** enum bpf_attach_type (include/uapi/linux/bpf.h, Linux 6.7). */
export const NetkitAttach = {
  /** Runs on what the primary (the host end) transmits: traffic towards the pod. */
  primary: 54,
  /** Runs on what the peer (the pod's end) transmits: everything the pod sends. */
  peer: 55,
} as const;
export type NetkitSide = keyof typeof NetkitAttach;

const BPF_F_REPLACE = 1 << 2;
const { ENOENT, ENODEV } = Errno;

export interface NetkitTarget {
  /** The primary's ifindex (the kernel refuses the peer's: EACCES). */
  ifindex: number;
  side: NetkitSide;
  /** Network namespace of the primary; default: the current one. */
  netns?: string;
}

function describe(t: NetkitTarget): string {
  return `netkit #${t.ifindex} ${t.side}${t.netns ? ` in ${t.netns}` : ''}`;
}

function queryHere(t: NetkitTarget): number[] {
  const ids = new Uint32Array(16);
  const cnt = new Uint32Array([ids.length]);
  const flags = new Uint32Array(1);
  const ret = bpf().bpf_prog_query(t.ifindex, NetkitAttach[t.side], 0, flags, ids, cnt) as number;
  check(`query ${describe(t)}`, ret);
  return Array.from(ids.subarray(0, cnt[0]));
}

/** Ids of the programs attached, in run order. */
export function queryNetkit(t: NetkitTarget): number[] {
  return maybeInNetns(t.netns, () => queryHere(t));
}

function withProgById<T>(id: number, fn: (fd: number) => T): T | undefined {
  const fd = bpf().bpf_prog_get_fd_by_id(id) as number;
  if (fd < 0) {
    if (-fd === ENOENT) return undefined; // gone since the query
    check(`open program #${id}`, fd);
  }
  try {
    return fn(fd);
  } finally {
    closeFd(fd);
  }
}

/**
 * Makes `program` the one program on this side: attached when there is none,
 * else put in place of the first one (atomically: no packet runs without a
 * program). Returns the program id attached.
 */
export function attachNetkit(t: NetkitTarget & { program: BpfProgram }): number {
  return maybeInNetns(t.netns, () => {
    const type = NetkitAttach[t.side];
    const current = queryHere(t);
    const opts = Buffer.alloc(16); // struct bpf_prog_attach_opts (libbpf 1.1): sz, flags, replace_prog_fd
    opts.writeBigUInt64LE(16n, 0);
    if (current.includes(t.program.id)) return t.program.id;
    const old = current[0];
    if (old === undefined) {
      check(`attach program to ${describe(t)}`, bpf().bpf_prog_attach_opts(t.program.fd, t.ifindex, type, opts) as number);
      return t.program.id;
    }
    const done = withProgById(old, (oldFd) => {
      opts.writeUInt32LE(BPF_F_REPLACE, 8);
      opts.writeInt32LE(oldFd, 12);
      check(`replace program #${old} on ${describe(t)}`, bpf().bpf_prog_attach_opts(t.program.fd, t.ifindex, type, opts) as number);
      return true;
    });
    if (!done) check(`attach program to ${describe(t)}`, bpf().bpf_prog_attach_opts(t.program.fd, t.ifindex, type, Buffer.concat([opts.subarray(0, 8), Buffer.alloc(8)])) as number);
    return t.program.id;
  });
}

/** Detaches every program on this side; tolerant of a device already gone. */
export function detachNetkit(t: NetkitTarget): void {
  maybeInNetns(t.netns, () => {
    let ids: number[];
    try {
      ids = queryHere(t);
    } catch (e) {
      if (e instanceof BpfError && (e.errno === ENODEV || e.errno === ENOENT)) return;
      throw e;
    }
    for (const id of ids) {
      withProgById(id, (fd) => {
        const ret = bpf().bpf_prog_detach2(fd, t.ifindex, NetkitAttach[t.side]) as number;
        if (ret < 0 && -ret !== ENOENT && -ret !== ENODEV) check(`detach program #${id} from ${describe(t)}`, ret);
      });
    }
  });
}
