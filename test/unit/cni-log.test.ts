// The plugin's log: owner-only, bounded by rotation, safe with several writers,
// and never a reason for a CNI call to fail; the built plugin behaves the same.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fileLogger, LOG_DEFAULTS } from '../../src/cni/log.js';
import { fileMode, jsonLines } from '../support/log-files.js';

const root = mkdtempSync(join(tmpdir(), 'bvk-cnilog-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = (): string => join(root, `d${n++}`);
const logFiles = (dir: string): string[] => readdirSync(dir).filter((f) => f.startsWith(LOG_DEFAULTS.file)).sort();

describe('the plugin log', () => {
  test('is created 0600 whatever the umask, in a directory created if missing', () => {
    const dir = freshDir();
    const old = process.umask(0);
    try {
      fileLogger(dir, { containerId: 'c1' }).info('added', { ip: '10.244.1.2' });
    } finally {
      process.umask(old);
    }
    const p = join(dir, LOG_DEFAULTS.file);
    assert.equal(fileMode(p).toString(8), '600');
    assert.deepEqual(
      jsonLines(p).map((l) => [l.containerId, l.msg, l.ip]),
      [['c1', 'added', '10.244.1.2']],
    );
  });

  test('a world-readable log from an older version is made 0600 by the next line, its content kept', () => {
    const dir = freshDir();
    mkdirSync(dir);
    const p = join(dir, LOG_DEFAULTS.file);
    writeFileSync(p, '{"msg":"from v0.1.0"}\n');
    chmodSync(p, 0o644);
    assert.equal(fileMode(p).toString(8), '644', 'control: the file starts world-readable');
    fileLogger(dir, {}).error('deleted');
    assert.equal(fileMode(p).toString(8), '600');
    assert.deepEqual(
      jsonLines(p).map((l) => l.msg),
      ['from v0.1.0', 'deleted'],
    );
  });

  test('rotates past maxBytes: the newest lines kept in order, at most keep old files, none over the bound', () => {
    const dir = freshDir();
    const maxBytes = 2000;
    const keep = 2;
    const log = fileLogger(dir, { containerId: 'x'.repeat(64) }, { maxBytes, keep });
    const total = 200;
    for (let i = 0; i < total; i++) log.info('line', { i });
    const files = logFiles(dir);
    assert.deepEqual(files, [LOG_DEFAULTS.file, `${LOG_DEFAULTS.file}.1`, `${LOG_DEFAULTS.file}.2`]);
    for (const f of files) {
      const p = join(dir, f);
      assert.ok(statSync(p).size <= maxBytes, `${f} is ${statSync(p).size} bytes, over ${maxBytes}`);
      assert.equal(fileMode(p).toString(8), '600', `${f} stays 0600`);
    }
    // Oldest first: .2, .1, then the live file: consecutive numbers ending with the last line.
    const seen = [`${LOG_DEFAULTS.file}.2`, `${LOG_DEFAULTS.file}.1`, LOG_DEFAULTS.file].flatMap((f) => jsonLines(join(dir, f)).map((l) => Number(l.i)));
    assert.equal(seen.at(-1), total - 1);
    assert.deepEqual(
      seen,
      seen.map((_, k) => seen[0]! + k),
      'no line lost or reordered across the kept files',
    );
    assert.ok(seen[0]! > 0, 'the oldest lines were dropped: the log is bounded');
    assert.ok(seen.length * 150 > maxBytes * keep, 'the kept files are nearly full (rotation at the bound, not before)');
  });

  test('bad options are refused with a clear error', () => {
    assert.throws(() => fileLogger(freshDir(), {}, { keep: 0 }), /keep must be an integer 1\.\.9/);
    assert.throws(() => fileLogger(freshDir(), {}, { maxBytes: -1 }), /maxBytes must be a positive integer/);
  });

  test('never throws: a log directory that cannot exist costs the line, not the call', () => {
    const file = join(root, 'a-file');
    writeFileSync(file, '');
    assert.doesNotThrow(() => fileLogger(join(file, 'sub'), {}).info('lost'));
  });

  test('several processes writing through rotations at once: one rotation per full file, no kept line lost or torn', async () => {
    const dir = freshDir();
    mkdirSync(dir);
    const writers = 4;
    const perWriter = 400;
    const maxBytes = 4096;
    const keep = 9;
    // ~1,600 lines of ~130 bytes through 4 KiB files: about 50 rotations, many of them contended.
    const script = `
      import { fileLogger } from ${JSON.stringify(fileURLToPath(new URL('../../src/cni/log.ts', import.meta.url)))};
      import { existsSync, writeFileSync } from 'node:fs';
      const [dir, w, gate] = process.argv.slice(2);
      const log = fileLogger(dir, {}, { maxBytes: ${maxBytes}, keep: ${keep} });
      // All writers start together: the parent opens the gate once each is loaded.
      writeFileSync(gate + '.' + w, '');
      while (!existsSync(gate)) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2);
      for (let i = 0; i < ${perWriter}; i++) log.info('w', { w, i, pad: 'p'.repeat(40) });
    `;
    const scriptPath = join(root, 'writer.ts');
    writeFileSync(scriptPath, script);
    const gate = join(root, `gate-${n}`);
    const opened = (async () => {
      while (!Array.from({ length: writers }, (_, w) => existsSync(`${gate}.${w}`)).every(Boolean)) await new Promise((r) => setTimeout(r, 10));
      writeFileSync(gate, '');
    })();
    await Promise.all(
      Array.from(
        { length: writers },
        (_, w) =>
          new Promise<void>((resolve, reject) => {
            const child = spawn(process.execPath, ['--import', 'tsx', scriptPath, dir, String(w), gate], { stdio: ['ignore', 'ignore', 'inherit'] });
            child.once('error', reject);
            child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`writer ${w} exited ${code}`))));
          }),
      ).concat(opened),
    );
    const files = logFiles(dir);
    assert.equal(files.length, keep + 1, `the live file and ${keep} old ones: ${files.join(' ')}`);
    // A writer that found the file full after another had rotated it would move
    // the fresh, nearly empty file aside a second time, and shift (and lose) a
    // full generation with it.
    for (const f of files.filter((x) => x !== LOG_DEFAULTS.file)) {
      const size = statSync(join(dir, f)).size;
      assert.ok(size > maxBytes / 2, `${f} was rotated at ${size} bytes, not when full`);
    }
    const all = files.flatMap((f) => jsonLines(join(dir, f))); // JSON.parse throws on a torn line
    const keys = all.map((l) => `${String(l.w)}/${String(l.i)}`);
    assert.equal(new Set(keys).size, keys.length, 'no line twice');
    // Only whole old generations are dropped: each writer's kept lines are its
    // last ones, without a gap (a writer done early may have none left).
    assert.ok(all.length > (keep * maxBytes) / 200, 'the kept files hold lines');
    for (let w = 0; w < writers; w++) {
      const mine = all.filter((l) => l.w === String(w)).map((l) => Number(l.i)).sort((a, b) => a - b);
      if (mine.length === 0) continue;
      assert.equal(mine.at(-1), perWriter - 1, `writer ${w}'s last line is kept`);
      assert.deepEqual(
        mine,
        mine.map((_, k) => mine[0]! + k),
        `writer ${w}: no kept line lost`,
      );
    }
  });
  // The built plugin's own log lines: it deletes a veth, so root; in
  // test/integration/plugin-binary.test.ts.
});
