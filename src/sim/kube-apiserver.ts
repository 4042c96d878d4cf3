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
import type { V1Node, V1NodeCondition } from '@kubernetes/client-node';
import type { ServerTls } from './tls.js';
import { ResourceStore } from './kube-resources.js';

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

interface HistoryEvent {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: V1Node;
}

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
  private readonly nodes = new Map<string, V1Node>();
  /**
   * Node names in list order and each Node's JSON, kept up to date by every
   * change: a list page costs O(page) (a binary search for the continue
   * point, then the page's cached encodings), as from a real apiserver's watch
   * cache, not a sort and a serialisation of every Node.
   */
  private readonly sortedNames: string[] = [];
  private readonly encoded = new Map<string, string>();
  private history: HistoryEvent[] = [];
  private rv = 100;
  /** Watches from a resourceVersion below this answer 410 Gone. */
  private compactedRv = 100;
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
    this.resources = new ResourceStore(() => ++this.rv, () => this.rv, { historyLimit: this.opts.historyLimit, goneAs: this.opts.goneAs });
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
    return this.rv;
  }

  listNodes(): V1Node[] {
    return [...this.nodes.values()].map(clone);
  }

  getNode(name: string): V1Node | undefined {
    const n = this.nodes.get(name);
    return n ? clone(n) : undefined;
  }

  addNode(node: V1Node): V1Node {
    const name = node.metadata?.name;
    if (!name) throw new Error('addNode: metadata.name is required');
    if (this.nodes.has(name)) throw new Error(`addNode: node ${name} exists`);
    const stored = clone(node);
    stored.apiVersion = 'v1';
    stored.kind = 'Node';
    stored.metadata = {
      ...stored.metadata,
      name,
      uid: stored.metadata?.uid ?? `uid-${name}-${this.rv + 1}`,
      creationTimestamp: stored.metadata?.creationTimestamp ?? new Date(),
    };
    this.commit('ADDED', stored);
    return clone(stored);
  }

  /** Replaces a node through a mutation of a copy; emits MODIFIED. */
  modifyNode(name: string, mutate: (n: V1Node) => void): V1Node {
    const cur = this.nodes.get(name);
    if (!cur) throw new Error(`modifyNode: no node ${name}`);
    const next = clone(cur);
    mutate(next);
    next.metadata = { ...next.metadata, name };
    this.commit('MODIFIED', next);
    return clone(next);
  }

  deleteNode(name: string): boolean {
    const cur = this.nodes.get(name);
    if (!cur) return false;
    this.commit('DELETED', clone(cur));
    return true;
  }

  /** Forgets the event history: watches from any older resourceVersion now get 410 Gone. */
  compact(): void {
    this.history = [];
    this.compactedRv = this.rv;
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
        metadata: { resourceVersion: String(this.rv), annotations: { 'k8s.io/initial-events-end': 'true' } },
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

  private commit(type: HistoryEvent['type'], obj: V1Node): void {
    this.rv++;
    obj.metadata = { ...obj.metadata, resourceVersion: String(this.rv) };
    const name = obj.metadata.name!;
    const at = firstAfter(this.sortedNames, name, true);
    const present = this.sortedNames[at] === name;
    if (type === 'DELETED') {
      this.nodes.delete(name);
      this.encoded.delete(name);
      if (present) this.sortedNames.splice(at, 1);
    } else {
      this.nodes.set(name, obj);
      this.encoded.set(name, JSON.stringify(obj));
      if (!present) this.sortedNames.splice(at, 0, name);
    }
    const ev: HistoryEvent = { rv: this.rv, type, object: clone(obj) };
    this.history.push(ev);
    if (this.history.length > this.opts.historyLimit) {
      const dropped = this.history.splice(0, this.history.length - this.opts.historyLimit);
      this.compactedRv = dropped[dropped.length - 1]!.rv;
    }
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
        const n = this.nodes.get(name!);
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
    const limit = Number(url.searchParams.get('limit') ?? 0);
    const cont = url.searchParams.get('continue');
    let start = '';
    let listRv = this.rv;
    if (cont) {
      const tok = decodeContinue(cont);
      if (!tok || tok.rv < this.compactedRv) {
        this.record(req, 'list', 410);
        return sendStatus(res, 410, 'The provided continue parameter is too old', 'Expired');
      }
      start = tok.start;
      listRv = tok.rv;
    }
    const from = firstAfter(this.sortedNames, start, false);
    const to = limit > 0 ? Math.min(from + limit, this.sortedNames.length) : this.sortedNames.length;
    const page = this.sortedNames.slice(from, to);
    const more = to < this.sortedNames.length;
    const metadata = {
      resourceVersion: String(listRv),
      ...(more ? { continue: encodeContinue({ rv: listRv, start: page[page.length - 1]! }), remainingItemCount: this.sortedNames.length - to } : {}),
    };
    // The same text as JSON.stringify of the NodeList, from the Nodes' cached encodings.
    const text = `{"kind":"NodeList","apiVersion":"v1","metadata":${JSON.stringify(metadata)},"items":[${page.map((n) => this.encoded.get(n)!).join(',')}]}`;
    this.record(req, 'list', 200);
    sendText(res, 200, text);
  }

  private handleWatch(req: IncomingMessage, res: ServerResponse, url: URL): void {
    req.resume();
    const rvParam = url.searchParams.get('resourceVersion') ?? '';
    const from = rvParam === '' || rvParam === '0' ? undefined : Number(rvParam);
    if (from !== undefined && (!Number.isFinite(from) || from < this.compactedRv)) {
      if (this.opts.goneAs === 'status' || !Number.isFinite(from)) {
        this.record(req, 'watch', 410);
        return sendStatus(res, 410, `too old resource version: ${rvParam} (${this.compactedRv})`, 'Expired');
      }
      this.record(req, 'watch', 200);
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      res.write(JSON.stringify({ type: 'ERROR', object: goneStatus(`too old resource version: ${rvParam} (${this.compactedRv})`) }) + '\n');
      res.end();
      return;
    }
    this.record(req, 'watch', 200);
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked', 'cache-control': 'no-cache' });
    res.flushHeaders();
    const w: Watcher = { res, bookmarks: url.searchParams.get('allowWatchBookmarks') === 'true', muted: this.silent };
    // Without a resourceVersion the real server starts with synthetic ADDED events for every object.
    if (from === undefined) for (const n of this.nodes.values()) this.send(w, 'ADDED', n);
    else for (const ev of this.history) if (ev.rv > from) this.send(w, ev.type, ev.object);
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
      const cur = this.nodes.get(name);
      if (!cur) {
        this.record(req, 'patch', 404);
        return sendStatus(res, 404, `nodes "${name}" not found`, 'NotFound');
      }
      let patch: unknown;
      try {
        patch = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        this.record(req, 'patch', 400);
        return sendStatus(res, 400, 'patch body is not JSON', 'BadRequest');
      }
      let next: V1Node;
      try {
        const base = clone(cur) as unknown as Record<string, unknown>;
        let out: unknown;
        if (ct === 'application/json-patch+json') out = applyJsonPatch(base, patch);
        else if (ct === 'application/merge-patch+json') out = mergePatch(base, patch, false);
        else if (ct === 'application/strategic-merge-patch+json') out = mergePatch(base, patch, true);
        else {
          this.record(req, 'patch', 415);
          return sendStatus(res, 415, `unsupported patch content type ${JSON.stringify(ct)}`, 'UnsupportedMediaType');
        }
        next = out as V1Node;
      } catch (e) {
        this.record(req, 'patch', 422);
        return sendStatus(res, 422, `patch failed: ${(e as Error).message}`, 'Invalid');
      }
      // The status subresource changes only status; the main resource never changes status.
      const merged = clone(cur);
      if (statusOnly) merged.status = next.status;
      else Object.assign(merged, next, { status: cur.status });
      merged.metadata = { ...merged.metadata, name, uid: cur.metadata?.uid, resourceVersion: cur.metadata?.resourceVersion };
      this.record(req, 'patch', 200);
      this.commit('MODIFIED', merged);
      sendJson(res, 200, this.nodes.get(name));
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

/**
 * Index of the first name in sorted (ascending, JS string order as sort()
 * uses) that is greater than name, or with orEqual not less than it.
 */
function firstAfter(sorted: readonly string[], name: string, orEqual: boolean): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const v = sorted[mid]!;
    if (v < name || (!orEqual && v === name)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function encodeContinue(t: { rv: number; start: string }): string {
  return Buffer.from(JSON.stringify(t)).toString('base64url');
}

function decodeContinue(s: string): { rv: number; start: string } | undefined {
  try {
    const t = JSON.parse(Buffer.from(s, 'base64url').toString('utf8')) as { rv?: unknown; start?: unknown };
    return typeof t.rv === 'number' && typeof t.start === 'string' ? { rv: t.rv, start: t.start } : undefined;
  } catch {
    return undefined;
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Lists that strategic merge patch merges element-wise by key (the ones a Node carries). */
const MERGE_KEYS: Record<string, string> = { conditions: 'type', addresses: 'type', taints: 'key' };

/** RFC 7386 merge patch; with strategic, the Node lists above merge by their key. */
function mergePatch(target: unknown, patch: unknown, strategic: boolean, field = ''): unknown {
  if (!isObj(patch)) {
    if (strategic && Array.isArray(patch) && Array.isArray(target) && MERGE_KEYS[field]) {
      const key = MERGE_KEYS[field]!;
      const out = target.map((x) => clone(x) as unknown);
      for (const p of patch) {
        if (!isObj(p)) throw new Error(`${field}: element is not an object`);
        if (p['$patch'] === 'delete') {
          const i = out.findIndex((x) => isObj(x) && x[key] === p[key]);
          if (i >= 0) out.splice(i, 1);
          continue;
        }
        const i = out.findIndex((x) => isObj(x) && x[key] === p[key]);
        if (i >= 0) out[i] = mergePatch(out[i], p, true);
        else out.push(mergePatch({}, p, true));
      }
      return out;
    }
    return clone(patch);
  }
  const out: Record<string, unknown> = isObj(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v, strategic, k);
  }
  return out;
}

function pointer(path: string): string[] {
  if (!path.startsWith('/')) throw new Error(`bad JSON pointer ${JSON.stringify(path)}`);
  return path
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** RFC 6902 subset: add, replace, remove, test. */
function applyJsonPatch(doc: Record<string, unknown>, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw new Error('JSON patch must be an array');
  for (const op of ops) {
    if (!isObj(op) || typeof op.op !== 'string' || typeof op.path !== 'string') throw new Error('bad JSON patch operation');
    const segs = pointer(op.path);
    const last = segs.pop()!;
    let parent: unknown = doc;
    for (const s of segs) {
      parent = Array.isArray(parent) ? parent[Number(s)] : isObj(parent) ? parent[s] : undefined;
      if (parent === undefined) throw new Error(`path ${op.path} does not exist`);
    }
    const get = (): unknown => (Array.isArray(parent) ? parent[Number(last)] : (parent as Record<string, unknown>)[last]);
    switch (op.op) {
      case 'test':
        if (JSON.stringify(get()) !== JSON.stringify(op.value)) throw new Error(`test failed at ${op.path}`);
        break;
      case 'add':
        if (Array.isArray(parent)) parent.splice(last === '-' ? parent.length : Number(last), 0, clone(op.value));
        else (parent as Record<string, unknown>)[last] = clone(op.value);
        break;
      case 'replace':
        if (get() === undefined) throw new Error(`path ${op.path} does not exist`);
        if (Array.isArray(parent)) parent[Number(last)] = clone(op.value);
        else (parent as Record<string, unknown>)[last] = clone(op.value);
        break;
      case 'remove':
        if (get() === undefined) throw new Error(`path ${op.path} does not exist`);
        if (Array.isArray(parent)) parent.splice(Number(last), 1);
        else delete (parent as Record<string, unknown>)[last];
        break;
      default:
        throw new Error(`unsupported JSON patch op ${op.op}`);
    }
  }
  return doc;
}

/** A Node object as the node lifecycle controller and kubelet would leave it. */
export function makeNode(
  name: string,
  opts: { podCIDR?: string; podCIDRs?: string[]; internalIP?: string | string[]; externalIP?: string; labels?: Record<string, string> } = {},
): V1Node {
  const ips = opts.internalIP === undefined ? [] : Array.isArray(opts.internalIP) ? opts.internalIP : [opts.internalIP];
  const podCIDRs = opts.podCIDRs ?? (opts.podCIDR ? [opts.podCIDR] : undefined);
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { 'kubernetes.io/hostname': name, ...opts.labels } },
    spec: { ...(opts.podCIDR ?? podCIDRs?.[0] ? { podCIDR: opts.podCIDR ?? podCIDRs![0] } : {}), ...(podCIDRs ? { podCIDRs } : {}) },
    status: {
      addresses: [
        ...ips.map((address) => ({ type: 'InternalIP', address })),
        ...(opts.externalIP ? [{ type: 'ExternalIP', address: opts.externalIP }] : []),
        { type: 'Hostname', address: name },
      ],
      conditions: [{ type: 'Ready', status: 'False', reason: 'KubeletNotReady', message: 'network plugin is not ready' }],
    },
  };
}

/** Deterministic hex of length n derived from seed (stands in for digests and ids; FNV-1a steps). */
function fakeHex(seed: string, n: number): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < seed.length; i++) h = Math.imul(h ^ seed.charCodeAt(i), 0x01000193) >>> 0;
  let out = '';
  while (out.length < n) {
    h = Math.imul(h ^ out.length, 0x01000193) >>> 0;
    out += h.toString(16).padStart(8, '0');
  }
  return out.slice(0, n);
}

const REALISTIC_IMAGES = [
  'registry.k8s.io/kube-proxy:v1.30.4',
  'registry.k8s.io/pause:3.9',
  'registry.k8s.io/coredns/coredns:v1.11.1',
  'registry.k8s.io/metrics-server/metrics-server:v0.7.1',
  'registry.k8s.io/ingress-nginx/controller:v1.10.1',
  'registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.10.1',
  'registry.k8s.io/sig-storage/livenessprobe:v2.12.0',
  'registry.k8s.io/provider-aws/aws-ebs-csi-driver:v1.32.0',
  'quay.io/prometheus/node-exporter:v1.8.1',
  'quay.io/prometheus-operator/prometheus-config-reloader:v0.75.0',
  'quay.io/jetstack/cert-manager-controller:v1.15.1',
  'quay.io/jetstack/cert-manager-webhook:v1.15.1',
  'docker.io/grafana/promtail:3.0.0',
  'docker.io/library/nginx:1.27.0',
  'docker.io/library/redis:7.2.5-alpine',
  'docker.io/library/postgres:16.3',
  'docker.io/bitnami/kubectl:1.30.2',
  'ghcr.io/fluxcd/source-controller:v1.3.0',
  'ghcr.io/fluxcd/kustomize-controller:v1.3.0',
  'ghcr.io/bvcni/bvcni:0.1.0',
];

/**
 * A Node shaped like one a kubelet reports in a production cluster (about
 * 12 KiB of JSON): labels and annotations, managedFields of the kubelet and the
 * controller manager, capacity/allocatable, five conditions, nodeInfo and a
 * list of cached images (names with digests, sizes). Benchmarks that measure
 * what a client pays per Node use it; the fields the daemon reads are those of
 * makeNode.
 */
export function makeRealisticNode(
  name: string,
  opts: { podCIDR?: string; podCIDRs?: string[]; internalIP?: string | string[]; externalIP?: string; labels?: Record<string, string>; images?: number } = {},
): V1Node {
  const base = makeNode(name, opts);
  const t = new Date('2026-11-02T08:14:31Z');
  const zone = `eu-west-1${'abc'[name.length % 3]}`;
  const fields = (keys: string[]): Record<string, object> => Object.fromEntries(keys.map((k) => [k, {}]));
  const conditionFields = Object.fromEntries(
    ['DiskPressure', 'MemoryPressure', 'NetworkUnavailable', 'PIDPressure', 'Ready'].map((type) => [
      `k:{"type":"${type}"}`,
      { '.': {}, ...fields(['f:lastHeartbeatTime', 'f:lastTransitionTime', 'f:message', 'f:reason', 'f:status', 'f:type']) },
    ]),
  );
  const resources = { cpu: '8', 'ephemeral-storage': '101430960Ki', 'hugepages-1Gi': '0', 'hugepages-2Mi': '0', memory: '32386544Ki', pods: '110' };
  const images = Array.from({ length: opts.images ?? 40 }, (_, i) => {
    const ref = REALISTIC_IMAGES[i % REALISTIC_IMAGES.length]!;
    const repo = ref.slice(0, ref.lastIndexOf(':'));
    const tag = i < REALISTIC_IMAGES.length ? ref : `${repo}:build-${fakeHex(`${name}/${i}`, 12)}`;
    return { names: [`${repo}@sha256:${fakeHex(`${tag}@`, 64)}`, tag], sizeBytes: 5_000_000 + ((i * 7_654_321) % 300_000_000) };
  });
  const cond = (type: string, status: string, reason: string, message: string): V1NodeCondition => ({
    type, status, lastHeartbeatTime: t, lastTransitionTime: t, reason, message,
  });
  return {
    ...base,
    metadata: {
      ...base.metadata,
      uid: `${fakeHex(name, 8)}-${fakeHex(`${name}1`, 4)}-4${fakeHex(`${name}2`, 3)}-8${fakeHex(`${name}3`, 3)}-${fakeHex(`${name}4`, 12)}`,
      creationTimestamp: t,
      labels: {
        'beta.kubernetes.io/arch': 'amd64',
        'beta.kubernetes.io/instance-type': 'm6i.2xlarge',
        'beta.kubernetes.io/os': 'linux',
        'failure-domain.beta.kubernetes.io/region': 'eu-west-1',
        'failure-domain.beta.kubernetes.io/zone': zone,
        'kubernetes.io/arch': 'amd64',
        'kubernetes.io/hostname': name,
        'kubernetes.io/os': 'linux',
        'node.kubernetes.io/instance-type': 'm6i.2xlarge',
        'topology.kubernetes.io/region': 'eu-west-1',
        'topology.kubernetes.io/zone': zone,
        'topology.ebs.csi.aws.com/zone': zone,
        ...opts.labels,
      },
      annotations: {
        'alpha.kubernetes.io/provided-node-ip': base.status?.addresses?.[0]?.address ?? '',
        'csi.volume.kubernetes.io/nodeid': JSON.stringify({ 'ebs.csi.aws.com': `i-${fakeHex(name, 17)}` }),
        'kubeadm.alpha.kubernetes.io/cri-socket': 'unix:///run/containerd/containerd.sock',
        'node.alpha.kubernetes.io/ttl': '0',
        'volumes.kubernetes.io/controller-managed-attach-detach': 'true',
      },
      managedFields: [
        {
          manager: 'kubelet', operation: 'Update', apiVersion: 'v1', time: t, fieldsType: 'FieldsV1',
          fieldsV1: {
            'f:metadata': {
              'f:annotations': { '.': {}, ...fields(['f:alpha.kubernetes.io/provided-node-ip', 'f:csi.volume.kubernetes.io/nodeid', 'f:node.alpha.kubernetes.io/ttl', 'f:volumes.kubernetes.io/controller-managed-attach-detach']) },
              'f:labels': { '.': {}, ...fields(['f:beta.kubernetes.io/arch', 'f:beta.kubernetes.io/os', 'f:kubernetes.io/arch', 'f:kubernetes.io/hostname', 'f:kubernetes.io/os', 'f:node.kubernetes.io/instance-type', 'f:topology.kubernetes.io/region', 'f:topology.kubernetes.io/zone']) },
            },
            'f:spec': fields(['f:providerID']),
          },
        },
        {
          manager: 'kube-controller-manager', operation: 'Update', apiVersion: 'v1', time: t, fieldsType: 'FieldsV1',
          fieldsV1: { 'f:spec': { 'f:podCIDR': {}, 'f:podCIDRs': { '.': {}, [`v:"${base.spec?.podCIDR ?? ''}"`]: {} } } },
        },
        {
          manager: 'bvcnid', operation: 'Update', apiVersion: 'v1', time: t, fieldsType: 'FieldsV1', subresource: 'status',
          fieldsV1: { 'f:status': { 'f:conditions': { [`k:{"type":"NetworkUnavailable"}`]: conditionFields[`k:{"type":"NetworkUnavailable"}`]! } } },
        },
        {
          manager: 'kubelet', operation: 'Update', apiVersion: 'v1', time: t, fieldsType: 'FieldsV1', subresource: 'status',
          fieldsV1: {
            'f:status': {
              'f:allocatable': fields(Object.keys(resources).map((k) => `f:${k}`)),
              'f:capacity': fields(Object.keys(resources).map((k) => `f:${k}`)),
              'f:conditions': conditionFields,
              ...fields(['f:daemonEndpoints', 'f:images', 'f:nodeInfo', 'f:volumesAttached', 'f:volumesInUse']),
            },
          },
        },
      ],
    },
    spec: { ...base.spec, providerID: `aws:///${zone}/i-${fakeHex(name, 17)}` },
    status: {
      ...base.status,
      capacity: resources,
      allocatable: { ...resources, cpu: '7910m', 'ephemeral-storage': '92403479626', memory: '31369712Ki' },
      conditions: [
        cond('NetworkUnavailable', 'False', 'BvcniIsUp', 'bvcnid is running on this node'),
        cond('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'),
        cond('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'),
        cond('PIDPressure', 'False', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'),
        cond('Ready', 'True', 'KubeletReady', 'kubelet is posting ready status'),
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
      nodeInfo: {
        machineID: fakeHex(`${name}m`, 32),
        systemUUID: `ec2${fakeHex(`${name}s`, 5)}-${fakeHex(`${name}t`, 4)}-${fakeHex(`${name}u`, 4)}-${fakeHex(`${name}v`, 4)}-${fakeHex(`${name}w`, 12)}`,
        bootID: `${fakeHex(`${name}b`, 8)}-${fakeHex(`${name}c`, 4)}-${fakeHex(`${name}d`, 4)}-${fakeHex(`${name}e`, 4)}-${fakeHex(`${name}f`, 12)}`,
        kernelVersion: '6.1.102-111.182.amzn2023.x86_64',
        osImage: 'Amazon Linux 2023.5.20240819',
        containerRuntimeVersion: 'containerd://1.7.20',
        kubeletVersion: 'v1.30.4-eks-a737599',
        kubeProxyVersion: 'v1.30.4-eks-a737599',
        operatingSystem: 'linux',
        architecture: 'amd64',
      },
      images,
      volumesInUse: [`kubernetes.io/csi/ebs.csi.aws.com^vol-${fakeHex(`${name}vol`, 17)}`],
      volumesAttached: [{ name: `kubernetes.io/csi/ebs.csi.aws.com^vol-${fakeHex(`${name}vol`, 17)}`, devicePath: '' }],
    },
  };
}
