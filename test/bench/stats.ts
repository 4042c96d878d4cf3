// Shared by every benchmark: the markdown table (statistics live in src/common/stats.ts).
export { median, percentile } from '../../src/common/stats.js';

export function printTable(title: string, header: readonly string[], rows: readonly (readonly string[])[]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  console.log(`\n### ${title}\n`);
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of rows) console.log(line(r));
}

export interface Variant {
  name: string;
  run: () => Promise<number>;
}

/** Runs every variant `runs` times, interleaved (A B, then B A, …) so machine noise hits all alike; each run's figures go to stderr. */
export async function interleave(title: string, variants: readonly Variant[], runs: number): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>(variants.map((v) => [v.name, []]));
  for (let r = 0; r < runs; r++) {
    for (const v of r % 2 ? [...variants].reverse() : variants) out.get(v.name)!.push(await v.run());
    process.stderr.write(`  ${title} run ${r + 1}/${runs}: ${variants.map((v) => `${v.name}=${out.get(v.name)!.at(-1)!.toFixed(2)}`).join(' ')}\n`);
  }
  return out;
}

export interface MetricsVariant {
  name: string;
  /** One run: each named figure it measured (every run of every variant the same names). */
  run: () => Promise<Record<string, number>>;
}

/** interleave() for variants that measure several figures per run: variant -> figure -> one value per run. */
export async function interleaveMetrics(title: string, variants: readonly MetricsVariant[], runs: number): Promise<Map<string, Map<string, number[]>>> {
  const out = new Map<string, Map<string, number[]>>(variants.map((v) => [v.name, new Map()]));
  for (let r = 0; r < runs; r++) {
    for (const v of r % 2 ? [...variants].reverse() : variants) {
      const figures = out.get(v.name)!;
      for (const [k, x] of Object.entries(await v.run())) figures.set(k, [...(figures.get(k) ?? []), x]);
    }
    const last = (v: MetricsVariant): string => [...out.get(v.name)!].map(([k, xs]) => `${k}=${xs.at(-1)!.toFixed(2)}`).join(',');
    process.stderr.write(`  ${title} run ${r + 1}/${runs}: ${variants.map((v) => `${v.name}: ${last(v)}`).join('; ')}\n`);
  }
  return out;
}
