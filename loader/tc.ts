// tc clsact attachment in direct-action mode through libbpf's bpf_tc_* API
// (tcx needs libbpf ≥ 1.3; Debian 12 ships 1.1). Every call can run inside
// another network namespace: libbpf opens its netlink socket on the calling
// thread, which withNetns has switched.
import { bpf, c } from './bindings.js';
import { BpfError, check, Errno } from './errors.js';
import { maybeInNetns } from './netns.js';
import type { BpfProgram } from './program.js';

export type TcDirection = 'ingress' | 'egress';

export interface TcTarget {
  ifname?: string;
  ifindex?: number;
  /** Network namespace path (/run/netns/X, /proc/PID/ns/net); default: the current one. */
  netns?: string;
}

export interface TcAttachment {
  readonly ifindex: number;
  readonly netns?: string;
  readonly direction: TcDirection;
  readonly handle: number;
  readonly priority: number;
  readonly progId: number;
  /** Whether this attach created the clsact qdisc (so detach may remove it). */
  readonly createdHook: boolean;
  detach(): void;
}

const { ENOENT, ENODEV, EEXIST, EINVAL } = Errno;
const ATTACH_POINT: Record<TcDirection, number> = { ingress: 1, egress: 2 };
const BOTH = 3;
const BPF_TC_F_REPLACE = 1;

function hook(ifindex: number, point: number): Buffer {
  const b = Buffer.alloc(24); // struct bpf_tc_hook
  b.writeBigUInt64LE(24n, 0);
  b.writeInt32LE(ifindex, 8);
  b.writeUInt32LE(point, 12);
  return b;
}

function opts(fields: { progFd?: number; flags?: number; handle?: number; priority?: number }): Buffer {
  const b = Buffer.alloc(32); // struct bpf_tc_opts
  b.writeBigUInt64LE(32n, 0);
  b.writeInt32LE(fields.progFd ?? 0, 8);
  b.writeUInt32LE(fields.flags ?? 0, 12);
  b.writeUInt32LE(fields.handle ?? 0, 20);
  b.writeUInt32LE(fields.priority ?? 0, 24);
  return b;
}

function describe(t: TcTarget): string {
  return `${t.ifname ?? `ifindex ${t.ifindex}`}${t.netns ? ` in ${t.netns}` : ''}`;
}

/** Resolves the interface in the current namespace (callers wrap in maybeInNetns). */
function resolveHere(t: TcTarget): number {
  if (t.ifindex !== undefined) return t.ifindex;
  if (!t.ifname) throw new TypeError('tc target needs ifname or ifindex');
  const idx = c().if_nametoindex(t.ifname) as number;
  if (!idx) throw new BpfError(`find interface ${describe(t)}`, ENODEV, 'no such interface');
  return idx;
}

export function ifIndex(t: TcTarget): number {
  return maybeInNetns(t.netns, () => resolveHere(t));
}

function ensureHere(ifindex: number, t: TcTarget): boolean {
  const ret = bpf().bpf_tc_hook_create(hook(ifindex, BOTH)) as number;
  if (ret === -EEXIST) return false;
  check(`create clsact on ${describe(t)}`, ret);
  return true;
}

export function ensureClsact(t: TcTarget): { created: boolean } {
  return maybeInNetns(t.netns, () => ({ created: ensureHere(resolveHere(t), t) }));
}

export function attachTc(
  t: TcTarget & {
    direction: TcDirection;
    program: BpfProgram | number;
    priority?: number;
    handle?: number;
    replace?: boolean;
  },
): TcAttachment {
  const progFd = typeof t.program === 'number' ? t.program : t.program.fd;
  const handle = t.handle ?? 1;
  const priority = t.priority ?? 1;
  return maybeInNetns(t.netns, () => {
    const ifindex = resolveHere(t);
    const createdHook = ensureHere(ifindex, t);
    const o = opts({ progFd, handle, priority, flags: t.replace === false ? 0 : BPF_TC_F_REPLACE });
    const ret = bpf().bpf_tc_attach(hook(ifindex, ATTACH_POINT[t.direction]), o) as number;
    if (ret < 0) {
      if (createdHook) bpf().bpf_tc_hook_destroy(hook(ifindex, BOTH));
      check(`attach tc ${t.direction} program on ${describe(t)}`, ret);
    }
    const attachment: TcAttachment = {
      ifindex,
      netns: t.netns,
      direction: t.direction,
      handle,
      priority,
      progId: o.readUInt32LE(16),
      createdHook,
      detach: () => {
        detachTc({ ifindex, netns: t.netns, direction: t.direction, handle, priority });
        // Remove the qdisc only if we made it and nothing else uses it.
        if (createdHook) {
          maybeInNetns(t.netns, () => {
            if (!queryHere(ifindex, 'ingress') && !queryHere(ifindex, 'egress')) {
              bpf().bpf_tc_hook_destroy(hook(ifindex, BOTH));
            }
          });
        }
      },
    };
    return attachment;
  });
}

function queryHere(ifindex: number, direction: TcDirection, handle = 1, priority = 1): number | undefined {
  const o = opts({ handle, priority });
  const ret = bpf().bpf_tc_query(hook(ifindex, ATTACH_POINT[direction]), o) as number;
  if (ret === -ENOENT || ret === -EINVAL || ret === -ENODEV) return undefined;
  check(`query tc ${direction} on ifindex ${ifindex}`, ret);
  return o.readUInt32LE(16);
}
/** The program id attached at (handle, priority), if any. */
export function queryTc(t: TcTarget & { direction: TcDirection; handle?: number; priority?: number }): number | undefined {
  return maybeInNetns(t.netns, () => queryHere(resolveHere(t), t.direction, t.handle ?? 1, t.priority ?? 1));
}

/** Resolves the interface here, or undefined when it is gone (teardown tolerates that). */
function resolveIfPresent(t: TcTarget): number | undefined {
  try {
    return resolveHere(t);
  } catch (e) {
    if (e instanceof BpfError && e.errno === ENODEV) return undefined;
    throw e;
  }
}

/** Removes one filter; tolerant of an interface, hook or filter already gone. */
export function detachTc(t: TcTarget & { direction: TcDirection; priority?: number; handle?: number }): void {
  maybeInNetns(t.netns, () => {
    const ifindex = resolveIfPresent(t);
    if (ifindex === undefined) return;
    const ret = bpf().bpf_tc_detach(
      hook(ifindex, ATTACH_POINT[t.direction]),
      opts({ handle: t.handle ?? 1, priority: t.priority ?? 1 }),
    ) as number;
    if (ret === -ENOENT || ret === -ENODEV || ret === -EINVAL) return;
    check(`detach tc ${t.direction} on ${describe(t)}`, ret);
  });
}

/** Removes the clsact qdisc and with it every tc filter on the interface. */
export function destroyClsact(t: TcTarget): void {
  maybeInNetns(t.netns, () => {
    const ifindex = resolveIfPresent(t);
    if (ifindex === undefined) return;
    const ret = bpf().bpf_tc_hook_destroy(hook(ifindex, BOTH)) as number;
    if (ret === -ENOENT || ret === -EINVAL) return;
    check(`remove clsact on ${describe(t)}`, ret);
  });
}
