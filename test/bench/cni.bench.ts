// ADD and DEL latency of the installed bvcni executable against Debian's
// reference bridge + host-local, in the same node namespace, interleaved
// (bvcni, reference, floors, bvcni, ...), with the Node start-up floor
// (`node -e 0`) and the executable's own floor (VERSION). Target:
// (bvcni − node floor) ≤ 0.5 × reference, for ADD and for DEL.
// Then pods per second for 100 parallel ADDs, both plugins.
import { spawn } from 'node:child_process';
import { TestNode, cniEnv, PLUGIN, REF_DIR } from '../fixtures/cni/harness.js';
import { join } from 'node:path';
import { median } from '../../src/common/stats.js';

const ROUNDS = Number(process.env.BVCNI_BENCH_ROUNDS ?? 40);
const PARALLEL = 100;

function timed(ns: string, argv: string[], env: Record<string, string>, stdin: string): Promise<{ ms: number; code: number | null; stdout: string }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn('/usr/bin/nsenter', [`--net=${ns}`, '--', ...argv], { env, stdio: ['pipe', 'pipe', 'ignore'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ ms: Number(process.hrtime.bigint() - t0) / 1e6, code, stdout }));
    child.stdin.end(stdin);
  });
}


async function main(): Promise<void> {
  const node = await TestNode.create();
  try {
    const conf = JSON.stringify(node.conf('1.0.0'));
    const ref = JSON.stringify(node.refConf('1.0.0'));
    const t: Record<string, number[]> = { bvcniAdd: [], bvcniDel: [], refAdd: [], refDel: [], nodeFloor: [], seaFloor: [] };
    const check = (what: string, r: { code: number | null; stdout: string }): void => {
      if (r.code !== 0) throw new Error(`${what} failed: ${r.stdout}`);
    };
    for (let i = 0; i < ROUNDS; i++) {
      const pa = await node.pod(`a${i}`);
      const pr = await node.pod(`r${i}`);
      const env = (cmd: string, netns: string): Record<string, string> => cniEnv({ command: cmd, containerId: `b${i}`, netns, ifname: 'eth0', stdin: '' }, REF_DIR);
      // Alternate which plugin goes first so neither always runs on a warmer cache.
      const order = i % 2 ? ['bvcni', 'ref'] : ['ref', 'bvcni'];
      for (const which of order) {
        if (which === 'bvcni') {
          let r = await timed(node.ns, [PLUGIN], env('ADD', pa), conf);
          check('bvcni ADD', r);
          t.bvcniAdd!.push(r.ms);
          r = await timed(node.ns, [PLUGIN], env('DEL', pa), conf);
          check('bvcni DEL', r);
          t.bvcniDel!.push(r.ms);
        } else {
          let r = await timed(node.ns, [join(REF_DIR, 'bridge')], env('ADD', pr), ref);
          check('bridge ADD', r);
          t.refAdd!.push(r.ms);
          r = await timed(node.ns, [join(REF_DIR, 'bridge')], env('DEL', pr), ref);
          check('bridge DEL', r);
          t.refDel!.push(r.ms);
        }
      }
      t.nodeFloor!.push((await timed(node.ns, [process.execPath, '-e', '0'], {}, '')).ms);
      t.seaFloor!.push((await timed(node.ns, [PLUGIN], { CNI_COMMAND: 'VERSION' }, '')).ms);
      node.deletePod(pa);
      node.deletePod(pr);
    }
    const m = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, median(v)])) as Record<keyof typeof t, number>;
    const f = (x: number): string => x.toFixed(2).padStart(8);
    console.log(`bvcni CNI latency, medians of ${ROUNDS} interleaved rounds (ms; each includes nsenter):`);
    console.log(`  node -e 0 floor      ${f(m.nodeFloor)}`);
    console.log(`  bvcni VERSION floor  ${f(m.seaFloor)}   (the executable's own start-up)`);
    console.log(`  reference ADD        ${f(m.refAdd)}   (bridge + host-local)`);
    console.log(`  bvcni ADD            ${f(m.bvcniAdd)}`);
    console.log(`  reference DEL        ${f(m.refDel)}`);
    console.log(`  bvcni DEL            ${f(m.bvcniDel)}`);
    const addRatio = (m.bvcniAdd - m.nodeFloor) / m.refAdd;
    const delRatio = (m.bvcniDel - m.nodeFloor) / m.refDel;
    console.log(`  (bvcni ADD - node floor) / reference ADD = ${addRatio.toFixed(3)}   target <= 0.5  ${addRatio <= 0.5 ? 'MET' : 'NOT MET'}`);
    console.log(`  (bvcni DEL - node floor) / reference DEL = ${delRatio.toFixed(3)}   target <= 0.5  ${delRatio <= 0.5 ? 'MET' : 'NOT MET'}`);
    console.log(`  (bvcni ADD - own floor)  / reference ADD = ${((m.bvcniAdd - m.seaFloor) / m.refAdd).toFixed(3)}`);
    console.log(`  (bvcni DEL - own floor)  / reference DEL = ${((m.bvcniDel - m.seaFloor) / m.refDel).toFixed(3)}`);

    // Throughput: 100 ADDs at once, each plugin (then DEL them all).
    for (const which of ['bvcni', 'ref'] as const) {
      const pods: string[] = [];
      for (let i = 0; i < PARALLEL; i++) pods.push(await node.pod(`${which[0]}p${i}`));
      const bin = which === 'bvcni' ? PLUGIN : join(REF_DIR, 'bridge');
      const stdin = which === 'bvcni' ? conf : ref;
      const t0 = performance.now();
      const rs = await Promise.all(pods.map((p, i) => timed(node.ns, [bin], cniEnv({ command: 'ADD', containerId: `t${i}`, netns: p, ifname: 'eth0', stdin: '' }), stdin)));
      const secs = (performance.now() - t0) / 1000;
      const failed = rs.filter((r) => r.code !== 0).length;
      console.log(`  ${which === 'bvcni' ? 'bvcni    ' : 'reference'} ${PARALLEL} parallel ADDs: ${(PARALLEL / secs).toFixed(1)} pods/s (${failed} failed)`);
      await Promise.all(pods.map((p, i) => timed(node.ns, [bin], cniEnv({ command: 'DEL', containerId: `t${i}`, netns: p, ifname: 'eth0', stdin: '' }), stdin)));
      pods.forEach((p) => node.deletePod(p));
    }
  } finally {
    await node.destroy();
  }
}

await main();
