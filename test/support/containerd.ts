// A private containerd (its own root, state and socket under a temp dir, the CRI
// plugin off) started inside a simulated node's network namespace, and `ctr run`
// argv for a container built the way the DaemonSet's containers are: host
// network (the node's), a read-only root made of the host's /usr and /etc, the
// runtime's default seccomp profile, exactly the given capabilities.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, type RunResult } from '../../src/common/exec.js';
import { waitFor } from '../../src/common/wait.js';

/** What containerd 1.6 gives a container by default (oci.defaultUnixCaps): dropped one by one, as ctr knows no "ALL". */
const CTR_DEFAULT_CAPS = ['CHOWN', 'DAC_OVERRIDE', 'FSETID', 'FOWNER', 'MKNOD', 'NET_RAW', 'SETGID', 'SETUID', 'SETFCAP', 'SETPCAP', 'NET_BIND_SERVICE', 'SYS_CHROOT', 'KILL', 'AUDIT_WRITE'];

export interface CtrMount {
  src: string;
  dst?: string;
  rw?: boolean;
  /** rslave: mounts made on the host later appear inside (HostToContainer). */
  slave?: boolean;
}

export interface CtrContainer {
  id: string;
  caps: readonly string[];
  mounts: readonly CtrMount[];
  argv: readonly string[];
}

export class PrivateContainerd {
  private proc?: ChildProcess;
  readonly address: string;
  private readonly rootfs: string;

  constructor(
    readonly work: string,
    readonly netns: string,
  ) {
    this.address = join(work, 'containerd.sock');
    this.rootfs = join(work, 'rootfs');
  }

  async start(): Promise<void> {
    writeFileSync(
      join(this.work, 'config.toml'),
      `version = 2\nroot = "${this.work}/root"\nstate = "${this.work}/state"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[plugins."io.containerd.internal.v1.opt"]\n  path = "${this.work}/opt"\n[grpc]\n  address = "${this.address}"\n`,
    );
    this.proc = spawn('/usr/bin/nsenter', [`--net=${this.netns}`, '--', 'containerd', '--config', join(this.work, 'config.toml')], { stdio: 'ignore' });
    await waitFor('containerd socket', async () => existsSync(this.address) && (await this.ctr(['version'], { allowFail: true })).code === 0, { timeoutMs: 30_000 });
    // The image: an empty directory; /usr and /etc come as read-only bind mounts,
    // the merged-/usr links (/bin → usr/bin, …) as the host has them.
    mkdirSync(this.rootfs, { recursive: true });
    for (const l of ['bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32']) {
      const p = `/${l}`;
      if (existsSync(p) && lstatSync(p).isSymbolicLink()) symlinkSync(readlinkSync(p), join(this.rootfs, l));
    }
  }

  ctr(args: readonly string[], opts: { allowFail?: boolean; timeoutMs?: number } = {}): Promise<RunResult> {
    return run(['ctr', '--address', this.address, ...args], { netns: this.netns, ...opts });
  }

  /** `ctr run` argv (run it in the node's namespace): --rm, host network, read-only root, default seccomp, only `caps`. */
  runArgv(c: CtrContainer): string[] {
    const mounts = [
      { src: '/usr' },
      { src: '/etc' },
      ...c.mounts,
    ].flatMap((m) => {
      const opts = ['rbind', m.rw ? 'rw' : 'ro', ...(m.slave ? ['rslave'] : [])].join(':');
      return ['--mount', `type=bind,src=${m.src},dst=${m.dst ?? m.src},options=${opts}`];
    });
    return [
      'ctr', '--address', this.address, 'run', '--rm', '--net-host', '--seccomp', '--read-only',
      // What an image's config would give (there is no image here).
      '--env', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      ...CTR_DEFAULT_CAPS.flatMap((x) => ['--cap-drop', `CAP_${x}`]),
      ...c.caps.flatMap((x) => ['--cap-add', `CAP_${x}`]),
      ...mounts,
      '--rootfs', this.rootfs, c.id, ...c.argv,
    ];
  }

  /** The host pid of a running container's first process. */
  async pid(id: string): Promise<number> {
    const r = await this.ctr(['task', 'ls']);
    const line = r.stdout.split('\n').find((l) => l.split(/\s+/)[0] === id);
    if (!line) throw new Error(`no task ${id}: ${r.stdout}`);
    return Number(line.split(/\s+/)[1]);
  }

  /** Removes every container left, stops containerd, ends our shims by pid. */
  async stop(): Promise<void> {
    const list = await this.ctr(['container', 'ls', '-q'], { allowFail: true });
    for (const id of list.stdout.split('\n').filter(Boolean)) {
      await this.ctr(['task', 'kill', '-s', 'SIGKILL', id], { allowFail: true });
      await this.ctr(['task', 'delete', '-f', id], { allowFail: true });
      await this.ctr(['container', 'delete', id], { allowFail: true });
    }
    const p = this.proc;
    if (p && p.exitCode === null && p.signalCode === null) {
      const done = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await Promise.race([done, new Promise((r) => setTimeout(r, 5000).unref())]);
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    }
    for (const pid of this.shimPids()) process.kill(pid, 'SIGKILL');
  }

  private shimPids(): number[] {
    const out: number[] = [];
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8');
        if (cmd.startsWith('/usr/bin/containerd-shim') && cmd.includes(this.address)) out.push(Number(d));
      } catch {
        /* exited meanwhile */
      }
    }
    return out;
  }
}

/** A checkout's read-only mounts for running its dist/ (node_modules may be a link to another tree). */
export function checkoutMounts(root: string): CtrMount[] {
  const mounts: CtrMount[] = [{ src: root }];
  const nm = join(root, 'node_modules');
  if (existsSync(nm) && lstatSync(nm).isSymbolicLink()) mounts.push({ src: realpathSync(nm) });
  return mounts;
}
