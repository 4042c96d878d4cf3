// How the upgrade test and benchmark read the 1 ms UDP stream's gaps: which part
// of a silence is the dataplane's and which the sender's own pause.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { longestGap, type UdpSinkReport } from '../support/stream-gap.js';

const report = (gaps: UdpSinkReport['gaps']): UdpSinkReport => ({ count: 1000, gaps, last: 100 });

test('a loss-free gap the sender explains is no dataplane gap: only the stream spacing is left', () => {
  // The source paused 12 ms (send times 10.000 and 10.012), the datagrams arrived 12.2 ms apart.
  const g = longestGap(report([[10.0002, 10.0124, 0, 10.0, 10.012]]), 9, 11);
  assert.ok(Math.abs(g.ms - 12.2) < 1e-6, `receiver's gap ${g.ms}`);
  assert.ok(Math.abs(g.dataplaneMs - 1.2) < 1e-6, `dataplane's ${g.dataplaneMs}`);
});

test('a loss-free gap the sender does not explain is the dataplane holding packets', () => {
  // Sent 1 ms apart, arrived 9 ms apart: 8 ms of extra delay in between.
  const g = longestGap(report([[10.0, 10.009, 0, 9.9995, 10.0005]]), 9, 11);
  assert.ok(Math.abs(g.dataplaneMs - 9) < 1e-6, `dataplane's ${g.dataplaneMs}`);
});

test('a gap with losses counts whole, whatever the sender did', () => {
  const g = longestGap(report([[10.0, 10.007, 6, 9.9995, 10.0065]]), 9, 11);
  assert.equal(g.lost, 6);
  assert.ok(Math.abs(g.dataplaneMs - 7) < 1e-6 && Math.abs(g.ms - 7) < 1e-6);
});

test('each measure takes its own longest gap, and only gaps that touch the window count', () => {
  const g = longestGap(
    report([
      [5.0, 5.05, 40, 5.0, 5.05], // before the window
      [10.0, 10.02, 0, 10.0, 10.0195], // the sender's pause: long, little of it the dataplane's
      [10.5, 10.004 + 0.5, 3, 10.4995, 10.5035], // short, but with losses
    ]),
    9,
    11,
  );
  assert.ok(Math.abs(g.ms - 20) < 1e-6 && g.lost === 0, JSON.stringify(g));
  assert.ok(Math.abs(g.dataplaneMs - 4) < 1e-6, JSON.stringify(g));
  assert.deepEqual(longestGap(report([]), 9, 11), { ms: 0, lost: 0, dataplaneMs: 0 });
});
