// Where things live: object files, program names, pin paths, tc slots. One
// place, so the daemon, the plugin and the CLI never repeat a string.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** One entry per attach point: object file, program in it, pin file name. */
export const Programs = {
  pod: { object: 'bpf_pod.o', program: 'pod_from_container', pin: 'prog_pod' },
  overlayIngress: { object: 'bpf_overlay.o', program: 'overlay_from_tunnel', pin: 'prog_overlay_ingress' },
  overlayEgress: { object: 'bpf_overlay.o', program: 'overlay_to_tunnel', pin: 'prog_overlay_egress' },
  uplinkIngress: { object: 'bpf_host.o', program: 'host_from_uplink', pin: 'prog_uplink_ingress' },
  // What the host sends a pod: its host veth's tc egress or its netkit primary (NetworkPolicy for Services, the node's own).
  toPod: { object: 'bpf_to_pod.o', program: 'host_to_pod', pin: 'prog_to_pod' },
} as const;
export type ProgramSlot = keyof typeof Programs;

export const OBJECTS = ['bpf_pod.o', 'bpf_overlay.o', 'bpf_host.o', 'bpf_to_pod.o'] as const;
/**
 * Objects of ABI 2 only (NetworkPolicy): the ABI 1 build (--prepare-downgrade)
 * has none, and the migration to it skips them; removeToPodProgram takes the
 * program away once the ABI 1 programs run.
 */
export const ABI2_ONLY_OBJECTS: readonly string[] = ['bpf_to_pod.o'];
/** The slots every dataplane pins, whatever its ABI: what readiness waits for (--prepare-downgrade unpins the others). */
export const REQUIRED_SLOTS: readonly ProgramSlot[] = (Object.keys(Programs) as ProgramSlot[]).filter((s) => !ABI2_ONLY_OBJECTS.includes(Programs[s].object));

/** The programs built against ABI 1's layouts (-DBVCNI_ABI_COMPAT=1), under the objects' directory: --prepare-downgrade. */
export const ABI1_SUBDIR = 'abi1';

/**
 * The node's socket program (bpf/bpf_sock.c): hostPorts for the node's own
 * processes, attached to the cgroup v2 root (cgroup2Root) through a pinned link.
 */
export const SockProgram = { object: 'bpf_sock.o', program: 'sock_connect4', linkPin: 'link_sock_connect4', netnsMap: 'sock_node_netns' } as const;
/**
 * The cgroup v2 hierarchy's root as mounted here: /sys/fs/cgroup on a unified
 * host, /sys/fs/cgroup/unified on a hybrid one (systemd's v1 + v2 layout);
 * undefined without cgroup v2.
 */
export function cgroup2Root(mounts = readProcMounts()): string | undefined {
  const roots = mounts
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[2] === 'cgroup2')
    .map((f) => f[1]!);
  return roots.find((r) => r === '/sys/fs/cgroup') ?? roots[0];
}

function readProcMounts(): string {
  try {
    return readFileSync('/proc/self/mounts', 'utf8');
  } catch {
    return '';
  }
}

/**
 * Our tc filters use their own handle so they never replace someone else's
 * filter at the default (handle 1, priority 1) slot.
 */
export const TC_HANDLE = 0xb7c1;
export const TC_PRIORITY = 1;

export function programPin(pinDir: string, slot: ProgramSlot): string {
  return join(pinDir, Programs[slot].pin);
}

/**
 * The compiled objects: $BVCNI_BPF_DIR, else dist/bpf of the repo (running
 * from source), else bpf/ beside the bundle or the executable.
 */
export function defaultObjDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [
    process.env.BVCNI_BPF_DIR,
    resolve(here, '../../dist/bpf'), // src/dataplane -> dist/bpf
    resolve(here, '../bpf'), // dist/bin -> dist/bpf
    join(dirname(process.execPath), 'bpf'),
  ].filter((d): d is string => !!d);
  for (const d of candidates) if (existsSync(join(d, 'bpf_pod.o'))) return d;
  throw new Error(`BPF objects not found (looked in ${candidates.join(', ')}); run make build or set BVCNI_BPF_DIR`);
}
