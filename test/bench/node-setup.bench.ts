// bvcnid's node set-up (issue 14): the devices, addresses, routes and sysctls
// it configures at every start, through rtnetlink and /proc/sys in this build
// (ensureNodeLinks) against the same steps as v0.1.0 ran them, one `ip` or
// `sysctl` child process each (the command lines below are v0.1.0's
// src/dataplane/node.ts, verbatim). Interleaved rounds (A B B A …), each in a
// fresh node namespace with an uplink, first start (nothing there) and a
// restart (everything there, as after an upgrade). Then the whole
// ensureNodeDataplane (programs and maps too) for scale.
// BVB_ROUNDS shrinks the run for a quick check.
import { rmSync } from 'node:fs';
import { run } from '../../src/common/exec.js';
import { ensureNodeDataplane, ensureNodeLinks, removeNodeDataplane, type NodeDataplaneConfig } from '../../src/dataplane/index.js';
import { createNetns, deleteNetnsSync, uniquePrefix } from '../../src/sim/netns.js';
import { median } from '../../src/common/stats.js';

const ROUNDS = Number(process.env.BVB_ROUNDS ?? 15);
const P = uniquePrefix('bvs');

/** v0.1.0's steps, as it ran them (linkShow's `ip -d -j link show` included: it looked before and after). */
async function v010Links(c: NodeDataplaneConfig): Promise<void> {
  const ns = c.netns;
  const ip = (...a: string[]): Promise<unknown> => run(['ip', ...a], { netns: ns, allowFail: true });
  const sysctl = async (key: string, value: string): Promise<void> => {
    const cur = await run(['sysctl', '-n', key], { netns: ns, allowFail: true });
    if (cur.code === 0 && cur.stdout.trim() === value) return;
    await run(['sysctl', '-q', '-w', `${key}=${value}`], { netns: ns, allowFail: true });
  };
  await ip('-d', '-j', 'link', 'show', 'dev', c.uplink);
  await sysctl('net.ipv4.ip_forward', '1');
  const ports = (await run(['sysctl', '-n', 'net.ipv4.ip_local_reserved_ports'], { netns: ns })).stdout.trim();
  if (!ports.includes('61000-65000')) await sysctl('net.ipv4.ip_local_reserved_ports', ports ? `${ports},61000-65000` : '61000-65000');
  const br = (await run(['ip', '-d', '-j', 'link', 'show', 'dev', c.bridge], { netns: ns, allowFail: true })).code === 0;
  if (!br) await ip('link', 'add', c.bridge, 'type', 'bridge');
  await ip('link', 'set', c.bridge, 'address', '0a:58:0a:f4:01:01', 'mtu', '1450', 'up');
  await ip('addr', 'replace', '10.244.1.1/24', 'dev', c.bridge);
  await ip('-d', '-j', 'link', 'show', 'dev', c.bridge);
  const vx = (await run(['ip', '-d', '-j', 'link', 'show', 'dev', c.vxlanDev], { netns: ns, allowFail: true })).code === 0;
  if (!vx) await ip('link', 'add', c.vxlanDev, 'type', 'vxlan', 'external', 'dstport', String(c.vxlanPort), 'nolearning');
  await ip('link', 'set', c.vxlanDev, 'addrgenmode', 'none');
  await ip('link', 'set', c.vxlanDev, 'mtu', '1450', 'arp', 'off', 'up');
  await ip('-6', 'addr', 'flush', 'dev', c.vxlanDev);
  await run(['sysctl', '-q', '-w', `net.ipv6.conf.${c.vxlanDev.replace(/\./g, '/')}.disable_ipv6=1`], { netns: ns, allowFail: true });
  await ip('-d', '-j', 'link', 'show', 'dev', c.vxlanDev);
  for (const dev of [c.bridge, c.vxlanDev]) await sysctl(`net.ipv4.conf.${dev.replace(/\./g, '/')}.rp_filter`, '0');
  await ip('route', 'replace', c.clusterCidr, 'dev', c.vxlanDev, 'src', c.nodeIp);
  await ip('route', 'replace', c.podCidr, 'dev', c.bridge, 'proto', 'kernel', 'scope', 'link', 'src', c.nodeIp);
}

async function freshNode(name: string): Promise<NodeDataplaneConfig> {
  const ns = await createNetns(name);
  await run(['ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'ulpeer'], { netns: ns });
  await run(['ip', 'addr', 'add', '192.0.2.10/24', 'dev', 'eth0'], { netns: ns });
  await run(['ip', 'link', 'set', 'eth0', 'up'], { netns: ns });
  await run(['ip', 'link', 'set', 'ulpeer', 'up'], { netns: ns });
  return {
    pinDir: `/sys/fs/bpf/${name}`, netns: ns, bridge: 'cni0', vxlanDev: 'vxlan.1', vxlanPort: 8472, vni: 1, uplink: 'eth0',
    nodeIp: '192.0.2.10', podCidr: '10.244.1.0/24', clusterCidr: '10.244.0.0/16',
  };
}

const ms = async (fn: () => unknown): Promise<number> => {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
};

const t: Record<string, number[]> = { newFirst: [], newAgain: [], oldFirst: [], oldAgain: [], dpFirst: [], dpAgain: [] };
const names: string[] = [];
try {
  for (let i = 0; i < ROUNDS; i++) {
    const order = i % 2 === 0 ? (['new', 'old'] as const) : (['old', 'new'] as const);
    for (const which of order) {
      const name = `${P}-${which}${i}`;
      names.push(name);
      const c = await freshNode(name);
      const step = which === 'new' ? () => ensureNodeLinks(c) : () => v010Links(c);
      t[`${which}First`]!.push(await ms(step));
      t[`${which}Again`]!.push(await ms(step));
      deleteNetnsSync(name);
    }
    // The whole set-up, programs and maps included, for scale.
    const name = `${P}-dp${i}`;
    names.push(name);
    const c = await freshNode(name);
    try {
      t.dpFirst!.push(await ms(async () => (await ensureNodeDataplane(c)).close()));
      t.dpAgain!.push(await ms(async () => (await ensureNodeDataplane(c)).close()));
    } finally {
      await removeNodeDataplane(c).catch(() => undefined);
      rmSync(c.pinDir, { recursive: true, force: true });
      deleteNetnsSync(name);
    }
  }
} finally {
  for (const n of names) deleteNetnsSync(n);
}
const m = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, median(v)])) as Record<keyof typeof t, number>;
const f = (x: number): string => x.toFixed(2).padStart(8);
console.log(`bvcnid node set-up, devices/addresses/routes/sysctls only, medians of ${ROUNDS} interleaved rounds (ms):`);
console.log(`                          first start  restart`);
console.log(`  rtnetlink + /proc/sys   ${f(m.newFirst)}   ${f(m.newAgain)}   (this build: ensureNodeLinks)`);
console.log(`  ip + sysctl processes   ${f(m.oldFirst)}   ${f(m.oldAgain)}   (v0.1.0's 16+ command lines)`);
console.log(`  this build / v0.1.0     ${(m.newFirst / m.oldFirst).toFixed(4).padStart(8)}   ${(m.newAgain / m.oldAgain).toFixed(4).padStart(8)}`);
console.log(`  whole ensureNodeDataplane (programs and maps too), this build: ${f(m.dpFirst)} first, ${f(m.dpAgain)} restart`);
