// The simulated API server's Nodes and what it does with them, without HTTP
// (src/sim/kube-apiserver.ts serves it): resourceVersions, an event history
// that compaction cuts, list pages with continue tokens, the events a watch
// from a resourceVersion replays, and GET/PATCH semantics (JSON, merge and
// strategic-merge patches; the status subresource changes only status).
import type { V1Node } from '@kubernetes/client-node';

export type NodeEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface NodeEvent {
  rv: number;
  type: NodeEventType;
  object: V1Node;
}

/** A refusal, as the API server's Status: HTTP code, reason and message. */
export interface StoreRefusal {
  code: number;
  reason: string;
  message: string;
}

const clone = <T>(v: T): T => structuredClone(v);

export class NodeStore {
  private readonly nodes = new Map<string, V1Node>();
  /**
   * Node names in list order and each Node's JSON, kept up to date by every
   * change: a list page costs O(page) (a binary search for the continue
   * point, then the page's cached encodings), as from a real apiserver's watch
   * cache, not a sort and a serialisation of every Node.
   */
  private readonly sortedNames: string[] = [];
  private readonly encoded = new Map<string, string>();
  private history: NodeEvent[] = [];
  private rv = 100;
  /** Watches from a resourceVersion below this answer 410 Gone. */
  private compactedRv = 100;

  /** onEvent sees every change, after it is stored. */
  constructor(
    private readonly historyLimit: number,
    private readonly onEvent: (ev: NodeEvent) => void,
  ) {}

  get resourceVersion(): number {
    return this.rv;
  }

  /** The next resourceVersion, for an object of another kind kept elsewhere (src/sim/kube-resources.ts): one counter for every kind, as the real server's. */
  takeResourceVersion(): number {
    return ++this.rv;
  }

  get compactedResourceVersion(): number {
    return this.compactedRv;
  }

  /** The stored Node itself (callers only serialise it). */
  get(name: string): V1Node | undefined {
    return this.nodes.get(name);
  }

  values(): IterableIterator<V1Node> {
    return this.nodes.values();
  }

  list(): V1Node[] {
    return [...this.nodes.values()].map(clone);
  }

  add(node: V1Node): V1Node {
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
  modify(name: string, mutate: (n: V1Node) => void): V1Node {
    const cur = this.nodes.get(name);
    if (!cur) throw new Error(`modifyNode: no node ${name}`);
    const next = clone(cur);
    mutate(next);
    next.metadata = { ...next.metadata, name };
    this.commit('MODIFIED', next);
    return clone(next);
  }

  delete(name: string): boolean {
    const cur = this.nodes.get(name);
    if (!cur) return false;
    this.commit('DELETED', clone(cur));
    return true;
  }

  /** Forgets the event history: watches from any older resourceVersion now get 410 Gone. */
  compact(): void {
    this.history = [];
    this.compactedRv = this.rv;
  }

  /**
   * One page of the NodeList (limit 0: the rest), as the JSON text the server
   * sends; a continue token from before a compaction is refused.
   */
  listPage(limit: number, cont: string | null): { text: string } | StoreRefusal {
    let start = '';
    let listRv = this.rv;
    if (cont) {
      const tok = decodeContinue(cont);
      if (!tok || tok.rv < this.compactedRv) return { code: 410, reason: 'Expired', message: 'The provided continue parameter is too old' };
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
    return { text: `{"kind":"NodeList","apiVersion":"v1","metadata":${JSON.stringify(metadata)},"items":[${page.map((n) => this.encoded.get(n)!).join(',')}]}` };
  }

  /**
   * What a watch from resourceVersion `from` starts with: the events after it,
   * or undefined when compaction forgot them (410 Gone). Without a
   * resourceVersion the real server sends a synthetic ADDED for every object.
   */
  replay(from: number | undefined): { type: NodeEventType; object: V1Node }[] | undefined {
    if (from === undefined) return [...this.nodes.values()].map((object) => ({ type: 'ADDED', object }));
    if (!Number.isFinite(from) || from < this.compactedRv) return undefined;
    return this.history.filter((ev) => ev.rv > from);
  }

  /** A PATCH of the Node (or of its status subresource) with a body of contentType. */
  patch(name: string, contentType: string, body: string, statusOnly: boolean): { node: V1Node } | StoreRefusal {
    const cur = this.nodes.get(name);
    if (!cur) return { code: 404, reason: 'NotFound', message: `nodes "${name}" not found` };
    let patch: unknown;
    try {
      patch = JSON.parse(body);
    } catch {
      return { code: 400, reason: 'BadRequest', message: 'patch body is not JSON' };
    }
    let next: V1Node;
    try {
      const base = clone(cur) as unknown as Record<string, unknown>;
      let out: unknown;
      if (contentType === 'application/json-patch+json') out = applyJsonPatch(base, patch);
      else if (contentType === 'application/merge-patch+json') out = mergePatch(base, patch, false);
      else if (contentType === 'application/strategic-merge-patch+json') out = mergePatch(base, patch, true);
      else return { code: 415, reason: 'UnsupportedMediaType', message: `unsupported patch content type ${JSON.stringify(contentType)}` };
      next = out as V1Node;
    } catch (e) {
      return { code: 422, reason: 'Invalid', message: `patch failed: ${(e as Error).message}` };
    }
    // The status subresource changes only status; the main resource never changes status.
    const merged = clone(cur);
    if (statusOnly) merged.status = next.status;
    else Object.assign(merged, next, { status: cur.status });
    merged.metadata = { ...merged.metadata, name, uid: cur.metadata?.uid, resourceVersion: cur.metadata?.resourceVersion };
    this.commit('MODIFIED', merged);
    return { node: this.nodes.get(name)! };
  }

  private commit(type: NodeEventType, obj: V1Node): void {
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
    const ev: NodeEvent = { rv: this.rv, type, object: clone(obj) };
    this.history.push(ev);
    if (this.history.length > this.historyLimit) {
      const dropped = this.history.splice(0, this.history.length - this.historyLimit);
      this.compactedRv = dropped[dropped.length - 1]!.rv;
    }
    this.onEvent(ev);
  }
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
