// bvcnid's CNI socket with a stand-in handler: the plugin's client gets the
// handler's answer, declines make the client work alone, only CNI_* variables
// cross, and every request is counted in the Prometheus metrics.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { CniServer } from '../../src/daemon/cni-server.js';
import { DaemonMetrics } from '../../src/daemon/metrics.js';
import { delegate, nsId } from '../../src/cni/delegate.js';
import { daemonRequest } from '../fixtures/cni/harness.js';

describe('bvcnid CNI socket', () => {
  let dir: string;
  let server: CniServer;
  const metrics = new DaemonMetrics();
  const seen: NodeJS.ProcessEnv[] = [];
  const PIN = '/sys/fs/bpf/bvcni-unit-test';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bvcni-cnisrv-'));
    server = new CniServer({
      stateDir: dir,
      pinDir: PIN,
      log: pino({ level: 'silent' }),
      metrics,
      handler: (env, stdin) => {
        seen.push(env);
        const fail = (JSON.parse(stdin) as { fail?: boolean }).fail;
        return fail ? { stdout: '{"code":7}\n', exitCode: 1 } : { stdout: `{"served":"${env.CNI_COMMAND}"}\n`, exitCode: 0 };
      },
    });
    await server.start();
  });
  after(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const conf = (extra: object = {}): string => JSON.stringify({ cniVersion: '1.1.0', name: 'n', type: 'bvcni', dataDir: dir, pinDir: PIN, ...extra });
  const metric = async (name: string, labels: string): Promise<number> => {
    const text = await metrics.registry.metrics();
    const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
    return line ? Number(line.split(' ').pop()) : 0;
  };

  test('the socket is private to root', () => {
    assert.equal(statSync(join(dir, 'bvcnid.sock')).mode & 0o777, 0o600);
  });

  test("the client gets the handler's answer; only CNI_* variables reach the daemon", async () => {
    const out = await delegate({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0', SECRET: 'x' }, conf());
    assert.deepEqual(out, { stdout: '{"served":"ADD"}\n', exitCode: 0 });
    assert.deepEqual(seen.at(-1), { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0' });
    const err = await delegate({ CNI_COMMAND: 'DEL' }, conf({ fail: true }));
    assert.equal(err?.exitCode, 1);
    assert.equal(await metric('bvcni_cni_requests_total', 'command="ADD",result="ok"'), 1);
    assert.equal(await metric('bvcni_cni_requests_total', 'command="DEL",result="error"'), 1);
    assert.equal(await metric('bvcni_cni_request_duration_seconds_count', 'command="ADD"'), 1);
  });

  test('declined (another pin directory, a namespace it sees otherwise): the client works alone', async () => {
    const before = seen.length;
    assert.equal(await delegate({ CNI_COMMAND: 'ADD' }, conf({ pinDir: '/sys/fs/bpf/elsewhere' })), undefined);
    // The plugin saw another namespace behind CNI_NETNS than the daemon sees (another PID or mount namespace).
    const reply = await daemonRequest(join(dir, 'bvcnid.sock'), {
      protocol: 1,
      env: { CNI_COMMAND: 'ADD', CNI_NETNS: dir },
      stdin: conf(),
      nodeNs: nsId('/proc/self/ns/net'),
      podNs: { dev: 1, ino: 2 },
    });
    assert.match(String(reply.declined), /another namespace/);
    assert.equal(seen.length, before, 'the handler never ran');
    assert.equal(await metric('bvcni_cni_requests_total', 'command="ADD",result="declined"'), 2);
  });

  test('no daemon (socket gone, or another data directory): the client works alone at once', async () => {
    assert.equal(await delegate({ CNI_COMMAND: 'ADD' }, conf({ dataDir: join(dir, 'nowhere') })), undefined);
    assert.equal(await delegate({ CNI_COMMAND: 'ADD' }, 'not json'), undefined);
    assert.equal(await delegate({ CNI_COMMAND: 'ADD', BVCNI_NO_DAEMON: '1' }, conf()), undefined);
  });

  test('stop removes the socket, so plugins stop trying', async () => {
    const s2dir = mkdtempSync(join(tmpdir(), 'bvcni-cnisrv-'));
    try {
      const s2 = new CniServer({ stateDir: s2dir, pinDir: PIN, log: pino({ level: 'silent' }), handler: () => ({ stdout: '', exitCode: 0 }) });
      await s2.start();
      assert.ok(existsSync(join(s2dir, 'bvcnid.sock')));
      await s2.stop();
      assert.ok(!existsSync(join(s2dir, 'bvcnid.sock')));
    } finally {
      rmSync(s2dir, { recursive: true, force: true });
    }
  });
});
