import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exchange, preferredTransport, type Transport } from '../../src/cni/unix-exchange.js';

interface Outcome {
  connected: boolean;
  answer?: Buffer;
  failed?: string;
}

function run(path: string, request: string, transport: Transport): Promise<Outcome> {
  return new Promise((resolve) => {
    const o: Outcome = { connected: false };
    exchange(
      path,
      request,
      {
        connected: () => (o.connected = true),
        answered: (answer) => resolve({ ...o, answer }),
        failed: (why) => resolve({ ...o, failed: why }),
      },
      transport,
    );
  });
}

/** A server whose every connection is handled by serve once the client has sent everything. */
async function listen(path: string, serve: (request: Buffer, sock: Socket) => void): Promise<Server> {
  const server = createServer({ allowHalfOpen: true }, (sock) => {
    const chunks: Buffer[] = [];
    sock.on('data', (d: Buffer) => chunks.push(d));
    sock.on('error', () => {});
    sock.on('end', () => serve(Buffer.concat(chunks), sock));
  });
  await new Promise<void>((r) => server.listen(path, r));
  return server;
}

const close = (s: Server): Promise<void> => new Promise((r) => s.close(() => r()));

test('the plugin talks to bvcnid through the libuv pipe, not node:net, on this Node', () => {
  // The fast path is an internal binding: if a Node upgrade takes it away,
  // the plugin still works through node:net but an ADD costs ~2.8 ms more.
  assert.equal(preferredTransport(), 'libuv pipe');
});

for (const transport of ['libuv pipe', 'node:net'] as const) {
  describe(`exchange over ${transport}`, () => {
    let dir: string;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'bvcux-'));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    test('a large request arrives whole and a large answer comes back whole', async () => {
      const path = join(dir, 'big.sock');
      // Larger than a unix socket's buffer, so both sides write in several goes.
      const request = 'r'.repeat(3 << 20) + 'END';
      const server = await listen(path, (req, sock) => sock.end(Buffer.concat([Buffer.from(`${req.length}:`), Buffer.alloc(2 << 20, 0x61)])));
      try {
        const o = await run(path, request, transport);
        assert.equal(o.failed, undefined);
        assert.equal(o.connected, true);
        const text = o.answer!.toString();
        assert.equal(text.slice(0, text.indexOf(':')), String(request.length));
        assert.equal(o.answer!.length, String(request.length).length + 1 + (2 << 20));
      } finally {
        await close(server);
      }
    });

    test('an answer without bytes is an empty answer', async () => {
      const path = join(dir, 'empty.sock');
      const server = await listen(path, (_req, sock) => sock.end());
      try {
        const o = await run(path, '{}', transport);
        assert.equal(o.connected, true);
        assert.deepEqual(o.answer, Buffer.alloc(0));
      } finally {
        await close(server);
      }
    });

    test('no socket: failure before connecting, naming the cause', async () => {
      const o = await run(join(dir, 'absent.sock'), '{}', transport);
      assert.equal(o.connected, false);
      assert.match(o.failed ?? '', /ENOENT/);
    });

    test('a daemon that drops the connection unread: connected, then failure or nothing', async () => {
      const path = join(dir, 'drop.sock');
      const server = createServer((sock) => sock.destroy());
      await new Promise<void>((r) => server.listen(path, r));
      try {
        const o = await run(path, 'x'.repeat(1 << 20), transport);
        assert.equal(o.connected, true);
        if (o.failed === undefined) assert.deepEqual(o.answer, Buffer.alloc(0));
        else assert.match(o.failed, /ECONNRESET|EPIPE/);
      } finally {
        await close(server);
      }
    });

    test('abort closes the connection and nothing is reported after it', async () => {
      const path = join(dir, 'abort.sock');
      let serverSawClose!: () => void;
      const closed = new Promise<void>((r) => (serverSawClose = r));
      const server = createServer({ allowHalfOpen: true }, (sock) => {
        sock.on('error', () => {});
        sock.resume();
        sock.on('close', () => serverSawClose());
        sock.on('end', () => {
          serverSawClose();
          sock.end();
        });
      });
      await new Promise<void>((r) => server.listen(path, r));
      try {
        const events: string[] = [];
        const conn = exchange(
          path,
          '{}',
          {
            connected: () => {
              events.push('connected');
              conn.abort();
            },
            answered: () => events.push('answered'),
            failed: (why) => events.push(`failed ${why}`),
          },
          transport,
        );
        await closed;
        await new Promise((r) => setTimeout(r, 20));
        assert.deepEqual(events, ['connected']);
      } finally {
        await close(server);
      }
    });
  });
}
