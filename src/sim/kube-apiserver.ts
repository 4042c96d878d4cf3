// A small Kubernetes API server for the simulator (make demo) and the tests:
// Nodes only, in memory, over plain HTTP or over TLS with a throwaway CA the
// kubeconfig names (src/sim/tls.ts), speaking the real wire protocol to the
// real @kubernetes/client-node:
// list with resourceVersion (and limit/continue), chunked watch streams of JSON
// lines (ADDED/MODIFIED/DELETED/BOOKMARK/ERROR), 410 Gone for compacted
// resourceVersions (as an HTTP status or as a watch ERROR event, as the real
// server does), GET and PATCH of a Node and its status (JSON, merge and
// strategic-merge patches), and test-side controls for outages (stop/start),
// dropped streams, injected failures, watch streams gone silent (open, nothing
// sent, no bookmarks) and a hung server (connections accepted, requests read,
// never answered).
//
// The daemons under test run inside simulated node namespaces while the test
// runs in the root namespace, so the listening socket can be created inside
// another network namespace (a socket stays bound to the namespace it was
// created in).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { V1Node } from '@kubernetes/client-node';
import { NodeStore, type NodeEvent } from './kube-store.js';
import type { ServerTls } from './tls.js';
import { ResourceStore } from './kube-resources.js';

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

interface Watcher {
  res: ServerResponse;
  bookmarks: boolean;
  timer?: NodeJS.Timeout;
  /** A dead stream: kept open, sent nothing ever again. */
  muted?: boolean;
}

export interface FakeApiStartOptions {
  /** Network namespace path (/run/netns/X) to create the listening socket in. */
  netns?: string;
  /** Host to bind when not in a netns (default 127.0.0.1). In a netns the socket binds every address. */
  host?: string;
  port?: number;
}

export interface FakeApiOptions {
  /** How an expired resourceVersion on a watch is reported: like the real server (200 + ERROR event) or as HTTP 410. */
  goneAs?: 'event' | 'status';
  /** Send a BOOKMARK to bookmark-enabled watchers this often (0 = only on bookmark()). */
  bookmarkIntervalMs?: number;
  /** Keep at most this many events; older resourceVersions answer 410. */
  historyLimit?: number;
  /** Serve HTTPS with this certificate (makeServerTls); the kubeconfig then names its CA. */
  tls?: ServerTls;
}

export interface InjectedFailure {
  method?: string;
  /** 'list' | 'watch' | 'get' | 'patch' */
  verb?: string;
  status: number;
  count: number;
}

export interface RequestRecord {
  method: string;
  verb: string;
  url: string;
  contentType?: string;
  status: number;
  /** Date.now() when the request arrived. */
  at: number;
}

/** Runs fn with the calling thread inside the network namespace at path (synchronously). */
export type NetnsRunner = <T>(path: string, fn: () => T) => T;

const clone = <T>(v: T): T => structuredClone(v);
const arrivedAt = new WeakMap<IncomingMessage, number>();

export class FakeKubeApiServer {
  /** The Nodes, their history and the list/watch/patch semantics (src/sim/kube-store.ts). */
  private readonly store: NodeStore;
  private readonly watchers = new Set<Watcher>();
  private readonly sockets = new Set<Socket>();
  private server?: Server;
  private bookmarkTimer?: NodeJS.Timeout;
  private failures: InjectedFailure[] = [];
  private silent = false;
  private hung = false;
  private readonly held = new Set<ServerResponse>();
  private listenOpts: FakeApiStartOptions = {};
  private boundPort = 0;
  readonly requests: RequestRecord[] = [];
  readonly opts: Required<Omit<FakeApiOptions, 'tls'>> & Pick<FakeApiOptions, 'tls'>;
  /** Pods, Namespaces and NetworkPolicies (kube-resources.ts), on this server's resourceVersions. */
  readonly resources: ResourceStore;

  constructor(
    opts: FakeApiOptions = {},
    private readonly netnsRunner?: NetnsRunner,
  ) {
    this.opts = { goneAs: 'event', bookmarkIntervalMs: 0, historyLimit: 100_000, ...opts };
    this.store = new NodeStore(this.opts.historyLimit, (ev) => this.broadcast(ev));
    this.resources = new ResourceStore(
      () => this.store.takeResourceVersion(),
      () => this.store.resourceVersion,
      { historyLimit: this.opts.historyLimit, goneAs: this.opts.goneAs },
    );
  }

  // ---- lifecycle -------------------------------------------------------

  /** Starts listening; after stop(), start() again reuses the same address and port. */
  async start(listen: FakeApiStartOptions = this.listenOpts): Promise<void> {
    if (this.server) return;
    this.listenOpts = listen;
    const handler = (req: IncomingMessage, res: ServerResponse): void => this.handle(req, res);
    const tls = this.opts.tls;
    const server: Server = tls ? createTlsServer({ cert: tls.cert, key: tls.key }, handler) : createServer(handler);
    // Raw TCP sockets, TLS or not: an outage cuts them before or after the handshake.
    server.keepAliveTimeout = 60_000;
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    const port = this.boundPort || listen.port || 0;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.once('listening', () => {
        server.off('error', reject);
        resolve();
      });
      if (listen.netns) {
        if (!this.netnsRunner) throw new Error('FakeKubeApiServer: a netns needs a netns runner (loader withNetns)');
        // Without a host, net.Server creates and binds its socket synchronously,
        // so the socket is created while the thread is inside the namespace.
        this.netnsRunner(listen.netns, () => server.listen(port));
      } else {
        server.listen(port, listen.host ?? '127.0.0.1');
      }
    });
    const addr = server.address();
    if (addr === null || typeof addr === 'string') throw new Error('FakeKubeApiServer: no TCP address');
    this.boundPort = addr.port;
    this.server = server;
    if (this.opts.bookmarkIntervalMs > 0) {
      this.bookmarkTimer = setInterval(() => this.bookmark(), this.opts.bookmarkIntervalMs);
      this.bookmarkTimer.unref();
    }
  }

  /** An outage: stops listening and cuts every connection (clients see resets and refusals). */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    if (this.bookmarkTimer) clearInterval(this.bookmarkTimer);
    this.bookmarkTimer = undefined;
    for (const w of this.watchers) this.closeWatcher(w);
    this.resources.closeWatches();
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  async close(): Promise<void> {
    await this.stop();
  }

  get running(): boolean {
    return this.server !== undefined;
  }

  get port(): number {
    return this.boundPort;
  }

  /** Base URL as seen from a client that reaches the server at host. */
  url(host = this.listenOpts.host ?? '127.0.0.1'): string {
    return `${this.opts.tls ? 'https' : 'http'}://${host}:${this.boundPort}`;
  }

  /**
   * A kubeconfig (JSON is valid YAML). Over TLS it names the server's CA, as a
   * real cluster's does (`ca` overrides it, to present another one). Over plain
   * HTTP it sets insecure-skip-tls-verify: client-node (1.4 and 2.x alike)
   * refuses an http: server without it.
   */
  kubeconfig(host?: string, ca = this.opts.tls?.ca): string {
    const cluster = this.opts.tls
      ? { server: this.url(host), 'certificate-authority-data': Buffer.from(ca ?? '').toString('base64') }
      : { server: this.url(host), 'insecure-skip-tls-verify': true };
    return JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'fake', cluster }],
      users: [{ name: 'fake', user: { token: 'fake-token' } }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'fake' } }],
      'current-context': 'fake',
    });
  }

  // ---- test-side control ----------------------------------------------

  get resourceVersion(): number {
    return this.store.resourceVersion;
  }

  listNodes(): V1Node[] {
    return this.store.list();
  }

  getNode(name: string): V1Node | undefined {
    const n = this.store.get(name);
    return n ? clone(n) : undefined;
  }

  addNode(node: V1Node): V1Node {
    return this.store.add(node);
  }

  /** Replaces a node through a mutation of a copy; emits MODIFIED. */
  modifyNode(name: string, mutate: (n: V1Node) => void): V1Node {
    return this.store.modify(name, mutate);
  }

  deleteNode(name: string): boolean {
    return this.store.delete(name);
  }

  /** Forgets the event history: watches from any older resourceVersion now get 410 Gone. */
  compact(): void {
    this.store.compact();
    this.resources.compact();
  }

  /** Sends a BOOKMARK at the current resourceVersion to every watcher that asked for bookmarks. */
  bookmark(): number {
    let sent = 0;
    for (const w of this.watchers) {
      if (!w.bookmarks) continue;
      this.send(w, 'BOOKMARK', {
        kind: 'Node',
        apiVersion: 'v1',
        metadata: { resourceVersion: String(this.store.resourceVersion), annotations: { 'k8s.io/initial-events-end': 'true' } },
      });
      sent++;
    }
    return sent + this.resources.bookmark();
  }

  /** Sends a watch ERROR 410 to every watcher and ends their streams (what an apiserver does after compaction). */
  expireWatches(): number {
    this.compact();
    const n = this.watchers.size;
    for (const w of [...this.watchers]) {
      this.send(w, 'ERROR', goneStatus(`too old resource version: watch expired`));
      this.closeWatcher(w);
    }
    return n;
  }

  /** Cuts every watch connection abruptly (socket destroyed mid-stream). */
  dropWatches(): number {
    const n = this.watchers.size;
    for (const w of [...this.watchers]) {
      this.watchers.delete(w);
      if (w.timer) clearTimeout(w.timer);
      w.res.socket?.destroy();
    }
    return n;
  }

  /** Ends every watch stream cleanly (as the server's watch timeout does). */
  endWatches(): number {
    const n = this.watchers.size;
    for (const w of [...this.watchers]) this.closeWatcher(w);
    return n;
  }

  get watchCount(): number {
    return this.watchers.size;
  }

  /**
   * Watch streams go silent: every open one, and every one opened while
   * `on`, stays open and is sent nothing ever again (no events, no
   * bookmarks, no timeout end). Streams opened after silenceWatches(false)
   * are normal. Returns how many open streams were muted.
   */
  silenceWatches(on = true): number {
    this.silent = on;
    if (!on) return 0;
    let n = 0;
    for (const w of this.watchers) if (!w.muted) (n++, this.mute(w));
    return n;
  }

  /**
   * A hung server: while `on`, every request is accepted and read and never
   * answered (no status line), and every open watch goes silent. hang(false)
   * answers new requests again; the held ones stay unanswered until their
   * clients give up (or stop()).
   */
  hang(on = true): void {
    this.hung = on;
    if (on) for (const w of this.watchers) this.mute(w);
  }

  /** Requests held unanswered by hang() whose clients are still connected. */
  get heldCount(): number {
    return this.held.size;
  }

  private mute(w: Watcher): void {
    w.muted = true;
    if (w.timer) clearTimeout(w.timer);
    w.timer = undefined;
  }

  /** The next `count` matching requests answer `status` with a Status body. */
  injectFailure(f: InjectedFailure): void {
    this.failures.push({ ...f });
  }

  countRequests(verb: string): number {
    return this.requests.filter((r) => r.verb === verb).length;
  }

  // ---- internals -------------------------------------------------------

  private broadcast(ev: NodeEvent): void {
    for (const w of this.watchers) this.send(w, ev.type, ev.object);
  }

  private send(w: Watcher, type: WatchEventType, object: unknown): void {
    if (w.muted || w.res.writableEnded || w.res.destroyed) return;
    w.res.write(JSON.stringify({ type, object }) + '\n');
  }

  private closeWatcher(w: Watcher): void {
    this.watchers.delete(w);
    if (w.timer) clearTimeout(w.timer);
    if (!w.res.writableEnded) w.res.end();
  }

  private record(req: IncomingMessage, verb: string, status: number): void {
    this.requests.push({
      method: req.method ?? '',
      verb,
      url: req.url ?? '',
      contentType: req.headers['content-type'],
      status,
      at: arrivedAt.get(req) ?? Date.now(),
    });
    if (this.requests.length > 100_000) this.requests.splice(0, 50_000);
  }

  private takeFailure(method: string, verb: string): InjectedFailure | undefined {
    const f = this.failures.find((x) => x.count > 0 && (!x.method || x.method === method) && (!x.verb || x.verb === verb));
    if (!f) return undefined;
    f.count--;
    this.failures = this.failures.filter((x) => x.count > 0);
    return f;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    arrivedAt.set(req, Date.now());
    const url = new URL(req.url ?? '/', 'http://fake');
    const method = req.method ?? 'GET';
    const parts = url.pathname.split('/').filter(Boolean);
    // /api/v1/nodes[/NAME[/status]]
    const isNodes = parts[0] === 'api' && parts[1] === 'v1' && parts[2] === 'nodes';
    const name = isNodes ? parts[3] : undefined;
    const sub = isNodes ? parts[4] : undefined;
    const watch = url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1';
    let verb = 'unknown';
    if (isNodes && !name && method === 'GET') verb = watch ? 'watch' : 'list';
    else if (isNodes && name && !sub && method === 'GET') verb = 'get';
    else if (isNodes && name && (sub === undefined || sub === 'status') && method === 'PATCH') verb = 'patch';
    else if (isNodes && name && sub === 'status' && method === 'GET') verb = 'get';

    if (this.hung) {
      this.record(req, verb, 0);
      req.resume();
      this.held.add(res);
      res.on('close', () => this.held.delete(res));
      return;
    }
    const failure = this.takeFailure(method, verb);
    if (failure) {
      this.record(req, verb, failure.status);
      req.resume();
      return sendStatus(res, failure.status, `injected failure`, reasonFor(failure.status));
    }
    if (!isNodes && this.resources.route(url.pathname)) {
      const r = this.resources.handle(req, res, url);
      return this.record(req, r.verb, r.status);
    }
    switch (verb) {
      case 'list':
        return this.handleList(req, res, url);
      case 'watch':
        return this.handleWatch(req, res, url);
      case 'get': {
        const n = this.store.get(name!);
        this.record(req, verb, n ? 200 : 404);
        req.resume();
        if (!n) return sendStatus(res, 404, `nodes "${name}" not found`, 'NotFound');
        return sendJson(res, 200, n);
      }
      case 'patch':
        return this.handlePatch(req, res, name!, sub === 'status');
      default:
        this.record(req, verb, 404);
        req.resume();
        return sendStatus(res, 404, `the server could not find the requested resource`, 'NotFound');
    }
  }

  private handleList(req: IncomingMessage, res: ServerResponse, url: URL): void {
    req.resume();
    const page = this.store.listPage(Number(url.searchParams.get('limit') ?? 0), url.searchParams.get('continue'));
    if ('code' in page) {
      this.record(req, 'list', page.code);
      return sendStatus(res, page.code, page.message, page.reason);
    }
    this.record(req, 'list', 200);
    sendText(res, 200, page.text);
  }

  private handleWatch(req: IncomingMessage, res: ServerResponse, url: URL): void {
    req.resume();
    const rvParam = url.searchParams.get('resourceVersion') ?? '';
    const from = rvParam === '' || rvParam === '0' ? undefined : Number(rvParam);
    const replay = this.store.replay(from);
    if (replay === undefined) {
      const message = `too old resource version: ${rvParam} (${this.store.compactedResourceVersion})`;
      if (this.opts.goneAs === 'status' || !Number.isFinite(from)) {
        this.record(req, 'watch', 410);
        return sendStatus(res, 410, message, 'Expired');
      }
      this.record(req, 'watch', 200);
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      res.write(JSON.stringify({ type: 'ERROR', object: goneStatus(message) }) + '\n');
      res.end();
      return;
    }
    this.record(req, 'watch', 200);
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked', 'cache-control': 'no-cache' });
    res.flushHeaders();
    const w: Watcher = { res, bookmarks: url.searchParams.get('allowWatchBookmarks') === 'true', muted: this.silent };
    for (const ev of replay) this.send(w, ev.type, ev.object);
    this.watchers.add(w);
    const timeout = Number(url.searchParams.get('timeoutSeconds') ?? 0);
    if (timeout > 0 && !w.muted) w.timer = setTimeout(() => this.closeWatcher(w), timeout * 1000);
    res.on('close', () => {
      this.watchers.delete(w);
      if (w.timer) clearTimeout(w.timer);
    });
  }

  private handlePatch(req: IncomingMessage, res: ServerResponse, name: string, statusOnly: boolean): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const ct = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
      const out = this.store.patch(name, ct, Buffer.concat(chunks).toString('utf8'), statusOnly);
      if ('code' in out) {
        this.record(req, 'patch', out.code);
        return sendStatus(res, out.code, out.message, out.reason);
      }
      this.record(req, 'patch', 200);
      sendJson(res, 200, out.node);
    });
  }
}

function reasonFor(status: number): string {
  return (
    { 400: 'BadRequest', 401: 'Unauthorized', 403: 'Forbidden', 404: 'NotFound', 409: 'Conflict', 410: 'Expired', 429: 'TooManyRequests', 500: 'InternalError', 503: 'ServiceUnavailable' } as Record<number, string>
  )[status] ?? 'Unknown';
}

function goneStatus(message: string): object {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason: 'Expired', code: 410 };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  sendText(res, status, JSON.stringify(body));
}

function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendStatus(res: ServerResponse, code: number, message: string, reason: string): void {
  sendJson(res, code, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });
}
