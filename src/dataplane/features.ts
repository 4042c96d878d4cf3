// The kernel features the dataplane needs, probed by trying them rather than
// read from the version number (distribution kernels backport, and disable,
// what they like): each feature is a tiny program in dist/bpf/probes/ that
// the verifier must accept (and, where the kernel decides at run time, that
// must answer yes when run once with BPF_PROG_TEST_RUN), or an attach in a
// throwaway network namespace. Nothing a probe creates outlives it.
//
// A required feature that is missing makes bvcnid refuse to start, before it
// creates anything, with a message naming the feature and the first mainline
// kernel that has it. A feature with a fallback is reported and the fallback
// is used (the programs already take it when the feature is absent).
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BpfObject, Errno, VerifierError, attachNetkit, attachTc, testRun } from '../../loader/index.js';
import { createNetkit, getLink } from '../netlink/rtnl.js';
import { socketIn } from '../netlink/socket.js';
import type { PodDevice } from './endpoint.js';
import { defaultObjDir } from './layout.js';

/** What a probe answers: yes, no, or could not tell (the probe itself failed to run). */
export type FeatureState = 'yes' | 'no' | 'unknown';

export interface FeatureSpec {
  id: string;
  /** What the feature is, as the refusal and the tables name it. */
  name: string;
  /** The first mainline Linux release that has it. */
  since: string;
  /** What bvcni uses it for. */
  usedFor: string;
  /** Absent from required features means refusal; else what bvcni does instead, and what that costs. */
  fallback?: string;
  /**
   * The verifier (or libbpf) refusing the probe means the feature is absent, not that
   * the programs would not load: bvcnid then loads a build that does not use it
   * (the conntrack kfuncs: dist/bpf/noct/, see programSet()).
   */
  rejectedMeansAbsent?: boolean;
  probe: Probe;
}

type Probe =
  | { kind: 'file'; path: string }
  /** Loaded; `run` also test-runs it and wants PROBE_YES (bpf/probes/probe.h). */
  | { kind: 'object'; object: string; run?: boolean }
  | { kind: 'attach'; object: string }
  /** A netkit pair made over rtnetlink, the object's program attached as its peer program. */
  | { kind: 'netkit'; object: string };

/** A probe's answer. `rejected`: the verifier refused the probe, which uses the feature as the programs do. */
interface Answer {
  state: FeatureState;
  detail?: string;
  rejected?: boolean;
}

export interface FeatureResult {
  id: string;
  name: string;
  since: string;
  required: boolean;
  state: FeatureState;
  /** Why a probe said no or could not tell (the verifier's last line, an errno). */
  detail?: string;
  /** The fallback in use, when the feature is absent and one exists. */
  fallback?: string;
}

export interface KernelFeatures {
  kernel: string;
  features: FeatureResult[];
  /** Required features that are absent: bvcnid must not start. */
  missing: FeatureResult[];
  /** Features with a fallback that are absent: bvcnid starts and says so. */
  degraded: FeatureResult[];
}

// bpf/probes/probe.h
const PROBE_YES = 1;

export const FEATURES: readonly FeatureSpec[] = [
  {
    id: 'btf',
    name: 'kernel BTF (/sys/kernel/btf/vmlinux)',
    since: '5.4',
    usedFor: 'CO-RE relocations (conntrack.h reads struct nf_conn) and kfunc resolution',
    probe: { kind: 'file', path: '/sys/kernel/btf/vmlinux' },
  },
  {
    id: 'tc-helpers',
    name: 'tc BPF programs with bpf_fib_lookup and tunnel keys',
    since: '4.18',
    usedFor: 'every program: masquerade next hop, the VXLAN device fallback, checksums',
    probe: { kind: 'object', object: 'base.o' },
  },
  {
    id: 'clsact',
    name: 'clsact qdisc with direct-action tc BPF attach',
    since: '4.5',
    usedFor: 'attaching the programs to the uplink, the VXLAN device and pod veths',
    probe: { kind: 'attach', object: 'base.o' },
  },
  {
    id: 'lpm-trie',
    name: 'LPM trie maps',
    since: '4.11',
    usedFor: 'the tunnel map (remote podCIDR → node)',
    probe: { kind: 'object', object: 'lpm_trie.o' },
  },
  {
    id: 'lru-hash',
    name: 'LRU hash maps',
    since: '4.10',
    usedFor: 'the NAT map',
    probe: { kind: 'object', object: 'lru_hash.o' },
  },
  {
    id: 'redirect-peer',
    name: 'bpf_redirect_peer',
    since: '5.10',
    usedFor: 'delivering packets straight into a pod',
    probe: { kind: 'object', object: 'redirect_peer.o' },
  },
  {
    id: 'redirect-neigh',
    name: 'bpf_redirect_neigh with a next hop',
    // The helper came in 5.10 and its next-hop argument with a fix in the same cycle (ba452c9e996d, 5.10-rc1).
    since: '5.10',
    usedFor: 'sending encapsulated and masqueraded packets to the uplink',
    probe: { kind: 'object', object: 'redirect_neigh.o', run: true },
  },
  {
    id: 'ktime-coarse',
    name: 'bpf_ktime_get_coarse_ns',
    since: '5.11',
    usedFor: 'NAT idle timers and the next-hop cache',
    probe: { kind: 'object', object: 'ktime_coarse.o' },
  },
  {
    id: 'adjust-room-encap',
    name: 'bpf_skb_adjust_room with the encapsulation flags (ENCAP_L2_ETH)',
    // BPF_F_ADJ_ROOM_ENCAP_L2_ETH was applied in March 2021, after 5.12's merge window: 5.13.
    since: '5.13',
    usedFor: 'pushing and stripping VXLAN headers in the programs',
    fallback:
      'every cross-node packet goes through the VXLAN device (bpf_skb_set_tunnel_key) instead of being ' +
      'encapsulated by the program: slower, same behaviour',
    probe: { kind: 'object', object: 'adjust_room.o', run: true },
  },
  {
    id: 'ct-kfuncs',
    name: 'conntrack kfuncs for tc (bpf_skb_ct_lookup)',
    since: '5.18',
    usedFor: 'sending replies of flows the host translated (Service backends) up the stack, where conntrack undoes the NAT',
    fallback:
      'bvcnid loads the programs built without conntrack (dist/bpf/noct/): replies of flows the host translated ' +
      'are delivered past the host stack like any other, which is correct while nothing on the node NATs pod ' +
      'traffic, but with kube-proxy a reply from a Service backend reaches the pod without its DNAT undone. ' +
      'When nf_conntrack (a module on Debian) is loaded later, bvcnid notices and switches to the conntrack programs in place',
    rejectedMeansAbsent: true,
    probe: { kind: 'object', object: 'ct_kfunc.o', run: true },
  },
  {
    id: 'netkit',
    name: 'netkit devices with BPF programs (BPF_NETKIT_PEER)',
    since: '6.7',
    usedFor: "pods' interfaces (--pod-device auto): the pod program runs in the pair's transmit path, no veth hop",
    fallback: 'pods get veth pairs, the pod program on the host veth\'s tc ingress (one more queue per packet a pod sends)',
    probe: { kind: 'netkit', object: 'base.o' },
  },
];

/** An Ethernet + IPv4 + UDP packet, enough for the run-time probes. */
function probePacket(): Buffer {
  const p = Buffer.alloc(14 + 20 + 8 + 32);
  p.writeUInt16BE(0x0800, 12);
  p[14] = 0x45;
  p.writeUInt16BE(p.length - 14, 16);
  p[22] = 64;
  p[23] = 17; // UDP
  p.writeUInt32BE(0x0a000001, 26);
  p.writeUInt32BE(0x0a000002, 30);
  p.writeUInt16BE(40000, 34);
  p.writeUInt16BE(40001, 36);
  p.writeUInt16BE(p.length - 34, 38);
  return p;
}

function reason(e: unknown): string {
  if (e instanceof VerifierError) {
    const lines = e.log.trim().split('\n').filter((l) => l && !/^(processed|verification time)/.test(l));
    return `verifier: ${lines.at(-1) ?? e.message}`;
  }
  return (e as Error).message;
}

async function probeObject(path: string, runIt: boolean): Promise<Answer> {
  if (!existsSync(path)) return { state: 'unknown', detail: `probe ${path} not found` };
  let obj: BpfObject | undefined;
  try {
    obj = BpfObject.open(path);
    try {
      obj.load();
    } catch (e) {
      return { state: 'no', detail: reason(e), rejected: true };
    }
    if (!runIt) return { state: 'yes' };
    using prog = obj.program('probe');
    const r = testRun(prog, { data: probePacket() });
    return r.retval === PROBE_YES ? { state: 'yes' } : { state: 'no', detail: `probe answered ${r.retval}` };
  } catch (e) {
    return { state: 'unknown', detail: reason(e) };
  } finally {
    obj?.close();
  }
}

/**
 * Runs fn with the path of a network namespace of a child process
 * (`unshare --net sleep`): when the child is killed the namespace, and
 * whatever fn made in it (a clsact, a filter, devices), goes with it.
 */
async function inThrowawayNetns(fn: (ns: string) => Answer): Promise<Answer> {
  const child = spawn('unshare', ['--net', 'sleep', '30'], { stdio: 'ignore' });
  const spawned = new Promise<Error | undefined>((res) => {
    child.once('spawn', () => res(undefined));
    child.once('error', (e) => res(e));
  });
  try {
    const err = await spawned;
    if (err) return { state: 'unknown', detail: `cannot make a throwaway network namespace: ${err.message}` };
    const ns = `/proc/${child.pid}/ns/net`;
    const own = readlinkSync('/proc/self/ns/net');
    for (let i = 0; i < 400; i++) {
      if (child.exitCode !== null) return { state: 'unknown', detail: `unshare --net exited ${child.exitCode}` };
      try {
        if (readlinkSync(ns) !== own) break;
      } catch {
        /* not there yet */
      }
      await sleep(5);
    }
    if (readlinkSync(ns) === own) return { state: 'unknown', detail: 'unshare --net did not enter a new namespace' };
    return fn(ns);
  } catch (e) {
    return { state: 'unknown', detail: reason(e) };
  } finally {
    // Waited for, so the namespace is gone when the probe returns.
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      const exited = new Promise((res) => child.once('exit', res));
      child.kill('SIGKILL');
      await exited;
    }
  }
}

/** Loads the object and attaches it to loopback's ingress in a throwaway namespace. */
async function probeAttach(path: string): Promise<Answer> {
  if (!existsSync(path)) return { state: 'unknown', detail: `probe ${path} not found` };
  return inThrowawayNetns((ns) => {
    using obj = BpfObject.open(path);
    obj.load();
    using prog = obj.program('probe');
    try {
      attachTc({ ifname: 'lo', netns: ns, direction: 'ingress', program: prog });
    } catch (e) {
      return { state: 'no', detail: reason(e) };
    }
    return { state: 'yes' };
  });
}

const { EOPNOTSUPP } = Errno;

/**
 * Creates a netkit pair in a throwaway namespace over rtnetlink, as the plugin
 * does, and attaches the object's program as the pair's peer program. A kernel
 * without netkit refuses the link kind (EOPNOTSUPP: no such rtnl_link_ops);
 * one with netkit but no BPF_NETKIT_PEER attach cannot exist (they came together).
 */
async function probeNetkit(path: string): Promise<Answer> {
  if (!existsSync(path)) return { state: 'unknown', detail: `probe ${path} not found` };
  return inThrowawayNetns((ns) => {
    const s = socketIn(ns);
    let primary: number | undefined;
    try {
      try {
        createNetkit(s, { hostName: 'nkprobe0', podName: 'nkprobe1', podMac: '02:00:00:00:00:02', hostMac: '02:00:00:00:00:01', mtu: 1500 });
      } catch (e) {
        const errno = (e as { errno?: number }).errno;
        return { state: errno === EOPNOTSUPP ? 'no' : 'unknown', detail: reason(e) };
      }
      primary = getLink(s, 'nkprobe0')?.index;
    } finally {
      s.close();
    }
    if (!primary) return { state: 'unknown', detail: 'the netkit pair vanished after creation' };
    using obj = BpfObject.open(path);
    obj.load();
    using prog = obj.program('probe');
    try {
      attachNetkit({ ifindex: primary, netns: ns, side: 'peer', program: prog });
    } catch (e) {
      return { state: 'no', detail: reason(e) };
    }
    return { state: 'yes' };
  });
}

async function probeOne(spec: FeatureSpec, dir: string): Promise<Answer> {
  const p = spec.probe;
  switch (p.kind) {
    case 'file':
      return existsSync(p.path) ? { state: 'yes' } : { state: 'no', detail: `${p.path} does not exist` };
    case 'object':
      return probeObject(join(dir, p.object), p.run ?? false);
    case 'attach':
      return probeAttach(join(dir, p.object));
    case 'netkit':
      return probeNetkit(join(dir, p.object));
  }
}

/** Turns probe answers into the table: what is missing, what falls back. */
export function summarize(
  kernel: string,
  specs: readonly FeatureSpec[],
  answers: ReadonlyMap<string, Answer>,
): KernelFeatures {
  const features = specs.map((s): FeatureResult => {
    const a = answers.get(s.id) ?? { state: 'unknown' as const, detail: 'not probed' };
    // A fallback covers a feature the programs find absent and step around. A probe the
    // verifier rejects uses the feature exactly as the programs do: they would not load
    // either, unless a build without the feature exists (rejectedMeansAbsent).
    const fallbackApplies = !!s.fallback && (!a.rejected || !!s.rejectedMeansAbsent);
    const detail =
      a.rejected && s.fallback && !s.rejectedMeansAbsent ? `the verifier rejects the programs' use of it: ${a.detail ?? ''}` : a.detail;
    return {
      id: s.id,
      name: s.name,
      since: s.since,
      required: !fallbackApplies,
      state: a.state,
      ...(detail ? { detail } : {}),
      ...(a.state !== 'yes' && fallbackApplies ? { fallback: s.fallback } : {}),
    };
  });
  return {
    kernel,
    features,
    // "unknown" is not a refusal: a probe that could not run (no unshare) must not stop a working node.
    missing: features.filter((f) => f.required && f.state === 'no'),
    degraded: features.filter((f) => !f.required && f.state === 'no'),
  };
}

/** The release a version list needs: the newest `since` among them. */
export function newestSince(features: readonly { since: string }[]): string {
  const key = (v: string): number[] => v.split('.').map(Number);
  let best = '0';
  for (const f of features) {
    const [a, b] = [key(f.since), key(best)];
    if ((a[0] ?? 0) > (b[0] ?? 0) || ((a[0] ?? 0) === (b[0] ?? 0) && (a[1] ?? 0) > (b[1] ?? 0))) best = f.since;
  }
  return best;
}

/** bvcni's kernel floor: the newest release among the required features. */
export const KERNEL_FLOOR = newestSince(FEATURES.filter((f) => !f.fallback));

/** The message bvcnid refuses with; undefined when nothing required is missing. */
export function refusalMessage(k: KernelFeatures): string | undefined {
  if (!k.missing.length) return undefined;
  const list = k.missing.map((f) => `${f.name} (Linux ${f.since}${f.detail ? `; ${f.detail}` : ''})`).join(', ');
  return (
    `kernel ${k.kernel} lacks what bvcni needs: ${list}. ` +
    `bvcni needs Linux ${KERNEL_FLOOR} or newer with these features; nothing was installed.`
  );
}

/** One line per feature, for the start-up log and bvcnictl status. */
export function formatFeatures(k: KernelFeatures): string[][] {
  return k.features.map((f) => [
    f.name,
    f.since,
    f.state === 'yes' ? 'yes' : f.state === 'no' ? (f.required ? 'NO (required)' : 'no: fallback in use') : 'unknown',
    f.detail ?? '',
  ]);
}

/**
 * Why this process cannot tell what the kernel lacks, or undefined when it can.
 * Without CAP_SYS_ADMIN (or CAP_BPF with CAP_PERFMON) the kernel refuses to load
 * the probes, or its verifier holds them to the unprivileged rules, and without
 * CAP_NET_ADMIN it refuses the attach probe: the answer
 * would be about the process, not the kernel, so every feature is "unknown"
 * (no refusal; the set-up then fails, naming what it was refused).
 */
function probingPrivilegesLacking(): string | undefined {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  const eff = m ? BigInt(`0x${m[1]}`) : 0n;
  const has = (bit: number): boolean => ((eff >> BigInt(bit)) & 1n) === 1n;
  const [CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF] = [12, 21, 38, 39];
  if (!has(CAP_NET_ADMIN)) return 'not probed: bvcnid lacks CAP_NET_ADMIN';
  if (has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))) return undefined;
  return 'not probed: bvcnid lacks CAP_SYS_ADMIN (or CAP_BPF with CAP_PERFMON)';
}

/**
 * Which build of the programs bvcnid loads: 'conntrack' (dist/bpf/*.o, calling
 * the conntrack kfuncs) only where the ct-kfuncs probe, which calls them the
 * same way, loaded and answered yes; else 'no-conntrack' (dist/bpf/noct/*.o,
 * -DBVCNI_NO_CT), which loads on every kernel above the floor. An 'unknown'
 * probe picks no-conntrack too: it is the set that loads whatever the answer.
 */
export type ProgramSetName = 'conntrack' | 'no-conntrack';

export interface ProgramSet {
  name: ProgramSetName;
  /** Where its bpf_pod.o, bpf_overlay.o and bpf_host.o are. */
  dir: string;
}

/** The conntrack-free build's directory inside an object directory (the Makefile's BPF_NOCT_OBJ). */
export const NO_CT_SUBDIR = 'noct';

export function programSetDir(name: ProgramSetName, objDir: string = defaultObjDir()): string {
  return name === 'conntrack' ? objDir : join(objDir, NO_CT_SUBDIR);
}

export function programSet(k: KernelFeatures, objDir?: string): ProgramSet {
  const name: ProgramSetName = k.features.find((f) => f.id === 'ct-kfuncs')?.state === 'yes' ? 'conntrack' : 'no-conntrack';
  return { name, dir: programSetDir(name, objDir) };
}

/** Probes the conntrack kfuncs alone, afresh (conntrack may have appeared since start-up). */
export async function probeConntrack(objDir?: string): Promise<FeatureState> {
  const k = await probeKernelFeatures({ specs: FEATURES.filter((f) => f.id === 'ct-kfuncs'), ...(objDir ? { objDir } : {}) });
  return k.features[0]?.state ?? 'unknown';
}

/**
 * The set the kernel loads as it is now, by the conntrack probe alone, afresh
 * (~one small program load): what ensureNodeDataplane loads when not told
 * (the simulator, the demo, tests). bvcnid decides once, with the whole table
 * (daemon/kernel.ts), and again when conntrack appears (daemon/conntrack-watch.ts).
 */
export async function currentProgramDir(objDir: string = defaultObjDir()): Promise<string> {
  const ct = await probeConntrack(join(objDir, 'probes'));
  return programSetDir(ct === 'yes' ? 'conntrack' : 'no-conntrack', objDir);
}

/** bvcnid's --pod-device: a kind of pair, or auto (netkit where the kernel has it). */
export type PodDeviceChoice = PodDevice | 'auto';

/**
 * What pods get on this kernel: the device asked for, auto resolved by the
 * netkit probe ('unknown' counts as no: a veth works everywhere). An error
 * (bvcnid refuses) when netkit is asked for and the kernel lacks it.
 */
export function choosePodDevice(k: KernelFeatures, want: PodDeviceChoice): { device: PodDevice; why: string } | { error: string } {
  const nk = k.features.find((f) => f.id === 'netkit');
  const has = nk?.state === 'yes';
  if (want === 'veth') return { device: 'veth', why: '--pod-device veth' };
  if (want === 'netkit') {
    if (has) return { device: 'netkit', why: '--pod-device netkit' };
    return { error: `--pod-device netkit: kernel ${k.kernel} ${nk?.state === 'no' ? 'lacks' : 'could not be probed for'} netkit (Linux 6.7${nk?.detail ? `; ${nk.detail}` : ''})` };
  }
  return has ? { device: 'netkit', why: 'auto: the kernel has netkit' } : { device: 'veth', why: `auto: netkit ${nk?.state === 'no' ? 'absent' : 'not probed'} (Linux 6.7)` };
}

let memo: Promise<KernelFeatures> | undefined;

/**
 * Probes every feature once per process (the kernel does not change under a
 * running daemon). `objDir` is where bpf/probes/ was built to (dist/bpf/probes).
 */
export function probeKernelFeatures(opts: { objDir?: string; specs?: readonly FeatureSpec[] } = {}): Promise<KernelFeatures> {
  const fresh = opts.objDir !== undefined || opts.specs !== undefined;
  if (!fresh && memo) return memo;
  const p = (async () => {
    const dir = opts.objDir ?? join(defaultObjDir(), 'probes');
    const specs = opts.specs ?? FEATURES;
    const answers = new Map<string, Answer>();
    const lacking = probingPrivilegesLacking();
    // One at a time: the attach probe enters another namespace, the others must not see that.
    for (const s of specs) answers.set(s.id, lacking ? { state: 'unknown', detail: lacking } : await probeOne(s, dir));
    return summarize(release(), specs, answers);
  })();
  if (!fresh) memo = p;
  return p;
}
