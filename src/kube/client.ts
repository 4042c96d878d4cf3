// The daemon's only contact with @kubernetes/client-node: kubeconfig, the
// Node list/watch calls behind the informer, and the NetworkUnavailable
// condition. Kept to one module so the library's API churn stays here.
//
// Only KubeConfig (credentials, TLS, proxies, token refresh) and ApiException
// are used from the library. The generated API classes (CoreV1Api) would pull in
// every model and the ObjectSerializer's type map, about 14 MiB of the
// daemon's RSS, to make three requests; those go through KubeConfig's own
// request options instead (applyToHTTPSOptions, what its Watch builds on too), and
// tools/bundle.ts leaves the generated code out of the bundle.
//
// Every request has a deadline (ApiBounds): connect and response headers
// within `timeoutMs`, a whole body (a list page, a GET) within `bodyTimeoutMs`.
// The watch is a request of our own too: client-node's Watch creates its
// AbortController inside and hands it out only once the response headers are
// in, so a server that accepts the connection and never answers would hold it
// forever. A watch's body has no deadline (it is a stream): the
// informer restarts one that stays silent (informer.ts).
import http from 'node:http';
import https from 'node:https';
import { createInterface } from 'node:readline';
import { ApiException, KubeConfig } from '@kubernetes/client-node';
import type { KubeObjectLike, ListWatchApi, NodeApi, WatchHandle } from './informer.js';
import type { NodeLike } from './desired.js';
import { ListItemSplitter } from './json-items.js';
import { Defaults } from '../common/defaults.js';

export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromCluster();
  if (!kc.getCurrentCluster()) throw new Error(`kubeconfig ${path ?? '(in-cluster)'}: no current cluster`);
  return kc;
}

/**
 * Watches are recycled by the server after timeoutSeconds; the value is
 * jittered (as client-go does) so that a fleet of daemons does not reconnect
 * in lockstep.
 */
function watchTimeoutSeconds(): number {
  return 300 + Math.floor(Math.random() * 300);
}

/** Nodes per list request: what client-go's informers ask for. */
export const LIST_PAGE = 500;

export interface ApiBounds {
  /** Connect and response headers of any request (a watch included). */
  timeoutMs: number;
  /** A whole response body once its headers are in (one list page, a GET, a PATCH); not a watch stream. */
  bodyTimeoutMs: number;
}

/** Defaults of bvcnid's --api-timeout and --api-body-timeout. */
export const DEFAULT_API_BOUNDS: ApiBounds = { timeoutMs: Defaults.apiTimeoutMs, bodyTimeoutMs: Defaults.apiBodyTimeoutMs };

/** A request that missed its deadline: code ETIMEDOUT, as a socket timeout reports (metrics label it so). */
export class ApiTimeoutError extends Error {
  readonly code = 'ETIMEDOUT';
  constructor(message: string) {
    super(message);
    this.name = 'ApiTimeoutError';
  }
}

/** http(s).request with the kubeconfig's credentials, and a deadline for the response headers. */
async function send(
  kc: KubeConfig,
  method: string,
  path: string,
  query: Record<string, string | number | boolean | undefined>,
  headers: Record<string, string>,
  bounds: ApiBounds,
): Promise<{ req: http.ClientRequest; response: Promise<http.IncomingMessage> }> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('No currently active cluster');
  const url = new URL(cluster.server + path);
  for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v));
  const opts: https.RequestOptions = { method, headers: { accept: 'application/json', ...headers } };
  await kc.applyToHTTPSOptions(opts);
  const req = (url.protocol === 'https:' ? https.request : http.request)(url, opts);
  const response = new Promise<http.IncomingMessage>((resolve, reject) => {
    const timer = setTimeout(
      () => req.destroy(new ApiTimeoutError(`${method} ${path}: no response within ${bounds.timeoutMs} ms (--api-timeout)`)),
      bounds.timeoutMs,
    );
    req.once('response', (res) => {
      clearTimeout(timer);
      resolve(res);
    });
    // on, not once: a socket that fails after the headers reports here too (the body's reader hears of it from the response).
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.once('close', () => clearTimeout(timer));
  });
  // Whoever awaits the response sees its failure; this keeps an abandoned one from being unhandled.
  response.catch(() => {});
  return { req, response };
}

/** The ApiException for a non-2xx answer (body read in full, under the body deadline). */
function apiError(res: http.IncomingMessage, text: string): ApiException<unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // An error answer need not be JSON; its text goes into the exception.
  }
  const msg = (parsed as { message?: unknown } | undefined)?.message;
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers[k] = String(v);
  return new ApiException(res.statusCode ?? 0, typeof msg === 'string' ? msg : (res.statusMessage ?? ''), parsed ?? text, headers);
}

/** How a 2xx body is consumed as it arrives; end() gives the result or throws. */
interface BodyReader<T> {
  write(chunk: Buffer): void;
  end(): T;
}

/** The whole body, parsed at once: for answers that are single objects. */
function jsonBody(): BodyReader<unknown> {
  const chunks: Buffer[] = [];
  return {
    write: (c) => void chunks.push(c),
    end: () => JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown,
  };
}

/**
 * One API request with the kubeconfig's credentials. A 2xx body goes through
 * `reader` as it streams in; a body it cannot read rejects (never an empty
 * result: an empty Node list would delete every tunnel entry). Non-2xx answers
 * throw client-node's ApiException (code = HTTP status), as its generated
 * clients do, so error handling (410, 404) is the same.
 */
async function request<T>(
  kc: KubeConfig,
  method: string,
  path: string,
  reader: BodyReader<T>,
  bounds: ApiBounds,
  query: Record<string, string | number | undefined> = {},
  body?: { contentType: string; value: unknown },
): Promise<T> {
  const payload = body === undefined ? undefined : JSON.stringify(body.value);
  const { req, response } = await send(kc, method, path, query, body ? { 'content-type': body.contentType } : {}, bounds);
  req.end(payload);
  const res = await response;
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () => res.destroy(new ApiTimeoutError(`${method} ${path}: body not complete within ${bounds.bodyTimeoutMs} ms (--api-body-timeout)`)),
      bounds.bodyTimeoutMs,
    );
    const fail = (e: unknown): void => {
      clearTimeout(timer);
      reject(e);
    };
    res.on('error', fail);
    // A body cut short (the socket closed or destroyed by the deadline) never reaches 'end'.
    res.on('close', () => {
      if (!res.complete) fail(Object.assign(new Error(`${method} ${path}: connection closed before the body ended`), { code: 'ECONNRESET' }));
    });
    const status = res.statusCode ?? 0;
    const notJson = (e: unknown): Error => new Error(`${method} ${path}: response is not JSON: ${String(e)}`);
    if (status >= 200 && status < 300) {
      res.on('data', (c: Buffer) => {
        try {
          reader.write(c);
        } catch (e) {
          // The rest of a malformed body is not worth reading.
          res.destroy();
          fail(notJson(e));
        }
      });
      res.on('end', () => {
        clearTimeout(timer);
        try {
          resolve(reader.end());
        } catch (e) {
          reject(notJson(e));
        }
      });
      return;
    }
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => fail(apiError(res, Buffer.concat(chunks).toString('utf8'))));
  });
}

interface ListPage<T> {
  items: T[];
  metadata?: { resourceVersion?: string; continue?: string };
}

/**
 * Pages up to this size are parsed at once. In a daemon that has just started
 * (V8 not yet warmed up) that is much cheaper than the splitter for small
 * objects (5,000 Nodes of 0.4 KiB, pages of ~220 KiB: ~80 ms less). It is kept
 * small because the bytes held until the choice is made, then split in one
 * burst, stay resident: 1 MiB cost ~9 MiB of RSS with kubelet-sized Nodes.
 */
const WHOLE_PAGE_BYTES = 256 * 1024;

/**
 * A NodeList page whose Nodes are slimmed as soon as they are read: beyond
 * WHOLE_PAGE_BYTES item by item as it streams in, so the daemon's memory for a
 * list does not grow with the size of the Node objects, only with their
 * number. Undefined for JSON that is not a list.
 */
function slimList<T>(slim: (o: T) => T): BodyReader<ListPage<T> | undefined> {
  const items: T[] = [];
  const splitter = new ListItemSplitter((item) => items.push(slim(item as T)));
  let held: Buffer[] | undefined = [];
  let heldBytes = 0;
  return {
    write: (c) => {
      if (!held) return splitter.write(c);
      held.push(c);
      heldBytes += c.length;
      if (heldBytes <= WHOLE_PAGE_BYTES) return;
      for (const h of held) splitter.write(h);
      held = undefined;
    },
    end: () => {
      let doc: unknown;
      let streamed = false;
      if (held) doc = JSON.parse(Buffer.concat(held).toString('utf8'));
      else ({ doc, streamed } = splitter.end());
      const page = doc as { items?: unknown; metadata?: ListPage<T>['metadata'] } | null;
      if (!Array.isArray(page?.items)) return undefined; // JSON, but not a list
      if (!streamed) for (const n of page.items as T[]) items.push(slim(n));
      return { items, metadata: page.metadata };
    },
  };
}

export function nodeApi(kc: KubeConfig, bounds: ApiBounds = DEFAULT_API_BOUNDS): NodeApi {
  return listWatchApi<NodeLike>(kc, '/api/v1/nodes', slimNode, bounds);
}

/**
 * List (paged) and watch of one collection path, each object slimmed to what
 * its user reads as soon as it is parsed: Nodes here, and Pods, Namespaces and
 * NetworkPolicies for NetworkPolicy (src/policy reads only their few fields).
 */
export function listWatchApi<T extends KubeObjectLike>(
  kc: KubeConfig,
  path: string,
  slim: (o: T) => T,
  bounds: ApiBounds = DEFAULT_API_BOUNDS,
): ListWatchApi<T> {
  return {
    async list() {
      // Paged, so the full objects of a large cluster never sit in memory at once
      // (only their slim copies do). An expired continue token is a 410: the
      // informer relists from scratch.
      const items: T[] = [];
      let cont: string | undefined;
      let resourceVersion = '';
      do {
        const page = await request(kc, 'GET', path, slimList(slim), bounds, { limit: LIST_PAGE, continue: cont });
        if (!page) throw new Error(`GET ${path}: the answer is not a list`);
        // Already slimmed as the page was read.
        for (const n of page.items) items.push(n);
        resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
        cont = page.metadata?.continue || undefined;
      } while (cont);
      return { items, resourceVersion };
    },
    watch: (resourceVersion, onEvent, onDone) => watchPath(kc, bounds, path, slim, resourceVersion, onEvent, onDone),
  };
}

/**
 * A watch of a collection: resolves once the server has answered 200 (onDone(err)
 * and a spent handle when it does not, within bounds.timeoutMs), then hands
 * each JSON line to onEvent until the stream ends (onDone(null)), fails
 * (onDone(err)) or is aborted (onDone(null) too: the caller asked for it).
 */
async function watchPath<T>(
  kc: KubeConfig,
  bounds: ApiBounds,
  path: string,
  slim: (o: T) => T,
  resourceVersion: string,
  onEvent: (type: string, object: unknown) => void,
  onDone: (err: unknown) => void,
): Promise<WatchHandle> {
  let ended = false;
  const done = (err: unknown): void => {
    if (ended) return;
    ended = true;
    onDone(err);
  };
  let req: http.ClientRequest | undefined;
  const handle: WatchHandle = {
    abort: () => {
      done(null);
      req?.destroy();
    },
  };
  try {
    const sent = await send(
      kc,
      'GET',
      path,
      { watch: true, resourceVersion, allowWatchBookmarks: true, timeoutSeconds: watchTimeoutSeconds() },
      {},
      bounds,
    );
    req = sent.req;
    if (ended) {
      req.destroy();
      return handle;
    }
    // As client-node's Watch did: the kernel probes an idle stream's peer (the idle watchdog is the bound).
    req.on('socket', (sock) => sock.setKeepAlive(true, 30_000));
    req.end();
    const res = await sent.response;
    if (ended) {
      res.destroy();
      return handle;
    }
    if (res.statusCode !== 200) {
      // Read before resolving: an error answer is no watch opened (the informer counts that as progress).
      const chunks: Buffer[] = [];
      const timer = setTimeout(() => res.destroy(), bounds.bodyTimeoutMs);
      res.on('data', (c: Buffer) => chunks.push(c));
      await new Promise<void>((r) => res.once('close', () => r()));
      clearTimeout(timer);
      const e = apiError(res, Buffer.concat(chunks).toString('utf8'));
      // What client-node's Watch reported (statusCode), so a 410 is recognised the same way.
      done(Object.assign(e, { statusCode: res.statusCode }));
      return handle;
    }
    res.on('error', (e) => done(e));
    res.on('close', () => done(res.complete ? null : Object.assign(new Error('watch connection closed mid-stream'), { code: 'ECONNRESET' })));
    const lines = createInterface({ input: res, crlfDelay: Infinity });
    // readline re-emits its input's errors (a reset mid-stream: "aborted").
    lines.on('error', (e) => done(e));
    lines.on('line', (line) => {
      if (ended || !line.trim()) return;
      let ev: { type?: unknown; object?: unknown };
      try {
        ev = JSON.parse(line) as { type?: unknown; object?: unknown };
      } catch {
        return done(new Error(`watch: a line that is not JSON: ${line.slice(0, 100)}`));
      }
      const type = String(ev.type);
      onEvent(type, type === 'ERROR' ? ev.object : slim(ev.object as T));
    });
  } catch (e) {
    done(e);
  }
  return handle;
}

const nodePath = (name: string): string => `/api/v1/nodes/${encodeURIComponent(name)}`;

/** GET one Node; undefined when it does not exist (404). */
export function nodeGetter(kc: KubeConfig, bounds: ApiBounds = DEFAULT_API_BOUNDS): (name: string) => Promise<NodeLike | undefined> {
  return async (name) => {
    try {
      return slimNode((await request(kc, 'GET', nodePath(name), jsonBody(), bounds)) as NodeLike);
    } catch (e) {
      if ((e as { code?: unknown }).code === 404) return undefined;
      throw e;
    }
  };
}

/**
 * Only the fields the daemon reads: a 5,000-node cluster's Node objects
 * (images, conditions, managedFields) would otherwise dominate its memory.
 */
export function slimNode(n: NodeLike): NodeLike {
  const m = n.metadata;
  return {
    metadata: { name: m?.name, resourceVersion: m?.resourceVersion, creationTimestamp: m?.creationTimestamp },
    spec: { podCIDR: n.spec?.podCIDR, podCIDRs: n.spec?.podCIDRs },
    status: { addresses: n.status?.addresses?.map((a) => ({ type: a.type, address: a.address })) },
  };
}

/** The collections NetworkPolicy lists and watches (RBAC: get, list, watch on exactly these). */
export const POLICY_PATHS = {
  pods: '/api/v1/pods',
  namespaces: '/api/v1/namespaces',
  networkPolicies: '/apis/networking.k8s.io/v1/networkpolicies',
} as const;

/** What a Pod, Namespace or NetworkPolicy is to the informers: a JSON object with metadata. */
export interface ObjectLike extends KubeObjectLike {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string> };
  [k: string]: unknown;
}

function rec(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function slimMeta(o: ObjectLike, labels: boolean): ObjectLike['metadata'] {
  const m = o.metadata;
  return { name: m?.name, namespace: m?.namespace, resourceVersion: m?.resourceVersion, ...(labels && m?.labels ? { labels: m.labels } : {}) };
}

/**
 * A Pod reduced to what NetworkPolicy reads (labels, node, host network,
 * containers' ports, address and phase): about 0.3 KiB kept of a kubelet's
 * 4–8 KiB, which is what keeps 100,000 Pods in memory cheap.
 */
export function slimPod(o: ObjectLike): ObjectLike {
  const spec = rec(o.spec);
  const status = rec(o.status);
  const ports = (list: unknown): unknown[] =>
    Array.isArray(list) ? list.map((c) => ({ ports: (rec(c)?.ports as unknown[] | undefined)?.map((p) => ({ name: rec(p)?.name, containerPort: rec(p)?.containerPort, protocol: rec(p)?.protocol })) })) : [];
  return {
    metadata: slimMeta(o, true),
    ...(spec ? { spec: { nodeName: spec.nodeName, hostNetwork: spec.hostNetwork, containers: ports(spec.containers), initContainers: ports(spec.initContainers) } } : {}),
    ...(status ? { status: { podIP: status.podIP, phase: status.phase } } : {}),
  };
}

export function slimNamespace(o: ObjectLike): ObjectLike {
  return { metadata: slimMeta(o, true) };
}

/** A NetworkPolicy keeps its whole spec (it is all read); its annotations and managedFields go. */
export function slimNetworkPolicy(o: ObjectLike): ObjectLike {
  return { metadata: slimMeta(o, false), ...(o.spec !== undefined ? { spec: o.spec } : {}) };
}

export interface ConditionPatcher {
  setNetworkAvailable(nodeName: string, message: string): Promise<void>;
}

export function conditionPatcher(kc: KubeConfig, bounds: ApiBounds = DEFAULT_API_BOUNDS): ConditionPatcher {
  return {
    async setNetworkAvailable(nodeName, message) {
      const now = new Date().toISOString();
      // Strategic merge: `conditions` merge by `type`, other conditions stay.
      const body = {
        status: {
          conditions: [
            {
              type: 'NetworkUnavailable',
              status: 'False',
              reason: 'BvcniIsUp',
              message,
              lastTransitionTime: now,
              lastHeartbeatTime: now,
            },
          ],
        },
      };
      await request(kc, 'PATCH', `${nodePath(nodeName)}/status`, jsonBody(), bounds, {}, { contentType: 'application/strategic-merge-patch+json', value: body });
    },
  };
}

/** A short description of a client-node error for logs and metric labels. */
export function describeApiError(err: unknown): { code: string; message: string } {
  if (typeof err === 'object' && err !== null) {
    const e = err as { code?: unknown; statusCode?: unknown; message?: unknown; errno?: unknown; cause?: unknown };
    // client-node 2.x's Watch uses fetch, which reports a failed connection as
    // TypeError('fetch failed') with the socket's error (ECONNREFUSED, …) as its cause.
    if (e.code === undefined && e.statusCode === undefined && typeof e.cause === 'object' && e.cause !== null) {
      const inner = describeApiError(e.cause);
      if (inner.code !== 'unknown') return { code: inner.code, message: `${typeof e.message === 'string' ? e.message : 'error'}: ${inner.message}`.slice(0, 300) };
    }
    const code = typeof e.code === 'number' ? String(e.code) : typeof e.statusCode === 'number' ? String(e.statusCode) : typeof e.code === 'string' ? e.code : 'unknown';
    const message = typeof e.message === 'string' ? e.message.split('\n')[0]!.slice(0, 300) : String(err);
    return { code, message };
  }
  return { code: 'unknown', message: String(err) };
}
