// Prometheus metrics (prom-client) and the health endpoints. Values that live
// in BPF maps or on disk (drops, NAT table size, IPAM usage) are read at
// scrape time through collect callbacks, so a scrape always shows the kernel's
// current numbers and nothing polls when nobody scrapes.
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface ScrapeSources {
  drops(): { reason: string; direction: string; packets: bigint; bytes: bigint }[];
  natEntries(): number;
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
  readonly cniRequests: Counter;
  readonly cniDuration: Histogram;
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
      help: 'Entries in the masquerade (NAT) table',
      registers,
      collect() {
        this.set(self.safe(() => self.sources?.natEntries() ?? 0, 0));
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
  live(): boolean;
  ready(): { ready: boolean; reason: string };
}

export function parseHostPort(addr: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(addr);
  if (!m) throw new Error(`--health-addr ${JSON.stringify(addr)}: expected HOST:PORT`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`--health-addr ${JSON.stringify(addr)}: bad port`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

export async function startHealthServer(addr: string, health: HealthState, metrics: DaemonMetrics): Promise<Server> {
  const { host, port } = parseHostPort(addr);
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      const ok = health.live();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ok\n' : 'unhealthy\n');
    } else if (path === '/readyz') {
      const r = health.ready();
      res.writeHead(r.ready ? 200 : 503, { 'content-type': 'text/plain' }).end(`${r.reason}\n`);
    } else if (path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        (e: unknown) => res.writeHead(500).end(String(e)),
      );
    } else res.writeHead(404).end('not found\n');
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
