// An in-memory PolicyMapsPort (src/daemon/policy.ts) for bvcnid's NetworkPolicy
// sync tests: the ipcache, the policy entries by endpoint, the endpoint
// entries' identity and flags (the plugin's part: register/unregister), a log
// of every write in order, and failures on demand.
import { formatCidr } from '../../src/common/cidr.js';
import { entryKey, type CompiledNode, type IpCacheEntry, type NodeDiff, type PolicyEntry } from '../../src/policy/index.js';
import { PolicyMapsAbsent, type EndpointPolicyState, type PinnedPolicy, type PolicyMapsPort } from '../../src/daemon/policy.js';

export type FakeOp =
  | { op: 'ipcache'; cidr: string; identity: number | null }
  | { op: 'entry'; ip: string; dir: 'ingress' | 'egress'; key: string; present: boolean }
  | { op: 'endpoint'; ip: string; state: EndpointPolicyState };

export class FakePolicyMaps implements PolicyMapsPort {
  readonly ipcache = new Map<string, IpCacheEntry>();
  readonly entries = new Map<string, { ingress: Map<string, PolicyEntry>; egress: Map<string, PolicyEntry> }>();
  readonly eps = new Map<string, EndpointPolicyState>();
  readonly log: FakeOp[] = [];
  /** The next n writes (apply or setEndpoint) throw. */
  failWrites = 0;
  /** Reads throw PolicyMapsAbsent while true (the dataplane not set up yet). */
  absent = false;
  reads = 0;

  /** What the plugin does at ADD with enforcement on. */
  register(ip: string): void {
    this.eps.set(ip, { identity: 0, pending: true, ingressIsolated: false, egressIsolated: false });
  }
  unregister(ip: string): void {
    this.eps.delete(ip);
  }

  read(): PinnedPolicy {
    if (this.absent) throw new PolicyMapsAbsent('the fake maps are');
    this.reads++;
    const endpoints = new Map<string, { ingress: PolicyEntry[]; egress: PolicyEntry[] }>();
    for (const [ip, t] of this.entries) endpoints.set(ip, { ingress: [...t.ingress.values()], egress: [...t.egress.values()] });
    return { ipcache: [...this.ipcache.values()], endpoints };
  }

  private maybeFail(): void {
    if (this.failWrites > 0) {
      this.failWrites--;
      throw new Error('injected map write failure');
    }
  }

  apply(diff: NodeDiff): void {
    this.maybeFail();
    for (const [ip, d] of diff.endpoints) {
      const t = this.entries.get(ip);
      if (!t) continue;
      for (const dir of ['ingress', 'egress'] as const) {
        const rm = d === 'deleted' ? [...t[dir].values()] : d[dir].remove;
        for (const e of rm) {
          t[dir].delete(entryKey(e));
          this.log.push({ op: 'entry', ip, dir, key: entryKey(e), present: false });
        }
      }
      if (d === 'deleted') this.entries.delete(ip);
    }
    for (const c of diff.ipcacheDelete) {
      this.ipcache.delete(formatCidr(c));
      this.log.push({ op: 'ipcache', cidr: formatCidr(c), identity: null });
    }
    for (const u of diff.ipcacheUpsert) {
      this.ipcache.set(formatCidr(u.cidr), u);
      this.log.push({ op: 'ipcache', cidr: formatCidr(u.cidr), identity: u.identity });
    }
    for (const [ip, d] of diff.endpoints) {
      if (d === 'deleted') continue;
      let t = this.entries.get(ip);
      if (!t) this.entries.set(ip, (t = { ingress: new Map(), egress: new Map() }));
      for (const dir of ['ingress', 'egress'] as const)
        for (const e of d[dir].add) {
          t[dir].set(entryKey(e), e);
          this.log.push({ op: 'entry', ip, dir, key: entryKey(e), present: true });
        }
    }
  }

  endpoints(): Map<string, EndpointPolicyState> {
    return new Map([...this.eps].map(([k, v]) => [k, { ...v }]));
  }

  setEndpoint(ip: string, s: EndpointPolicyState): boolean {
    this.maybeFail();
    if (!this.eps.has(ip)) return false;
    this.eps.set(ip, { ...s });
    this.log.push({ op: 'endpoint', ip, state: { ...s } });
    return true;
  }

  /** Differences from a compilation (empty: the maps hold exactly it). */
  mismatches(c: CompiledNode): string[] {
    const out: string[] = [];
    const want = new Map(c.ipcache.map((e) => [formatCidr(e.cidr), e.identity]));
    for (const [k, e] of this.ipcache) if (want.get(k) !== e.identity) out.push(`ipcache ${k}=${e.identity}, want ${want.get(k)}`);
    for (const [k, id] of want) if (!this.ipcache.has(k)) out.push(`ipcache ${k} missing (want ${id})`);
    for (const ip of new Set([...this.entries.keys(), ...c.endpoints.keys()])) {
      const ep = c.endpoints.get(ip);
      for (const dir of ['ingress', 'egress'] as const) {
        const have = [...(this.entries.get(ip)?.[dir].keys() ?? [])].sort();
        const wantKeys = (ep?.[dir].entries ?? []).map(entryKey).sort();
        if (JSON.stringify(have) !== JSON.stringify(wantKeys)) out.push(`${ip} ${dir}: ${have.length} entries, want ${wantKeys.length}`);
      }
      const s = this.eps.get(ip);
      if (ep && s && (s.pending || s.identity !== ep.identity || s.ingressIsolated !== ep.ingress.isolated || s.egressIsolated !== ep.egress.isolated))
        out.push(`${ip} endpoint ${JSON.stringify(s)}, want identity ${ep.identity} ${ep.ingress.isolated}/${ep.egress.isolated}`);
    }
    for (const [ip, s] of this.eps) if (!c.endpoints.has(ip) && !s.pending) out.push(`${ip} unknown to the compiler but not pending`);
    return out;
  }
}
