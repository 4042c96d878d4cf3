// What a container in the DaemonSet gets from its securityContext, applied to a
// process of the simulator (which runs in a node namespace, not in a container):
// - capabilities: `drop: [ALL]` + `add: [...]` → the bounding set, for uid 0
//   also the permitted and effective sets after exec (setpriv);
// - readOnlyRootFilesystem → `/` read-only in a mount namespace of its own, with
//   the paths its writable volumes stand for bound read-write;
// - /proc/sys read-only, as the runtime mounts it in every unprivileged container;
// - allowPrivilegeEscalation: false → no_new_privs.
// Mount changes stay in that namespace (slave: the host's new mounts, such as a
// pod's /run/netns entry, still appear in it, as with HostToContainer). What is
// not emulated: the seccomp profile, the image's own filesystem, pid/ipc/uts
// namespaces (hostNetwork pods share the node's network namespace, as here).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

export interface ContainerSecurity {
  /** Capabilities added after `drop: [ALL]`, as the manifest spells them (NET_ADMIN). */
  caps: readonly string[];
  readOnlyRootFilesystem: boolean;
  /** allowPrivilegeEscalation: false. */
  noNewPrivs: boolean;
  /** Host paths the container's read-write volumes stand for. */
  writable: readonly string[];
}

const SCRIPT = [
  'while [ "$1" != -- ]; do mount --bind "$1" "$1"; shift; done; shift',
  'if [ "$RO_ROOT" = 1 ]; then mount -o remount,bind,ro /; fi',
  'mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys',
  'exec "$@"',
].join('\n');

/** argv that runs `argv` as the container would (root, with only its capabilities). */
export function inContainer(sec: ContainerSecurity, argv: readonly string[]): string[] {
  const bounding = ['-all', ...sec.caps.map((c) => `+${c.toLowerCase()}`)].join(',');
  const setpriv = ['setpriv', `--bounding-set=${bounding}`, '--inh-caps=-all', '--ambient-caps=-all', ...(sec.noNewPrivs ? ['--no-new-privs'] : []), '--'];
  return [
    'env',
    `RO_ROOT=${sec.readOnlyRootFilesystem ? 1 : 0}`,
    'unshare',
    '--mount',
    '--propagation',
    'slave',
    '--',
    'sh',
    '-ec',
    SCRIPT,
    'container',
    ...sec.writable,
    '--',
    ...setpriv,
    ...argv,
  ];
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };
const asObj = (v: Json | undefined): Obj => (v && typeof v === 'object' && !Array.isArray(v) ? v : {});
const asArr = (v: Json | undefined): Json[] => (Array.isArray(v) ? v : []);

export const MANIFEST = fileURLToPath(new URL('../../deploy/bvcni.yaml', import.meta.url));

export interface ManifestContainer {
  name: string;
  init: boolean;
  args: string[];
  command: string[];
  privileged: boolean;
  caps: string[];
  capsDropped: string[];
  readOnlyRootFilesystem: boolean;
  noNewPrivs: boolean;
  /** mountPath → whether it is mounted read-write. */
  mounts: Map<string, boolean>;
  raw: Obj;
}

/** The bvcni DaemonSet's containers (init containers first), as the runtime would set them up. */
export function manifestContainers(text = readFileSync(MANIFEST, 'utf8')): ManifestContainer[] {
  const ds = parseAllDocuments(text)
    .map((d) => d.toJS() as Obj)
    .find((o) => o?.kind === 'DaemonSet');
  if (!ds) throw new Error(`no DaemonSet in ${MANIFEST}`);
  const pod = asObj(asObj(asObj(ds.spec).template).spec);
  const one = (c: Obj, init: boolean): ManifestContainer => {
    const sc = asObj(c.securityContext);
    const caps = asObj(sc.capabilities);
    return {
      name: String(c.name),
      init,
      args: asArr(c.args).map(String),
      command: asArr(c.command).map(String),
      privileged: sc.privileged === true,
      caps: asArr(caps.add).map(String),
      capsDropped: asArr(caps.drop).map(String),
      readOnlyRootFilesystem: sc.readOnlyRootFilesystem === true,
      noNewPrivs: sc.allowPrivilegeEscalation === false,
      mounts: new Map(asArr(c.volumeMounts).map((m) => [String(asObj(m).mountPath), asObj(m).readOnly !== true] as const)),
      raw: c,
    };
  };
  return [...asArr(pod.initContainers).map((c) => one(asObj(c), true)), ...asArr(pod.containers).map((c) => one(asObj(c), false))];
}

export function manifestContainer(name: string): ManifestContainer {
  const c = manifestContainers().find((x) => x.name === name);
  if (!c) throw new Error(`no container ${name} in ${MANIFEST}`);
  return c;
}

/**
 * The container's security, with its read-write mounts mapped to the
 * simulator's paths. Every read-write mount must be mapped (bpffs excepted: a
 * mount of its own that stays writable), so a new writable volume in the
 * manifest cannot go unnoticed by the test that uses this.
 */
export function securityOf(c: ManifestContainer, hostPathOf: Record<string, string>): ContainerSecurity {
  if (c.capsDropped.join() !== 'ALL') throw new Error(`${c.name}: capabilities.drop is not [ALL]`);
  const writable: string[] = [];
  for (const [mountPath, rw] of c.mounts) {
    if (!rw || mountPath === '/sys/fs/bpf') continue;
    const host = hostPathOf[mountPath];
    if (!host) throw new Error(`${c.name} mounts ${mountPath} read-write: map it to a simulator path`);
    writable.push(host);
  }
  return { caps: c.caps, readOnlyRootFilesystem: c.readOnlyRootFilesystem, noNewPrivs: c.noNewPrivs, writable };
}
