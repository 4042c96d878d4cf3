// The plugin's native front (src/cni/front/, dist/bin/bvcni): it must send
// bvcnid the request the Node plugin's delegate.ts sends, print the daemon's
// answer byte for byte with its exit code, and hand everything else to the
// Node plugin (bvcni.d/bvcni-node) with stdin intact and the environment
// marked as delegate.ts would have decided: BVCNI_NO_DAEMON=1 (work locally),
// BVCNI_FRONT_LOST (an answer lost after the request reached bvcnid: code 11),
// or unmarked (the Node plugin decides). Most cases run a copy of the front
// beside a fake Node plugin that records what it was given; the others run
// the real one against a fake daemon and compare with the Node plugin run
// directly. Last, a small fuzz of the answer parser, on a build with
// AddressSanitizer and UBSan, against an oracle written with JSON.parse.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { rng } from '../support/rng.js';
import { readReply } from '../../src/cni/delegate.js';
import { NODE_PLUGIN, PLUGIN as FRONT } from '../fixtures/cni/harness.js';

const REPO = resolve(fileURLToPath(import.meta.url), '../../..');
const built = existsSync(FRONT) && existsSync(NODE_PLUGIN);

const root = mkdtempSync(join(tmpdir(), 'bvcni-front-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** A copy of an executable front beside a fake Node plugin that records its environment and stdin. */
function fakeInstall(name: string, front = FRONT): string {
  const dir = join(root, name);
  mkdirSync(join(dir, 'bvcni.d'), { recursive: true });
  copyFileSync(front, join(dir, 'bvcni'));
  chmodSync(join(dir, 'bvcni'), 0o755);
  const fake = join(dir, 'bvcni.d', 'bvcni-node');
  writeFileSync(fake, '#!/bin/sh\nenv > "$FRONT_TEST_OUT.env"\ncat > "$FRONT_TEST_OUT.stdin"\nprintf "fake node plugin\\n"\nexit 42\n');
  chmodSync(fake, 0o755);
  return join(dir, 'bvcni');
}

interface Ran {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
  /** What the fake Node plugin was given, when it ran. */
  handed?: { env: Record<string, string>; stdin: Buffer };
}

let calls = 0;

/** Runs bin as a runtime does (only the given environment), asynchronously: the fake daemon lives in this process. */
function run(bin: string, env: Record<string, string>, stdin: Buffer | string): Promise<Ran> {
  const out = join(root, `call${calls++}`);
  return new Promise((resolvePromise, reject) => {
    const child = spawn(bin, [], { env: { ...env, FRONT_TEST_OUT: out }, stdio: ['pipe', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => stdout.push(d));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.stdin.on('error', () => {});
    child.on('close', (status, signal) => {
      let handed: Ran['handed'];
      if (existsSync(`${out}.env`)) {
        const vars = readFileSync(`${out}.env`, 'utf8').split('\n').filter((l) => l.includes('='));
        handed = {
          env: Object.fromEntries(vars.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)])),
          stdin: readFileSync(`${out}.stdin`),
        };
      }
      resolvePromise({ status, signal, stdout: Buffer.concat(stdout), stderr, handed });
    });
    child.stdin.end(stdin);
  });
}

type Behaviour = (request: Buffer, sock: Socket) => void;

/** A bvcnid stand-in on <dir>/bvcnid.sock: records each request, answers as told. */
class FakeDaemon {
  readonly requests: Buffer[] = [];
  connections = 0;
  behave: Behaviour = (_req, sock) => sock.end(JSON.stringify({ outcome: { stdout: 'ok\n', exitCode: 0 } }));
  private server?: Server;

  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  get socket(): string {
    return join(this.dir, 'bvcnid.sock');
  }

  async start(): Promise<void> {
    this.server = createServer({ allowHalfOpen: true }, (sock) => {
      this.connections++;
      const chunks: Buffer[] = [];
      sock.on('error', () => {});
      sock.on('data', (d: Buffer) => chunks.push(d));
      sock.on('end', () => {
        const req = Buffer.concat(chunks);
        this.requests.push(req);
        this.behave(req, sock);
      });
    });
    await new Promise<void>((r) => this.server!.listen(this.socket, r));
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  lastRequest(): Record<string, unknown> {
    return JSON.parse(this.requests.at(-1)!.toString('utf8')) as Record<string, unknown>;
  }
}

function conf(dataDir: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ cniVersion: '1.0.0', name: 'bvcni', type: 'bvcni', podcidr: '10.244.1.0/24', dataDir, ...extra });
}

const cni = (command: string, extra: Record<string, string> = {}): Record<string, string> => ({
  CNI_COMMAND: command,
  CNI_CONTAINERID: 'ctr-front',
  CNI_IFNAME: 'eth0',
  CNI_NETNS: '/proc/self/ns/net',
  CNI_PATH: '/nonexistent',
  ...extra,
});

describe('the native front', { skip: !built && 'needs make build' }, () => {
  let daemon: FakeDaemon;
  let fake: string;
  before(async () => {
    daemon = new FakeDaemon(join(root, 'data'));
    await daemon.start();
    fake = fakeInstall('fake');
  });
  after(async () => daemon?.stop());
  const answer = (reply: string | Buffer): void => {
    daemon.behave = (_req, sock) => sock.end(reply);
  };

  test('sends bvcnid the request the Node plugin sends, to the byte once parsed', async () => {
    answer(JSON.stringify({ outcome: { stdout: '', exitCode: 0 } }));
    // Quotes, backslashes, control characters and characters beyond the BMP in stdin and in a variable.
    const stdin = conf(daemon.dir, { note: 'q"b\\s\u0001\u001f ü 😀 \u2028', nested: { a: [1, 2.5e3, null, true] } });
    const env = cni('ADD', { CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=x"\\ü😀\t', NOT_CNI: 'never sent' });
    const viaFront = await run(FRONT, env, stdin);
    assert.equal(viaFront.status, 0, viaFront.stdout.toString() + viaFront.stderr);
    const fromFront = daemon.lastRequest();
    const viaNode = await run(NODE_PLUGIN, env, stdin);
    assert.equal(viaNode.status, 0, viaNode.stdout.toString() + viaNode.stderr);
    const fromNode = daemon.lastRequest();
    assert.deepEqual(fromFront, fromNode);
    // Control: the comparison sees a difference in what was sent.
    await run(FRONT, { ...env, CNI_IFNAME: 'eth1' }, stdin);
    assert.notDeepEqual(daemon.lastRequest(), fromNode);
    assert.equal(fromFront.stdin, stdin);
    assert.equal((fromFront.env as Record<string, string>).CNI_ARGS, env.CNI_ARGS);
    assert.ok(!('NOT_CNI' in (fromFront.env as object)), 'only CNI_* variables');
    assert.ok(fromFront.nodeNs && fromFront.podNs, 'both namespaces identified');
  });

  test("prints the daemon's answer byte for byte with its exit code, a CNI error too, as the Node plugin does", async () => {
    const error = `${JSON.stringify({ cniVersion: '1.0.0', code: 7, msg: 'invalid config: field "mtu" must be…', details: 'tab\there, ü, 😀, lone \ud800 surrogate' })}\n`;
    for (const [stdout, exitCode] of [[error, 1], ['{"cniVersion":"1.0.0"}\n', 0], ['', 0], ['no newline \u0000 nul', 3]] as const) {
      answer(JSON.stringify({ outcome: { stdout, exitCode } }));
      const f = await run(FRONT, cni('ADD'), conf(daemon.dir));
      const n = await run(NODE_PLUGIN, cni('ADD'), conf(daemon.dir));
      assert.equal(f.status, exitCode);
      assert.deepEqual(f.stdout, Buffer.from(stdout), 'the daemon’s stdout, as Buffer.from writes the string');
      assert.equal(n.status, exitCode);
      assert.deepEqual(f.stdout, n.stdout, 'the same bytes as the Node plugin prints');
    }
  });

  test('a missing CNI_COMMAND goes to the Node plugin unmarked, without a connection; VERSION is answered by the front', async () => {
    const before = daemon.connections;
    for (const env of [{ CNI_CONTAINERID: 'x' }, { CNI_COMMAND: '' }] as Record<string, string>[]) {
      const r = await run(fake, env, conf(daemon.dir));
      assert.equal(r.status, 42);
      assert.ok(r.handed, 'the Node plugin ran');
      assert.equal(r.handed.env.BVCNI_NO_DAEMON, undefined);
      assert.equal(r.handed.env.BVCNI_FRONT_LOST, undefined);
    }
    // VERSION: the fake Node plugin (exit 42) never runs, and the bytes are the real Node plugin's.
    const fv = await run(fake, { CNI_COMMAND: 'VERSION' }, conf(daemon.dir));
    assert.equal(fv.status, 0);
    assert.equal(fv.handed, undefined, 'the Node plugin did not run');
    assert.equal(daemon.connections, before);
    const nv = await run(NODE_PLUGIN, { CNI_COMMAND: 'VERSION' }, '');
    assert.equal(nv.status, 0);
    assert.deepEqual(fv.stdout, nv.stdout, 'the same bytes as the Node plugin prints');
    assert.deepEqual(JSON.parse(fv.stdout.toString()).supportedVersions, ['0.3.1', '0.4.0', '1.0.0', '1.1.0']);
  });

  test('no socket, a refused connection, a decline: the Node plugin works alone with stdin intact', async () => {
    const stdin = conf(join(root, 'no-daemon-here'));
    const none = await run(fake, cni('ADD'), stdin);
    assert.equal(none.handed?.env.BVCNI_NO_DAEMON, '1');
    assert.equal(none.handed?.stdin.toString(), stdin);

    // A socket file nobody listens on: connect is refused.
    const refusedDir = join(root, 'refused');
    mkdirSync(refusedDir);
    const py = spawnSync('python3', ['-c', 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])', join(refusedDir, 'bvcnid.sock')]);
    assert.equal(py.status, 0, py.stderr.toString());
    const refused = await run(fake, cni('ADD'), conf(refusedDir));
    assert.equal(refused.handed?.env.BVCNI_NO_DAEMON, '1');

    answer(JSON.stringify({ declined: 'the plugin runs in another network namespace' }));
    const n = daemon.requests.length;
    const declined = await run(fake, cni('ADD'), conf(daemon.dir));
    assert.equal(daemon.requests.length, n + 1, 'asked');
    assert.equal(declined.handed?.env.BVCNI_NO_DAEMON, '1');
    assert.equal(declined.handed?.env.BVCNI_FRONT_LOST, undefined);
    assert.equal(declined.handed?.stdin.toString(), conf(daemon.dir));
    // Control: an answer is printed, the Node plugin never runs.
    answer(JSON.stringify({ outcome: { stdout: 'served\n', exitCode: 0 } }));
    const served = await run(fake, cni('ADD'), conf(daemon.dir));
    assert.equal(served.handed, undefined);
    assert.equal(served.stdout.toString(), 'served\n');
  });

  test('a garbage answer or a daemon dying mid-request: code 11 for ADD (as the Node plugin answers), local work for DEL', async () => {
    const behaviours: [string, Behaviour][] = [
      ['garbage', (_r, s) => s.end('{"outcome":{"stdout":"half')],
      ['dies after reading', (_r, s) => s.destroy()],
      ['outcome of the wrong shape', (_r, s) => s.end('{"outcome":{"stdout":1,"exitCode":0}}')],
    ];
    for (const [what, behave] of behaviours) {
      daemon.behave = behave;
      const add = await run(fake, cni('ADD'), conf(daemon.dir));
      assert.match(add.handed?.env.BVCNI_FRONT_LOST ?? '', /connection closed before a complete answer/, what);
      assert.equal(add.handed?.env.BVCNI_NO_DAEMON, undefined, what);
      const del = await run(fake, cni('DEL'), conf(daemon.dir));
      assert.equal(del.handed?.env.BVCNI_NO_DAEMON, '1', what);
      assert.equal(del.handed?.env.BVCNI_FRONT_LOST, undefined, what);
      // The real plugin's answer to the lost ADD, through the front and alone: the same bytes.
      const f = await run(FRONT, cni('ADD'), conf(daemon.dir));
      const n = await run(NODE_PLUGIN, cni('ADD'), conf(daemon.dir));
      assert.equal(f.status, 1, what);
      assert.equal(JSON.parse(f.stdout.toString()).code, 11, what);
      assert.deepEqual(f.stdout.toString(), n.stdout.toString(), what);
    }
    // Dying while the request is still coming: a 4 MiB config, the connection cut at its first bytes.
    daemon.behave = () => {};
    const big = conf(daemon.dir, { pad: 'x'.repeat(4 << 20) });
    const server = (daemon as unknown as { server: Server }).server;
    const cut = (sock: Socket): void => void sock.once('data', () => sock.destroy());
    server.prependListener('connection', cut);
    try {
      const add = await run(fake, cni('ADD'), big);
      assert.match(add.handed?.env.BVCNI_FRONT_LOST ?? '', /^(send|receive) (EPIPE|ECONNRESET) .*bvcnid\.sock$|connection closed/);
      assert.equal(add.handed?.stdin.length, Buffer.byteLength(big), 'stdin intact for the Node plugin');
      const del = await run(fake, cni('DEL'), big);
      assert.equal(del.handed?.env.BVCNI_NO_DAEMON, '1');
    } finally {
      server.off('connection', cut);
    }
  });

  test('no answer within 30 s: code 11 for ADD, local work for DEL (the only test that waits out the deadline)', async () => {
    const held: Socket[] = [];
    daemon.behave = (_req, sock) => void held.push(sock);
    try {
      const [add, del] = await Promise.all([run(fake, cni('ADD'), conf(daemon.dir)), run(fake, cni('DEL'), conf(daemon.dir))]);
      assert.equal(add.handed?.env.BVCNI_FRONT_LOST, 'no answer within 30000 ms');
      assert.equal(del.handed?.env.BVCNI_NO_DAEMON, '1');
      assert.equal(held.length, 2, 'both requests reached the daemon whole');
    } finally {
      held.forEach((s) => s.destroy());
    }
  });

  test('stdin far bigger than a pipe buffer: whole to the daemon, whole to the Node plugin', async () => {
    const big = conf(daemon.dir, { pad: 'ü'.repeat(300_000) });
    assert.ok(Buffer.byteLength(big) > 8 * 65536);
    answer(JSON.stringify({ outcome: { stdout: 'ok\n', exitCode: 0 } }));
    const r = await run(fake, cni('ADD'), big);
    assert.equal(r.stdout.toString(), 'ok\n');
    assert.equal(daemon.lastRequest().stdin, big);
    const alone = await run(fake, cni('ADD', { BVCNI_NO_DAEMON: '1' }), big);
    assert.equal(alone.handed?.stdin.toString(), big);
    const local = await run(fake, cni('ADD'), conf(join(root, 'nothing'), { pad: 'ü'.repeat(300_000) }));
    assert.deepEqual(local.handed?.stdin, Buffer.from(conf(join(root, 'nothing'), { pad: 'ü'.repeat(300_000) })));
  });

  test('a hostile environment and odd configs: what the front cannot pass on as Node would goes to the Node plugin unmarked', async () => {
    answer(JSON.stringify({ outcome: { stdout: 'served\n', exitCode: 0 } }));
    // A 100 KB variable travels whole.
    const huge = 'K=' + 'v'.repeat(100_000);
    const r = await run(fake, cni('ADD', { CNI_ARGS: huge }), conf(daemon.dir));
    assert.equal(r.stdout.toString(), 'served\n');
    assert.equal((daemon.lastRequest().env as Record<string, string>).CNI_ARGS, huge);

    // Bytes that are not UTF-8, in a variable or in stdin: Node would replace them; the front does not guess.
    const before = daemon.connections;
    const bad = spawnSync('bash', ['-c', `printf '%s' "$0" | exec env -i CNI_COMMAND=ADD $'CNI_ARGS=a\\xffb' FRONT_TEST_OUT=${join(root, 'badenv')} ${fake}`, conf(daemon.dir)]);
    assert.equal(bad.status, 42, bad.stderr.toString());
    assert.equal(readFileSync(join(root, 'badenv.env'), 'utf8').includes('BVCNI_'), false, 'unmarked');
    assert.equal(readFileSync(join(root, 'badenv.stdin'), 'utf8'), conf(daemon.dir));
    const badStdin = Buffer.concat([Buffer.from(conf(daemon.dir).slice(0, -1)), Buffer.from(',"x":"\xff"}', 'latin1')]);
    const bs = await run(fake, cni('ADD'), badStdin);
    assert.equal(bs.status, 42);
    assert.deepEqual(bs.handed?.stdin, badStdin);
    assert.equal(bs.handed?.env.BVCNI_NO_DAEMON, undefined);
    // A dataDir with "..": path.join would resolve it lexically, the kernel through symlinks.
    const dots = await run(fake, cni('ADD'), conf(`${daemon.dir}/../data`));
    assert.equal(dots.handed?.env.BVCNI_NO_DAEMON, undefined);
    assert.equal(daemon.connections, before, 'none of these reached the daemon');

    // Decided as delegate.ts decides: a relative dataDir, a config that is not JSON or names a non-string dataDir: alone.
    for (const stdin of [conf('relative/dir'), '{"cniVersion":', conf(daemon.dir).replace(/"dataDir":"[^"]*"/, '"dataDir":5'), '"a string"']) {
      const x = await run(fake, cni('ADD'), stdin);
      assert.equal(x.handed?.env.BVCNI_NO_DAEMON, '1', stdin);
      assert.equal(x.handed?.stdin.toString(), stdin);
    }
    // Escapes and duplicate keys read as JSON.parse reads them: the last dataDir, decoded.
    const escaped = `{"dataDir":"/nowhere","cniVersion":"1.0.0","data\\u0044ir":"${daemon.dir.replace(/\//g, '\\/')}"}`;
    const esc = await run(fake, cni('ADD'), escaped);
    assert.equal(esc.stdout.toString(), 'served\n');
    assert.equal(daemon.connections, before + 1);

    // A caller's BVCNI_FRONT_LOST is not the front's word: the answer is printed; alone, it is dropped.
    const forged = await run(fake, cni('ADD', { BVCNI_FRONT_LOST: 'forged' }), conf(daemon.dir));
    assert.equal(forged.stdout.toString(), 'served\n');
    const forgedAlone = await run(fake, cni('ADD', { BVCNI_FRONT_LOST: 'forged' }), conf(join(root, 'nothing')));
    assert.equal(forgedAlone.handed?.env.BVCNI_FRONT_LOST, undefined);
    assert.equal(forgedAlone.handed?.env.BVCNI_NO_DAEMON, '1');
  });

  test('a missing Node plugin is a CNI error naming it, in the config’s version', async () => {
    const dir = join(root, 'lonely');
    mkdirSync(dir);
    copyFileSync(FRONT, join(dir, 'bvcni'));
    chmodSync(join(dir, 'bvcni'), 0o755);
    const r = await run(join(dir, 'bvcni'), cni('ADD'), conf(join(root, 'nothing'), { cniVersion: '0.4.0' }));
    assert.equal(r.status, 1);
    const e = JSON.parse(r.stdout.toString()) as { cniVersion: string; code: number; details: string };
    assert.equal(e.cniVersion, '0.4.0');
    assert.equal(e.code, 100);
    assert.match(e.details, /cannot run the plugin .*lonely\/bvcni\.d\/bvcni-node: No such file/);
    // VERSION needs no Node plugin at all.
    const v = await run(join(dir, 'bvcni'), { CNI_COMMAND: 'VERSION' }, '');
    assert.equal(v.status, 0);
    assert.equal(JSON.parse(v.stdout.toString()).cniVersion, '1.1.0', 'the latest version the plugin speaks');
  });
});

// The answer parser against the Node plugin's (delegate.ts, readReply), on
// answers decoded strictly: the front hands an answer that is not UTF-8 over as lost.
type Expect = { kind: 'outcome'; stdout: Buffer; code: number } | { kind: 'local' } | { kind: 'lost' };

function oracle(answer: Buffer): Expect {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(answer);
  } catch {
    return { kind: 'lost' };
  }
  const reply = readReply(text);
  if (reply === 'garbage') return { kind: 'lost' };
  if (reply === 'declined') return { kind: 'local' };
  return { kind: 'outcome', stdout: Buffer.from(reply.stdout), code: reply.exitCode };
}

const SEEDS = [
  { outcome: { stdout: '{"cniVersion":"1.0.0","ips":[{"address":"10.244.1.5/24"}]}\n', exitCode: 0 } },
  { outcome: { stdout: '{"code":11,"msg":"ü \\" \u0001 😀"}\n', exitCode: 1 } },
  { declined: 'another pin directory' },
  { outcome: { exitCode: 0, stdout: '' }, extra: [1, { a: null }] },
];
const TOKENS = ['{', '}', '[', ']', '"', ',', ':', '\\', '\\u', '\\ud800', '\\udc00', '\\ud83d\\ude00', 'null', '1e2', '-0', '2.0', '256', '"outcome"', '"stdout"', '"exitCode"', '\xff', '\xc3', ' ', '\n', '\u0000'];

function mutate(base: Buffer, r: () => number): Buffer {
  let b = base;
  const n = 1 + Math.floor(r() * 3);
  for (let i = 0; i < n; i++) {
    const at = Math.floor(r() * (b.length + 1));
    const k = r();
    if (k < 0.3) {
      const c = Buffer.from(b);
      if (c.length) c[Math.min(at, c.length - 1)] = Math.floor(r() * 256);
      b = c;
    } else if (k < 0.55) {
      b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + Math.floor(r() * 8)))]);
    } else if (k < 0.9) {
      const t = TOKENS[Math.floor(r() * TOKENS.length)]!;
      b = Buffer.concat([b.subarray(0, at), Buffer.from(t, t.startsWith('\\') || t.length === 1 ? 'latin1' : 'utf8'), b.subarray(at)]);
    } else {
      b = b.subarray(0, at);
    }
  }
  return b;
}

const cc = spawnSync('cc', ['--version']).status === 0;

describe('the front reads any answer as JSON.parse would (fuzz, ASan + UBSan build)', { skip: (!built && 'needs make build') || (!cc && 'needs cc') }, () => {
  let daemon: FakeDaemon;
  let front: string;
  before(async () => {
    const asan = join(root, 'asan-bin');
    mkdirSync(asan);
    const bin = join(asan, 'bvcni');
    const c = spawnSync('cc', ['-O1', '-g', '-fsanitize=address,undefined', '-fno-sanitize-recover=all', '-Wall', '-Wextra', '-Werror', '-I', join(REPO, 'dist/front'), '-o', bin, join(REPO, 'src/cni/front/front.c')]);
    assert.equal(c.status, 0, c.stderr.toString());
    front = fakeInstall('asan', bin);
    daemon = new FakeDaemon(join(root, 'fuzz-data'));
    await daemon.start();
  });
  after(async () => daemon?.stop());

  test('300 mutated answers: printed, handed over to work alone, or lost, exactly as the oracle says; never a crash', async () => {
    const seed = 0x5eed14;
    const r = rng(seed);
    const counts = { outcome: 0, local: 0, lost: 0 };
    for (let i = 0; i < 300; i++) {
      const base = Buffer.from(JSON.stringify(SEEDS[i % SEEDS.length]));
      const ans = i < SEEDS.length ? base : mutate(base, r);
      daemon.behave = (_req, sock) => sock.end(ans);
      const got = await run(front, cni('ADD'), conf(daemon.dir));
      const want = oracle(ans);
      const label = `seed ${seed}, case ${i}: ${JSON.stringify(ans.toString('latin1'))}`;
      assert.equal(got.signal, null, label);
      assert.doesNotMatch(got.stderr, /Sanitizer|runtime error/, label);
      counts[want.kind]++;
      if (want.kind === 'outcome') {
        assert.equal(got.status, want.code, label);
        assert.deepEqual(got.stdout, want.stdout, label);
        assert.equal(got.handed, undefined, label);
      } else if (want.kind === 'local') {
        assert.equal(got.handed?.env.BVCNI_NO_DAEMON, '1', label);
      } else {
        assert.match(got.handed?.env.BVCNI_FRONT_LOST ?? '', /connection closed before a complete answer/, label);
      }
    }
    // Control: the mutations reach every branch.
    assert.ok(counts.outcome > 10 && counts.local > 10 && counts.lost > 10, JSON.stringify(counts));
  });
});
