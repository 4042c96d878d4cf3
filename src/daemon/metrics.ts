// Prometheus metrics (prom-client) and the health endpoints.
//
// A scrape does bounded work whatever the size of the maps: the drop counters
// are a fixed-size array (every reason, both directions) read at scrape time;
// the NAT table's size is a count a background pass keeps (nat-count.ts),
// read as it is, with its age; IPAM usage is one directory listing of at most
// the podCIDR's size.
//
// Where they are served: /healthz and /readyz on --health-addr, /metrics on
// --metrics-addr (the same listener when both name the same address; 'none'
// serves no /metrics). Both default to loopback: bvcnid runs in the host's
// network namespace, and an address on the node's interfaces is reachable from
// every pod (to a pod, the node's IP is just another destination).
import { createServer, type RequestListener, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface ScrapeSources {
  drops(): { reason: string; direction: string; packets: bigint; bytes: bigint }[];
  /** The last background count of the NAT table; undefined before the first. */
  nat(): { entries: number; ageMs: number } | undefined;
  ipam(): { used: number; capacity: number };
}

export class DaemonMetrics {
  readonly registry = new Registry();
  readonly tunnelNodes: Gauge;
  readonly tunnelEntries: Gauge;
  readonly reconcileDuration: Histogram;
  readonly reconcileChanges: Counter;
  readonly apiErrors: Counter;
  readonly skippedNodes: Gauge;
  readonly badNodeEvents: Counter;
  readonly relists: Counter;
  readonly watchRestarts: Counter;
  readonly cniRequests: Counter;
  readonly cniDuration: Histogram;
  readonly policySyncDuration: Histogram;
  readonly policyWrites: Counter;
  readonly policyWriteErrors: Counter;
  private sources?: ScrapeSources;

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'bvcnid_' });
    this.tunnelNodes = new Gauge({ name: 'bvcni_tunnel_nodes', help: 'Remote nodes programmed in the tunnel map', registers });
    this.tunnelEntries = new Gauge({ name: 'bvcni_tunnel_entries', help: 'Entries in the tunnel map (podCIDRs and node /32s)', registers });
    this.reconcileDuration = new Histogram({
      name: 'bvcni_reconcile_duration_seconds',
      help: 'Time to compute and apply the tunnel map difference',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.reconcileChanges = new Counter({
      name: 'bvcni_reconcile_changes_total',
      help: 'Tunnel map entries written or removed by reconciliation',
      labelNames: ['op'],
      registers,
    });
    this.apiErrors = new Counter({ name: 'bvcni_api_errors_total', help: 'Kubernetes API errors', labelNames: ['op', 'code'], registers });
    this.skippedNodes = new Gauge({ name: 'bvcni_skipped_nodes', help: 'Node objects currently skipped as unusable', labelNames: ['reason'], registers });
    this.badNodeEvents = new Counter({
      name: 'bvcni_bad_node_events_total',
      help: 'Times a Node object was found unusable (once per node and reason)',
      labelNames: ['reason'],
      registers,
    });
    this.relists = new Counter({ name: 'bvcni_node_lists_total', help: 'Full Node lists (start, 410 Gone)', registers });
    this.watchRestarts = new Counter({
      name: 'bvcni_node_watch_idle_restarts_total',
      help: 'Node watches restarted because they stayed silent (no event, no bookmark) past --watch-idle-timeout',
      registers,
    });
    this.cniRequests = new Counter({
      name: 'bvcni_cni_requests_total',
      help: "CNI commands the plugin handed to bvcnid: result ok, error (the spec's error JSON) or declined (the plugin did the work itself)",
      labelNames: ['command', 'result'],
      registers,
    });
    this.cniDuration = new Histogram({
      name: 'bvcni_cni_request_duration_seconds',
      help: 'Time bvcnid spent on a CNI command it served',
      labelNames: ['command'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    this.policySyncDuration = new Histogram({
      name: 'bvcni_policy_sync_duration_seconds',
      help: 'NetworkPolicy (--network-policy): time to bring the compiled rules and the maps up to date after a change',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
      registers,
    });
    this.policyWrites = new Counter({
      name: 'bvcni_policy_map_writes_total',
      help: 'NetworkPolicy map writes: ipcache entries, policy entries added and removed, endpoint flag and identity updates',
      labelNames: ['op'],
      registers,
    });
    this.policyWriteErrors = new Counter({
      name: 'bvcni_policy_map_write_errors_total',
      help: 'NetworkPolicy map writes that failed (each is retried from what the maps hold)',
      registers,
    });
    const self = this;
    for (const unit of ['packets', 'bytes'] as const) {
      new Gauge({
        name: `bvcni_drops_${unit}`,
        help: `${unit === 'packets' ? 'Packets' : 'Bytes'} counted by the BPF programs, by reason and direction (FORWARD is not a drop)`,
        labelNames: ['reason', 'direction'],
        registers,
        collect() {
          this.reset();
          for (const d of self.safe(() => self.sources?.drops() ?? [], [])) this.set({ reason: d.reason, direction: d.direction }, Number(d[unit]));
        },
      });
    }
    new Gauge({
      name: 'bvcni_nat_entries',
      help: 'Entries in the masquerade (NAT) table, as of the last background count (see bvcni_nat_entries_age_seconds); absent before the first',
      registers,
      collect() {
        this.reset();
        const n = self.safe(() => self.sources?.nat(), undefined);
        if (n) this.set(n.entries);
      },
    });
    new Gauge({
      name: 'bvcni_nat_entries_age_seconds',
      help: 'Age of bvcni_nat_entries: time since the background count that produced it began (at most --nat-count-interval plus one pass)',
      registers,
      collect() {
        this.reset();
        const n = self.safe(() => self.sources?.nat(), undefined);
        if (n) this.set(n.ageMs / 1000);
      },
    });
    new Gauge({
      name: 'bvcni_ipam_used',
      help: 'Pod addresses allocated on this node',
      registers,
      collect() {
        this.set(self.safe(() => self.sources?.ipam().used ?? 0, 0));
      },
    });
    new Gauge({
      name: 'bvcni_ipam_capacity',
      help: 'Pod addresses available on this node in total',
      registers,
      collect() {
        this.set(self.safe(() => self.sources?.ipam().capacity ?? 0, 0));
      },
    });
  }

  setSources(s: ScrapeSources): void {
    this.sources = s;
  }

  private safe<T>(fn: () => T, fallback: T): T {
    try {
      return fn();
    } catch {
      return fallback;
    }
  }
}

export interface HealthState {
  live(): { live: boolean; reason: string };
  ready(): { ready: boolean; reason: string };
}

export function parseHostPort(addr: string, flag = '--health-addr'): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(addr);
  if (!m) throw new Error(`${flag} ${JSON.stringify(addr)}: expected HOST:PORT`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`${flag} ${JSON.stringify(addr)}: bad port`);
  // An empty host meant every address before; now it must be said (0.0.0.0), never implied.
  if (!(m[1] ?? m[2])) throw new Error(`${flag} ${JSON.stringify(addr)}: no host (loopback is 127.0.0.1; every address is 0.0.0.0)`);
  return { host: m[1] ?? m[2]!, port };
}

export type Handler = (res: Parameters<RequestListener>[1], url: URL) => void;

export function healthHandlers(health: HealthState): Record<string, Handler> {
  return {
    '/healthz': (res) => {
      const l = health.live();
      res.writeHead(l.live ? 200 : 503, { 'content-type': 'text/plain' }).end(`${l.live ? 'ok' : `unhealthy: ${l.reason}`}\n`);
    },
    '/readyz': (res) => {
      const r = health.ready();
      res.writeHead(r.ready ? 200 : 503, { 'content-type': 'text/plain' }).end(`${r.reason}\n`);
    },
  };
}

export function metricsHandlers(metrics: DaemonMetrics): Record<string, Handler> {
  return {
    '/metrics': (res) => {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        (e: unknown) => res.writeHead(500).end(String(e)),
      );
    },
  };
}

/** An HTTP server at host:port answering exactly the given paths (404 for the rest). */
export async function startHttpServer(addr: string, handlers: Record<string, Handler>, flag = '--health-addr'): Promise<Server> {
  const { host, port } = parseHostPort(addr, flag);
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    const h = Object.hasOwn(handlers, path) ? handlers[path] : undefined;
    if (h) h(res, url);
    else res.writeHead(404).end('not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

/** The health and metrics listeners: one when both addresses are the same, none for /metrics with 'none'. */
export async function startHealthServers(
  healthAddr: string,
  metricsAddr: string,
  health: HealthState,
  metrics: DaemonMetrics,
  /** More paths on the health listener (e.g. /policy for bvcnictl). */
  extra: Record<string, Handler> = {},
): Promise<Server[]> {
  if (metricsAddr === healthAddr) return [await startHttpServer(healthAddr, { ...healthHandlers(health), ...metricsHandlers(metrics), ...extra })];
  const servers = [await startHttpServer(healthAddr, { ...healthHandlers(health), ...extra })];
  if (metricsAddr !== 'none') {
    try {
      servers.push(await startHttpServer(metricsAddr, metricsHandlers(metrics), '--metrics-addr'));
    } catch (e) {
      servers[0]!.close();
      throw e;
    }
  }
  return servers;
}
