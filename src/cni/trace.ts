// Phase timings for performance work: BVCNI_TRACE=1 prints them to stderr
// (never stdout) when the process ends, after the runtime that ran them (the
// Node embedded in the executable). Costs one branch when off.
const on = !!process.env.BVCNI_TRACE;
const marks: [string, number][] = on ? [['start', performance.now()]] : [];

export function mark(label: string): void {
  if (on) marks.push([label, performance.now()]);
}

if (on) {
  process.on('exit', () => {
    const lines = marks.slice(1).map(([l, t], i) => `${l.padEnd(24)} ${(t - marks[i]![1]).toFixed(2)} ms`);
    const end = performance.timeOrigin + marks[marks.length - 1]![1];
    process.stderr.write(`bvcni trace (node ${process.version}; process uptime at start ${marks[0]![1].toFixed(1)} ms; last mark at epoch ${end.toFixed(3)} ms)\n${lines.join('\n')}\n`);
  });
}
