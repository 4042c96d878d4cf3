// Short connections for benchmarks: a small event-driven C client and server
// (tcp_crr.c, many flows per process). With Node.js at both ends (~250 µs of
// work per connection) or a blocking client (a wake-up per step), every
// variant ran at the same rate, with or without NAT.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, startProcess } from '../../src/common/exec.js';
import type { Cluster, SimNetns } from '../../src/sim/index.js';

export class TcpCrr {
  private readonly dir = mkdtempSync(join(tmpdir(), 'bvcni-crr-'));
  private readonly bin = join(this.dir, 'tcp_crr');

  constructor(private readonly ms: number) {
    execFileSync('cc', ['-O2', '-Wall', '-o', this.bin, 'test/bench/tcp_crr.c']);
  }

  /** A server on `port` in `ns`, tracked by the cluster; resolves once it listens. */
  async startServer(c: Cluster, ns: SimNetns, port: number): Promise<void> {
    const child = c.track(startProcess([this.bin, 'server', String(port), '2'], { netns: ns.path }));
    await new Promise<void>((resolve, reject) => {
      child.stdout!.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`tcp_crr server in ${ns.name} exited ${code}`)));
    });
  }

  /** Connections completed per second from `from` to host:port over the configured time. */
  async rate(from: SimNetns, host: string, port: number): Promise<{ perSecond: number; failed: number }> {
    const r = await run([this.bin, 'client', host, String(port), String(this.ms), '2', '16', '1000'], { netns: from.path, timeoutMs: 30_000 });
    const j = JSON.parse(r.stdout) as { done: number; failed: number; elapsed: number };
    return { perSecond: (j.done * 1000) / j.elapsed, failed: j.failed };
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
