// Pods, Namespaces and NetworkPolicies for the fake API server
// (kube-apiserver.ts serves Nodes and hands these paths here): list with
// resourceVersion, limit and continue, cluster-wide or per namespace; get;
// watch from a resourceVersion with BOOKMARKs and 410 Gone, as the real server
// does. resourceVersions come from the server's one counter, so they order
// events across kinds as etcd's revision does. Objects are changed through
// add/modify/remove from the test side (no write verbs over HTTP).
//
// Also the object generators: Pods, Namespaces and NetworkPolicies shaped like a
// production cluster's (managedFields, ownerReferences, status conditions,
// last-applied annotations), so a client pays for realistic sizes.
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    creationTimestamp?: string;
    [k: string]: unknown;
  };
  [k: string]: unknown;
}

export interface ResourceType {
  /** '' for the core group. */
  readonly group: string;
  readonly version: string;
  readonly plural: string;
  readonly kind: string;
  readonly namespaced: boolean;
}

export const PODS: ResourceType = { group: '', version: 'v1', plural: 'pods', kind: 'Pod', namespaced: true };
export const NAMESPACES: ResourceType = { group: '', version: 'v1', plural: 'namespaces', kind: 'Namespace', namespaced: false };
export const NETWORK_POLICIES: ResourceType = {
  group: 'networking.k8s.io',
  version: 'v1',
  plural: 'networkpolicies',
  kind: 'NetworkPolicy',
  namespaced: true,
};
export const RESOURCE_TYPES: readonly ResourceType[] = [PODS, NAMESPACES, NETWORK_POLICIES];

/** The API path of a collection: /api/v1/pods, /apis/networking.k8s.io/v1/namespaces/x/networkpolicies, … */
export function collectionPath(t: ResourceType, namespace?: string): string {
  const base = t.group === '' ? `/api/${t.version}` : `/apis/${t.group}/${t.version}`;
  return namespace && t.namespaced ? `${base}/namespaces/${namespace}/${t.plural}` : `${base}/${t.plural}`;
}

const apiVersionOf = (t: ResourceType): string => (t.group === '' ? t.version : `${t.group}/${t.version}`);
const keyOf = (ns: string | undefined, name: string): string => (ns ? `${ns}/${name}` : name);

interface Event {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  type_: ResourceType;
  namespace: string;
  /** The object's JSON, encoded once for every watcher. */
  json: string;
}

interface ResourceWatcher {
  res: ServerResponse;
  type: ResourceType;
  /** Only this namespace's objects; '' = all. */
  namespace: string;
  bookmarks: boolean;
  timer?: NodeJS.Timeout;
}

class Collection {
  readonly objects = new Map<string, KubeObject>();
  readonly encoded = new Map<string, string>();
  private sorted: string[] | null = [];
  /** Keys in list order, sorted again only after a change (a list of 100,000 Pods sorts once, not per insert). */
  keys(): string[] {
    if (this.sorted === null) this.sorted = [...this.objects.keys()].sort();
    return this.sorted;
  }
  touch(): void {
    this.sorted = null;
  }
}

export interface ResourceStoreOptions {
  historyLimit: number;
  goneAs: 'event' | 'status';
}

export class ResourceStore {
  private readonly collections = new Map<ResourceType, Collection>(RESOURCE_TYPES.map((t) => [t, new Collection()]));
  private history: Event[] = [];
  private compactedRv = 0;
  private readonly watchers = new Set<ResourceWatcher>();
  readonly stats = { lists: 0, watches: 0, gets: 0 };

  constructor(
    /** The server's counter: returns the next resourceVersion. */
    private readonly nextRv: () => number,
    /** The server's current resourceVersion. */
    private readonly currentRv: () => number,
    private readonly opts: ResourceStoreOptions,
  ) {
    this.compactedRv = currentRv();
  }

  // ---- test side ----------------------------------------------------------

  add(t: ResourceType, obj: KubeObject): KubeObject {
    const name = obj.metadata?.name;
    const ns = t.namespaced ? obj.metadata?.namespace : undefined;
    if (!name) throw new Error(`add ${t.kind}: metadata.name is required`);
    if (t.namespaced && !ns) throw new Error(`add ${t.kind} ${name}: metadata.namespace is required`);
    const c = this.collections.get(t)!;
    if (c.objects.has(keyOf(ns, name))) throw new Error(`add ${t.kind} ${keyOf(ns, name)}: exists`);
    const stored = structuredClone(obj);
    stored.apiVersion = apiVersionOf(t);
    stored.kind = t.kind;
    stored.metadata = { ...stored.metadata, name, uid: stored.metadata?.uid ?? `uid-${t.plural}-${keyOf(ns, name)}` };
    if (t === NAMESPACES) stored.metadata.labels = { ...stored.metadata.labels, 'kubernetes.io/metadata.name': name };
    this.commit(t, 'ADDED', stored);
    return structuredClone(stored);
  }

  modify(t: ResourceType, namespace: string | undefined, name: string, mutate: (o: KubeObject) => void): KubeObject {
    const c = this.collections.get(t)!;
    const cur = c.objects.get(keyOf(t.namespaced ? namespace : undefined, name));
    if (!cur) throw new Error(`modify ${t.kind}: no ${keyOf(namespace, name)}`);
    const next = structuredClone(cur);
    mutate(next);
    next.metadata = { ...next.metadata, name, namespace: cur.metadata?.namespace, uid: cur.metadata?.uid };
    if (t === NAMESPACES) next.metadata.labels = { ...next.metadata.labels, 'kubernetes.io/metadata.name': name };
    this.commit(t, 'MODIFIED', next);
    return structuredClone(next);
  }

  remove(t: ResourceType, namespace: string | undefined, name: string): boolean {
    const cur = this.collections.get(t)!.objects.get(keyOf(t.namespaced ? namespace : undefined, name));
    if (!cur) return false;
    this.commit(t, 'DELETED', structuredClone(cur));
    return true;
  }

  list(t: ResourceType): KubeObject[] {
    return [...this.collections.get(t)!.objects.values()].map((o) => structuredClone(o));
  }

  count(t: ResourceType): number {
    return this.collections.get(t)!.objects.size;
  }

  /** Forgets the history: watches from an older resourceVersion get 410. */
  compact(): void {
    this.history = [];
    this.compactedRv = this.currentRv();
  }

  bookmark(): number {
    let n = 0;
    for (const w of this.watchers) {
      if (!w.bookmarks) continue;
      this.write(w, 'BOOKMARK', JSON.stringify({ kind: w.type.kind, apiVersion: apiVersionOf(w.type), metadata: { resourceVersion: String(this.currentRv()) } }));
      n++;
    }
    return n;
  }

  closeWatches(): number {
    const n = this.watchers.size;
    for (const w of [...this.watchers]) this.closeWatcher(w);
    return n;
  }

  get watchCount(): number {
    return this.watchers.size;
  }

  // ---- HTTP -----------------------------------------------------------------

  /** The resource and namespace a path names, or undefined when it is not one of ours. */
  route(pathname: string): { type: ResourceType; namespace: string; name?: string } | undefined {
    const parts = pathname.split('/').filter(Boolean);
    let rest: string[];
    let group = '';
    if (parts[0] === 'api' && parts[1] === 'v1') rest = parts.slice(2);
    else if (parts[0] === 'apis' && parts.length >= 3) {
      group = parts[1]!;
      if (parts[2] !== 'v1') return undefined;
      rest = parts.slice(3);
    } else return undefined;
    const find = (plural: string | undefined): ResourceType | undefined => RESOURCE_TYPES.find((t) => t.group === group && t.plural === plural);
    // namespaces/NS/PLURAL[/NAME] for namespaced kinds; PLURAL[/NAME] otherwise (and all-namespaces lists).
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      const t = find(rest[2]);
      if (!t || !t.namespaced || rest.length > 4) return undefined;
      return { type: t, namespace: rest[1]!, name: rest[3] };
    }
    const t = find(rest[0]);
    if (!t || rest.length > 2) return undefined;
    if (t.namespaced && rest.length > 1) return undefined;
    return { type: t, namespace: '', name: rest[1] };
  }

  /** Serves a GET on a path route() accepted; returns the verb for the server's request log. */
  handle(req: IncomingMessage, res: ServerResponse, url: URL): { verb: string; status: number } {
    req.resume();
    const r = this.route(url.pathname)!;
    if (req.method !== 'GET') return this.status(res, 405, `method ${req.method} not allowed here`, 'MethodNotAllowed', 'unknown');
    if (r.name !== undefined) {
      this.stats.gets++;
      const o = this.collections.get(r.type)!.encoded.get(keyOf(r.type.namespaced ? r.namespace : undefined, r.name));
      if (!o) return this.status(res, 404, `${r.type.plural} "${r.name}" not found`, 'NotFound', 'get');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(o);
      return { verb: 'get', status: 200 };
    }
    const watch = url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1';
    return watch ? this.watch(res, r.type, r.namespace, url) : this.listPage(res, r.type, r.namespace, url);
  }

  private listPage(res: ServerResponse, t: ResourceType, namespace: string, url: URL): { verb: string; status: number } {
    this.stats.lists++;
    const c = this.collections.get(t)!;
    const limit = Number(url.searchParams.get('limit') ?? 0);
    const cont = url.searchParams.get('continue');
    let start = '';
    let listRv = this.currentRv();
    if (cont) {
      let tok: { rv?: unknown; start?: unknown } | undefined;
      try {
        tok = JSON.parse(Buffer.from(cont, 'base64url').toString('utf8')) as { rv?: unknown; start?: unknown };
      } catch {
        tok = undefined;
      }
      if (!tok || typeof tok.rv !== 'number' || typeof tok.start !== 'string' || tok.rv < this.compactedRv)
        return this.status(res, 410, 'The provided continue parameter is too old', 'Expired', 'list');
      start = tok.start;
      listRv = tok.rv;
    }
    const keys = c.keys();
    const prefix = namespace ? `${namespace}/` : '';
    // First key after `start` (and inside the namespace), by binary search.
    let lo = 0;
    let hi = keys.length;
    const after = start || prefix;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (keys[mid]! < after || (start !== '' && keys[mid] === start)) lo = mid + 1;
      else hi = mid;
    }
    const page: string[] = [];
    let i = lo;
    for (; i < keys.length && (limit <= 0 || page.length < limit); i++) {
      if (prefix && !keys[i]!.startsWith(prefix)) break;
      page.push(keys[i]!);
    }
    const more = i < keys.length && (!prefix || keys[i]!.startsWith(prefix));
    const metadata = {
      resourceVersion: String(listRv),
      ...(more ? { continue: Buffer.from(JSON.stringify({ rv: listRv, start: page[page.length - 1] })).toString('base64url') } : {}),
    };
    res.writeHead(200, { 'content-type': 'application/json' });
    // Written item by item: a 100,000-Pod page is never one string.
    res.write(`{"kind":"${t.kind}List","apiVersion":"${apiVersionOf(t)}","metadata":${JSON.stringify(metadata)},"items":[`);
    page.forEach((k, j) => res.write((j ? ',' : '') + c.encoded.get(k)!));
    res.end(']}');
    return { verb: 'list', status: 200 };
  }

  private watch(res: ServerResponse, t: ResourceType, namespace: string, url: URL): { verb: string; status: number } {
    this.stats.watches++;
    const rvParam = url.searchParams.get('resourceVersion') ?? '';
    const from = rvParam === '' || rvParam === '0' ? undefined : Number(rvParam);
    const gone = `too old resource version: ${rvParam} (${this.compactedRv})`;
    if (from !== undefined && (!Number.isFinite(from) || from < this.compactedRv)) {
      if (this.opts.goneAs === 'status' || !Number.isFinite(from)) return this.status(res, 410, gone, 'Expired', 'watch');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: gone, reason: 'Expired', code: 410 } }) + '\n');
      return { verb: 'watch', status: 200 };
    }
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked', 'cache-control': 'no-cache' });
    res.flushHeaders();
    const w: ResourceWatcher = { res, type: t, namespace, bookmarks: url.searchParams.get('allowWatchBookmarks') === 'true' };
    const c = this.collections.get(t)!;
    if (from === undefined) {
      for (const k of c.keys()) if (!namespace || k.startsWith(`${namespace}/`)) this.write(w, 'ADDED', c.encoded.get(k)!);
    } else for (const ev of this.history) if (ev.rv > from && this.wants(w, ev)) this.write(w, ev.type, ev.json);
    this.watchers.add(w);
    const timeout = Number(url.searchParams.get('timeoutSeconds') ?? 0);
    if (timeout > 0) w.timer = setTimeout(() => this.closeWatcher(w), timeout * 1000);
    res.on('close', () => {
      this.watchers.delete(w);
      if (w.timer) clearTimeout(w.timer);
    });
    return { verb: 'watch', status: 200 };
  }

  private wants(w: ResourceWatcher, ev: Event): boolean {
    return ev.type_ === w.type && (!w.namespace || w.namespace === ev.namespace);
  }

  private commit(t: ResourceType, type: Event['type'], obj: KubeObject): void {
    const rv = this.nextRv();
    obj.metadata = { ...obj.metadata, resourceVersion: String(rv) };
    const ns = t.namespaced ? obj.metadata.namespace : undefined;
    const key = keyOf(ns, obj.metadata.name!);
    const c = this.collections.get(t)!;
    const json = JSON.stringify(obj);
    if (type === 'DELETED') {
      c.objects.delete(key);
      c.encoded.delete(key);
      c.touch();
    } else {
      if (!c.objects.has(key)) c.touch();
      c.objects.set(key, obj);
      c.encoded.set(key, json);
    }
    const ev: Event = { rv, type, type_: t, namespace: ns ?? '', json };
    this.history.push(ev);
    if (this.history.length > this.opts.historyLimit) {
      const dropped = this.history.splice(0, this.history.length - this.opts.historyLimit);
      this.compactedRv = dropped[dropped.length - 1]!.rv;
    }
    for (const w of this.watchers) if (this.wants(w, ev)) this.write(w, type, json);
  }

  private write(w: ResourceWatcher, type: string, json: string): void {
    if (w.res.writableEnded || w.res.destroyed) return;
    w.res.write(`{"type":"${type}","object":${json}}\n`);
  }

  private closeWatcher(w: ResourceWatcher): void {
    this.watchers.delete(w);
    if (w.timer) clearTimeout(w.timer);
    if (!w.res.writableEnded) w.res.end();
  }

  private status(res: ServerResponse, code: number, message: string, reason: string, verb: string): { verb: string; status: number } {
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code }));
    return { verb, status: code };
  }
}

// ---- realistic objects ------------------------------------------------------

function hex(seed: string, n: number): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < seed.length; i++) h = Math.imul(h ^ seed.charCodeAt(i), 0x01000193) >>> 0;
  let out = '';
  while (out.length < n) {
    h = Math.imul(h ^ out.length, 0x01000193) >>> 0;
    out += h.toString(16).padStart(8, '0');
  }
  return out.slice(0, n);
}
const uid = (s: string): string => `${hex(s, 8)}-${hex(`${s}1`, 4)}-4${hex(`${s}2`, 3)}-8${hex(`${s}3`, 3)}-${hex(`${s}4`, 12)}`;
const T0 = '2026-11-02T08:14:31Z';

export function makeNamespace(name: string, labels: Record<string, string> = {}): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name,
      uid: uid(`ns/${name}`),
      creationTimestamp: T0,
      labels: { ...labels, 'kubernetes.io/metadata.name': name },
      managedFields: [
        { manager: 'kubectl-create', operation: 'Update', apiVersion: 'v1', time: T0, fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': { 'f:labels': { '.': {}, 'f:kubernetes.io/metadata.name': {} } } } },
      ],
    },
    spec: { finalizers: ['kubernetes'] },
    status: { phase: 'Active' },
  };
}

export interface PodShape {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  ip: string;
  nodeName: string;
  /** containerPorts: name, port, protocol. */
  ports?: { name?: string; containerPort: number; protocol?: 'TCP' | 'UDP' | 'SCTP' }[];
  hostNetwork?: boolean;
  phase?: 'Pending' | 'Running' | 'Succeeded' | 'Failed';
}

/**
 * A Pod as a ReplicaSet's controller, the scheduler and a kubelet leave it in a
 * production cluster: about 6 KiB of JSON (managedFields of three managers,
 * ownerReferences, two containers with probes, resources, env and mounts, a
 * projected service-account volume, tolerations, five conditions, container
 * statuses). The fields the policy model reads are those of the shape.
 */
export function makeRealisticPod(p: PodShape): KubeObject {
  const app = p.labels.app ?? p.name;
  const hash = hex(`${p.namespace}/${app}`, 10);
  const image = `registry.example.com/${p.namespace}/${app}:v1.${p.name.length % 10}.3`;
  const digest = `sha256:${hex(image, 64)}`;
  const probe = (port: number) => ({ httpGet: { path: '/healthz', port, scheme: 'HTTP' }, initialDelaySeconds: 5, periodSeconds: 10, timeoutSeconds: 1, successThreshold: 1, failureThreshold: 3 });
  const ports = (p.ports ?? [{ name: 'http', containerPort: 8080 }]).map((x) => ({ ...x, protocol: x.protocol ?? 'TCP' }));
  const cond = (type: string) => ({ type, status: 'True', lastProbeTime: null, lastTransitionTime: T0 });
  const cid = (c: string) => `containerd://${hex(`${p.namespace}/${p.name}/${c}`, 64)}`;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: p.name,
      generateName: `${app}-${hash}-`,
      namespace: p.namespace,
      uid: uid(`pod/${p.namespace}/${p.name}`),
      creationTimestamp: T0,
      labels: { ...p.labels, 'pod-template-hash': hash },
      annotations: { 'kubectl.kubernetes.io/restartedAt': T0, 'prometheus.io/scrape': 'true', 'prometheus.io/port': '9090' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${app}-${hash}`, uid: uid(`rs/${p.namespace}/${app}`), controller: true, blockOwnerDeletion: true }],
      managedFields: [
        {
          manager: 'kube-controller-manager', operation: 'Update', apiVersion: 'v1', time: T0, fieldsType: 'FieldsV1',
          fieldsV1: { 'f:metadata': { 'f:generateName': {}, 'f:labels': { '.': {}, 'f:app': {}, 'f:pod-template-hash': {} }, 'f:ownerReferences': { '.': {}, [`k:{"uid":"${uid(`rs/${p.namespace}/${app}`)}"}`]: {} } }, 'f:spec': { 'f:containers': { [`k:{"name":"${app}"}`]: { '.': {}, 'f:image': {}, 'f:imagePullPolicy': {}, 'f:livenessProbe': {}, 'f:name': {}, 'f:ports': {}, 'f:readinessProbe': {}, 'f:resources': {} } }, 'f:dnsPolicy': {}, 'f:enableServiceLinks': {}, 'f:restartPolicy': {}, 'f:schedulerName': {}, 'f:securityContext': {}, 'f:terminationGracePeriodSeconds': {} } },
        },
        { manager: 'kube-scheduler', operation: 'Update', apiVersion: 'v1', time: T0, fieldsType: 'FieldsV1', subresource: 'status', fieldsV1: { 'f:status': { 'f:conditions': { '.': {}, 'k:{"type":"PodScheduled"}': { '.': {}, 'f:lastProbeTime': {}, 'f:lastTransitionTime': {}, 'f:status': {}, 'f:type': {} } } } } },
        { manager: 'kubelet', operation: 'Update', apiVersion: 'v1', time: T0, fieldsType: 'FieldsV1', subresource: 'status', fieldsV1: { 'f:status': { 'f:conditions': {}, 'f:containerStatuses': {}, 'f:hostIP': {}, 'f:hostIPs': {}, 'f:phase': {}, 'f:podIP': {}, 'f:podIPs': { '.': {}, [`k:{"ip":"${p.ip}"}`]: { '.': {}, 'f:ip': {} } }, 'f:startTime': {} } } },
      ],
    },
    spec: {
      volumes: [{ name: `kube-api-access-${hex(p.name, 5)}`, projected: { sources: [{ serviceAccountToken: { expirationSeconds: 3607, path: 'token' } }, { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } }, { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } }], defaultMode: 420 } }],
      containers: [
        {
          name: app, image, ports,
          env: [{ name: 'POD_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } }, { name: 'LOG_LEVEL', value: 'info' }],
          resources: { limits: { cpu: '500m', memory: '256Mi' }, requests: { cpu: '100m', memory: '128Mi' } },
          volumeMounts: [{ name: `kube-api-access-${hex(p.name, 5)}`, readOnly: true, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' }],
          livenessProbe: probe(ports[0]?.containerPort ?? 8080), readinessProbe: probe(ports[0]?.containerPort ?? 8080),
          terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'File', imagePullPolicy: 'IfNotPresent',
        },
        {
          name: 'metrics-sidecar', image: 'quay.io/prometheus/statsd-exporter:v0.26.1', args: ['--statsd.listen-udp=:9125', '--web.listen-address=:9102'],
          ports: [{ name: 'metrics', containerPort: 9102, protocol: 'TCP' }],
          resources: { limits: { cpu: '50m', memory: '64Mi' }, requests: { cpu: '10m', memory: '32Mi' } },
          terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'File', imagePullPolicy: 'IfNotPresent',
        },
      ],
      restartPolicy: 'Always', terminationGracePeriodSeconds: 30, dnsPolicy: 'ClusterFirst', serviceAccountName: 'default', serviceAccount: 'default',
      nodeName: p.nodeName, hostNetwork: p.hostNetwork ?? false, securityContext: {}, schedulerName: 'default-scheduler',
      tolerations: [
        { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
        { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
      ],
      priority: 0, enableServiceLinks: true, preemptionPolicy: 'PreemptLowerPriority',
    },
    status: {
      phase: p.phase ?? 'Running',
      conditions: ['PodReadyToStartContainers', 'Initialized', 'Ready', 'ContainersReady', 'PodScheduled'].map(cond),
      hostIP: '192.168.0.1', hostIPs: [{ ip: '192.168.0.1' }], podIP: p.ip, podIPs: [{ ip: p.ip }], startTime: T0,
      containerStatuses: [app, 'metrics-sidecar'].map((c) => ({
        name: c, state: { running: { startedAt: T0 } }, lastState: {}, ready: true, restartCount: 0,
        image: c === app ? image : 'quay.io/prometheus/statsd-exporter:v0.26.1', imageID: `${c === app ? image.split(':')[0] : 'quay.io/prometheus/statsd-exporter'}@${digest}`, containerID: cid(c), started: true,
      })),
      qosClass: 'Burstable',
    },
  };
}

/** A NetworkPolicy as `kubectl apply` leaves it (the last-applied annotation repeats the spec, as it does). */
export function makeRealisticNetworkPolicy(namespace: string, name: string, spec: Record<string, unknown>): KubeObject {
  const applied = { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { annotations: {}, name, namespace }, spec };
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: {
      name,
      namespace,
      uid: uid(`netpol/${namespace}/${name}`),
      generation: 1,
      creationTimestamp: T0,
      annotations: { 'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify(applied) + '\n' },
      managedFields: [{ manager: 'kubectl-client-side-apply', operation: 'Update', apiVersion: 'networking.k8s.io/v1', time: T0, fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': { 'f:annotations': { '.': {}, 'f:kubectl.kubernetes.io/last-applied-configuration': {} } }, 'f:spec': { 'f:ingress': {}, 'f:egress': {}, 'f:podSelector': {}, 'f:policyTypes': {} } } }],
    },
    spec,
  };
}
