// The daemon's only contact with @kubernetes/client-node: kubeconfig, the
// Node list/watch calls behind the informer, and the NetworkUnavailable
// condition. Kept to one module so the library's API churn stays here.
//
// Only KubeConfig (credentials, TLS, proxies, token refresh) and Watch are
// used from the library. The generated API classes (CoreV1Api) would pull in
// every model and the ObjectSerializer's type map, about 14 MiB of the
// daemon's RSS, to make three requests; those go through KubeConfig's own
// request options instead (applyToHTTPSOptions, what Watch builds on too), and
// tools/bundle.ts leaves the generated code out of the bundle.
import http from 'node:http';
import https from 'node:https';
import { ApiException, KubeConfig, Watch } from '@kubernetes/client-node';
import type { NodeApi, NodeListResult, WatchHandle } from './informer.js';
import type { NodeLike } from './desired.js';
import { ListItemSplitter } from './json-items.js';

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
  query: Record<string, string | number | undefined> = {},
  body?: { contentType: string; value: unknown },
): Promise<T> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('No currently active cluster');
  const url = new URL(cluster.server + path);
  for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v));
  const payload = body === undefined ? undefined : JSON.stringify(body.value);
  const opts: https.RequestOptions = {
    method,
    headers: { accept: 'application/json', ...(body ? { 'content-type': body.contentType } : {}) },
  };
  await kc.applyToHTTPSOptions(opts);
  const send = url.protocol === 'https:' ? https.request : http.request;
  return new Promise<T>((resolve, reject) => {
    const req = send(url, opts, (res) => {
      const status = res.statusCode ?? 0;
      const notJson = (e: unknown): Error => new Error(`${method} ${path}: response is not JSON: ${String(e)}`);
      if (status >= 200 && status < 300) {
        res.on('data', (c: Buffer) => {
          try {
            reader.write(c);
          } catch (e) {
            // The rest of a malformed body is not worth reading.
            res.destroy();
            reject(notJson(e));
          }
        });
        res.on('error', reject);
        res.on('end', () => {
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
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch {
          // An error answer need not be JSON; its text goes into the exception.
        }
        const msg = (parsed as { message?: unknown } | undefined)?.message;
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers[k] = String(v);
        reject(new ApiException(status, typeof msg === 'string' ? msg : (res.statusMessage ?? ''), parsed ?? text, headers));
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

interface NodeListPage {
  items: NodeLike[];
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
function slimNodeList(): BodyReader<NodeListPage | undefined> {
  const items: NodeLike[] = [];
  const splitter = new ListItemSplitter((item) => items.push(slimNode(item as NodeLike)));
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
      const page = doc as { items?: unknown; metadata?: NodeListPage['metadata'] } | null;
      if (!Array.isArray(page?.items)) return undefined; // JSON, but not a list
      if (!streamed) for (const n of page.items as NodeLike[]) items.push(slimNode(n));
      return { items, metadata: page.metadata };
    },
  };
}

/**
 * client-node 2.x's Watch ends a stream that is silent for 30 s, with an
 * error. A real API server's watch on a quiet cluster is silent for longer
 * (bookmarks come about once a minute), so each would end in an error report
 * and a reconnect. Judging silence is the informer's job (its idle timeout,
 * beyond the server's own timeoutSeconds): the library's timer is set past it.
 */
const WATCH_SILENCE_MS = 15 * 60_000;

export function nodeApi(kc: KubeConfig): NodeApi {
  const watcher = new Watch(kc);
  // A private field in the library's types; test/integration/kube-apiserver.test.ts checks it takes effect.
  Object.assign(watcher, { requestTimeoutMs: WATCH_SILENCE_MS });
  return {
    async list(): Promise<NodeListResult> {
      // Paged, so the full objects of a large cluster never sit in memory at once
      // (only their slim copies do). An expired continue token is a 410: the
      // informer relists from scratch.
      const items: NodeLike[] = [];
      let cont: string | undefined;
      let resourceVersion = '';
      do {
        const page = await request(kc, 'GET', '/api/v1/nodes', slimNodeList(), { limit: LIST_PAGE, continue: cont });
        if (!page) throw new Error('GET /api/v1/nodes: the answer is not a list');
        // Already slimmed as the page was read.
        for (const n of page.items) items.push(n);
        resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
        cont = page.metadata?.continue || undefined;
      } while (cont);
      return { items, resourceVersion };
    },
    async watch(resourceVersion, onEvent, onDone): Promise<WatchHandle> {
      const ctl = await watcher.watch(
        '/api/v1/nodes',
        { resourceVersion, allowWatchBookmarks: true, timeoutSeconds: watchTimeoutSeconds() },
        (type: string, obj: unknown) => onEvent(type, type === 'ERROR' ? obj : slimNode(obj as NodeLike)),
        (err: unknown) => onDone(err),
      );
      return { abort: () => ctl.abort() };
    },
  };
}

const nodePath = (name: string): string => `/api/v1/nodes/${encodeURIComponent(name)}`;

/** GET one Node; undefined when it does not exist (404). */
export function nodeGetter(kc: KubeConfig): (name: string) => Promise<NodeLike | undefined> {
  return async (name) => {
    try {
      return slimNode((await request(kc, 'GET', nodePath(name), jsonBody())) as NodeLike);
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

export interface ConditionPatcher {
  setNetworkAvailable(nodeName: string, message: string): Promise<void>;
}

export function conditionPatcher(kc: KubeConfig): ConditionPatcher {
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
      await request(kc, 'PATCH', `${nodePath(nodeName)}/status`, jsonBody(), {}, { contentType: 'application/strategic-merge-patch+json', value: body });
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
