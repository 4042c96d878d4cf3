// One request and one answer over a unix socket, for a process that lives a
// few milliseconds: the plugin talking to bvcnid.
//
// node:net costs ~2.8 ms here before the first byte moves, in every run: it
// loads and compiles Node's whole stream stack (operators, pipeline, compose,
// duplex) and then runs it cold. That is half of what an ADD through bvcnid may
// cost above Node's own start-up. So, where it is there and shaped as
// expected, this drives libuv's pipe handle directly — the binding node:net is
// itself built on, reached through process.binding's allow-list — and
// otherwise uses node:net. Measured in one run with two minimal clients and a
// daemon that answers at once: 0.1 ms above an empty executable's start-up
// over the pipe handle, 2.9 ms over node:net. The binding is Node's internal
// API: the executable embeds the Node it was built with, and a unit test fails
// if this Node no longer offers it.
import type { Socket } from 'node:net';
import { getSystemErrorName } from 'node:util';

export interface ExchangeEvents {
  /** The daemon accepted the connection: the request is on its way. */
  connected(): void;
  /** The daemon ended its side; everything it sent. */
  answered(answer: Buffer): void;
  /** Connecting, sending or receiving failed. */
  failed(why: string): void;
}

export interface Exchange {
  /** Closes the connection; no event follows. */
  abort(): void;
}

export type Transport = 'libuv pipe' | 'node:net';

/** Connects to path, sends request, ends the sending side, collects the answer. */
export function exchange(path: string, request: string, on: ExchangeEvents, transport: Transport = preferredTransport()): Exchange {
  return transport === 'libuv pipe' ? pipeExchange(path, request, on) : netExchange(path, request, on);
}

export function preferredTransport(): Transport {
  return pipeBinding() ? 'libuv pipe' : 'node:net';
}

function netExchange(path: string, request: string, on: ExchangeEvents): Exchange {
  const chunks: Buffer[] = [];
  let done = false;
  let sock: Socket | undefined;
  // Imported only here: loading it is what the pipe path avoids.
  void import('node:net').then(({ connect }) => {
    if (done) return;
    const s = connect(path);
    sock = s;
    // Queued at once: it leaves with the connection instead of one loop turn later.
    s.end(request);
    s.on('connect', () => on.connected());
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', (e) => {
      if (done) return;
      done = true;
      on.failed(e.message);
    });
    // A socket that has seen the other end close closes itself (it is not half-open).
    s.on('end', () => {
      if (done) return;
      done = true;
      on.answered(Buffer.concat(chunks));
    });
  });
  return {
    abort: () => {
      if (done) return;
      done = true;
      sock?.destroy();
    },
  };
}

// The shapes of Node's pipe_wrap and stream_wrap bindings that are used here.
interface ReqWrap {
  oncomplete: (status: number) => void;
  handle?: PipeHandle;
}
interface PipeHandle {
  connect(req: ReqWrap, path: string): number;
  readStart(): number;
  writeUtf8String(req: ReqWrap, text: string): number;
  shutdown(req: ReqWrap): number;
  close(cb?: () => void): void;
  onread: (this: PipeHandle, buf: ArrayBuffer | undefined) => void;
}
interface PipeBinding {
  newPipe(): PipeHandle;
  newConnect(): ReqWrap;
  newWrite(): ReqWrap & { async?: boolean };
  newShutdown(): ReqWrap;
  state: Int32Array;
  kReadBytesOrError: number;
  kArrayBufferOffset: number;
}

const UV_EOF = -4095;
let binding: PipeBinding | null | undefined;

function pipeBinding(): PipeBinding | undefined {
  if (binding === undefined) binding = loadPipeBinding() ?? null;
  return binding ?? undefined;
}

type Ctor<T> = new (arg?: number) => T;

function loadPipeBinding(): PipeBinding | undefined {
  try {
    const bind = (process as unknown as { binding(name: string): Record<string, unknown> }).binding;
    const pw = bind('pipe_wrap');
    const sw = bind('stream_wrap');
    const Pipe = pw.Pipe as Ctor<PipeHandle>;
    const PipeConnectWrap = pw.PipeConnectWrap as Ctor<ReqWrap>;
    const SOCKET = (pw.constants as Record<string, unknown> | undefined)?.SOCKET;
    const WriteWrap = sw.WriteWrap as Ctor<ReqWrap>;
    const ShutdownWrap = sw.ShutdownWrap as Ctor<ReqWrap>;
    const { streamBaseState: state, kReadBytesOrError, kArrayBufferOffset } = sw;
    if (
      typeof Pipe !== 'function' ||
      typeof PipeConnectWrap !== 'function' ||
      typeof WriteWrap !== 'function' ||
      typeof ShutdownWrap !== 'function' ||
      typeof SOCKET !== 'number' ||
      !(state instanceof Int32Array) ||
      typeof kReadBytesOrError !== 'number' ||
      typeof kArrayBufferOffset !== 'number'
    ) {
      return undefined;
    }
    const methods = Pipe.prototype as unknown as Record<string, unknown>;
    if (!['connect', 'readStart', 'writeUtf8String', 'shutdown', 'close'].every((m) => typeof methods[m] === 'function')) return undefined;
    return {
      newPipe: () => new Pipe(SOCKET),
      newConnect: () => new PipeConnectWrap(),
      newWrite: () => new WriteWrap(),
      newShutdown: () => new ShutdownWrap(),
      state,
      kReadBytesOrError,
      kArrayBufferOffset,
    };
  } catch {
    return undefined;
  }
}

function pipeExchange(path: string, request: string, on: ExchangeEvents): Exchange {
  const b = pipeBinding();
  if (!b) return netExchange(path, request, on);
  const handle = b.newPipe();
  const chunks: Buffer[] = [];
  // Requests in flight must stay reachable until libuv completes them.
  const inflight = new Set<ReqWrap>();
  let done = false;
  const close = (): void => {
    if (done) return;
    done = true;
    handle.close();
  };
  const fail = (what: string, status: number): void => {
    if (done) return;
    close();
    on.failed(`${what} ${uvErrorName(status)} ${path}`);
  };
  const track = (req: ReqWrap, what: string, start: (req: ReqWrap) => number): void => {
    req.handle = handle;
    req.oncomplete = (status: number) => {
      inflight.delete(req);
      if (status < 0) fail(what, status);
    };
    inflight.add(req);
    const err = start(req);
    if (err < 0) {
      inflight.delete(req);
      fail(what, err);
    }
  };

  handle.onread = (buf) => {
    const n = b.state[b.kReadBytesOrError]!;
    if (n > 0 && buf) {
      chunks.push(Buffer.from(buf, b.state[b.kArrayBufferOffset]!, n));
      return;
    }
    if (n === UV_EOF) {
      if (done) return;
      close();
      on.answered(Buffer.concat(chunks));
    } else if (n < 0) fail('receive', n);
  };
  const conn = b.newConnect();
  conn.oncomplete = (status: number) => {
    inflight.delete(conn);
    if (done) return;
    if (status < 0) {
      fail('connect', status);
      return;
    }
    on.connected();
    if (done) return;
    const err = handle.readStart();
    if (err < 0) {
      fail('receive', err);
      return;
    }
    track(b.newWrite(), 'send', (req) => handle.writeUtf8String(req, request));
    if (!done) track(b.newShutdown(), 'send', (req) => handle.shutdown(req));
  };
  inflight.add(conn);
  const err = handle.connect(conn, path);
  if (err < 0) {
    inflight.delete(conn);
    // Reported after the caller has its handle, as node:net does.
    queueMicrotask(() => fail('connect', err));
  }
  return { abort: close };
}

function uvErrorName(status: number): string {
  try {
    return getSystemErrorName(status);
  } catch {
    return `error ${status}`;
  }
}
