// Map update and lookup per operation: the TypeScript binding against a C
// loop over libbpf, compiled and run in this same run, interleaved.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BpfObject } from '../../loader/index.js';
import { COUNTER_OBJ, counterValue as value, roundtripKey as key } from '../fixtures/bpf/counter.js';
import { median, printTable } from './stats.js';

const N = 10_000;
const ROUNDS = 9;

const dir = mkdtempSync(join(tmpdir(), 'bvcni-bench-'));
try {
  const cBin = join(dir, 'map-ops');
  execFileSync('cc', ['-O2', '-o', cBin, 'test/bench/map-ops.c', '-lbpf']);

  const obj = BpfObject.open(COUNTER_OBJ);
  obj.load();
  const map = obj.map('lt_hash', key, value);

  function tsRound(): { update: number; lookup: number } {
    const k = { a: 0, b: 0 };
    const v = { packets: 0n, bytes: 0n };
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) {
      k.a = i;
      k.b = i * 3;
      v.packets = BigInt(i);
      map.update(k, v);
    }
    const t1 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) {
      k.a = i;
      k.b = i * 3;
      if (!map.lookup(k)) throw new Error('lookup missed');
    }
    const t2 = process.hrtime.bigint();
    return { update: Number(t1 - t0) / N, lookup: Number(t2 - t1) / N };
  }

  tsRound(); // warm up the JIT and koffi's call stubs
  const ts = { update: [] as number[], lookup: [] as number[] };
  const c = { update: [] as number[], lookup: [] as number[] };
  for (let r = 0; r < ROUNDS; r++) {
    const [cu, cl] = execFileSync(cBin, [String(N), '1'], { encoding: 'utf8' }).trim().split(' ').map(Number);
    c.update.push(cu!);
    c.lookup.push(cl!);
    const t = tsRound();
    ts.update.push(t.update);
    ts.lookup.push(t.lookup);
  }
  map.close();
  obj.close();

  const rows = (['update', 'lookup'] as const).map((op) => {
    const tsMed = median(ts[op]);
    const cMed = median(c[op]);
    return [`map ${op} (hash, 8 B key, 16 B value)`, `${tsMed.toFixed(0)} ns`, `${cMed.toFixed(0)} ns`, `${(tsMed / cMed).toFixed(2)}×`, '≤ 2.00×'];
  });
  printTable(`loader: per-operation cost, medians of ${ROUNDS} interleaved rounds of ${N} ops`, ['operation', 'TypeScript (koffi)', 'C (libbpf)', 'ratio', 'target'], rows);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
