// Phase timings for performance work: BVCNI_TRACE=1 prints them to stderr
// (never stdout) when the process ends, after the runtime that ran them (the
// Node embedded in the executable). Costs one branch when off. Read when the
// process starts, not when this module is evaluated: the executable's startup
// snapshot evaluates it once, at build time.
let on = false;
const marks: [string, number][] = [];

/** Called first thing by main: from here on, marks count (when BVCNI_TRACE asks). */
export function startTrace(): void {
  on = !!process.env.BVCNI_TRACE;
  if (!on) return;
  marks.push(['start', performance.now()]);
  process.on('exit', () => {
    const lines = marks.slice(1).map(([l, t], i) => `${l.padEnd(24)} ${(t - marks[i]![1]).toFixed(2)} ms`);
    const end = performance.timeOrigin + marks[marks.length - 1]![1];
    process.stderr.write(`bvcni trace (node ${process.version}; process uptime at start ${marks[0]![1].toFixed(1)} ms; last mark at epoch ${end.toFixed(3)} ms)\n${lines.join('\n')}\n`);
  });
}

export function mark(label: string): void {
  if (on) marks.push([label, performance.now()]);
}
