// A synthetic cluster at the scale issue 16 names (100,000 Pods in 1,000
// Namespaces with 2,000 NetworkPolicies on 1,000 nodes), shaped like real
// tenants: ten Deployments of ten replicas per namespace, a default-deny in
// every namespace and one of four common allow policies (from the ingress
// controller and the same namespace on a port range; egress to DNS, the
// namespace and the internet but not the cluster or the metadata service; from
// monitoring on a named port; from the same team's namespaces). Raw API
// objects: the shapes the fake API server and the parser take.
import type { PodShape } from '../../src/sim/kube-resources.js';

export interface ScaleOptions {
  namespaces?: number;
  appsPerNamespace?: number;
  replicas?: number;
  nodes?: number;
}

export interface ScaleCluster {
  namespaces: { name: string; labels: Record<string, string> }[];
  pods: PodShape[];
  policies: { namespace: string; name: string; spec: Record<string, unknown> }[];
  nodes: { name: string; ip: string }[];
}

export function scaleCluster(o: ScaleOptions = {}): ScaleCluster {
  const nNs = o.namespaces ?? 1000;
  const apps = o.appsPerNamespace ?? 10;
  const replicas = o.replicas ?? 10;
  const nNodes = o.nodes ?? 1000;
  const nodes = Array.from({ length: nNodes }, (_, k) => ({ name: `node-${String(k).padStart(4, '0')}`, ip: `192.168.${k >> 8}.${(k & 255) + 1}` }));
  const special = ['kube-system', 'ingress-nginx', 'monitoring'];
  const namespaces = Array.from({ length: nNs }, (_, i) => {
    const name = i < special.length ? special[i]! : `tenant-${String(i).padStart(4, '0')}`;
    const labels: Record<string, string> = { team: `team-${i % 20}`, env: ['prod', 'staging', 'dev'][i % 3]! };
    if (name === 'monitoring') labels.purpose = 'monitoring';
    return { name, labels };
  });
  const perNode = new Array<number>(nNodes).fill(0);
  const pods: PodShape[] = [];
  let n = 0;
  for (const ns of namespaces)
    for (let a = 0; a < apps; a++)
      for (let r = 0; r < replicas; r++) {
        const k = n++ % nNodes;
        const slot = ++perNode[k]!;
        const app = ns.name === 'kube-system' && a === 0 ? 'kube-dns' : `app-${a}`;
        pods.push({
          namespace: ns.name,
          name: `${app}-${r.toString(36)}x${n.toString(36)}`,
          labels: { app, tier: a < 3 ? 'front' : 'back', ...(app === 'kube-dns' ? { 'k8s-app': 'kube-dns' } : {}) },
          ip: `10.${64 + (k >> 8)}.${k & 255}.${slot}`,
          nodeName: nodes[k]!.name,
          ports: [
            { name: 'http', containerPort: 8080 + (a % 3) },
            { name: 'metrics', containerPort: 9090 },
            ...(app === 'kube-dns' ? [{ name: 'dns', containerPort: 53, protocol: 'UDP' as const }, { name: 'dns-tcp', containerPort: 53 }] : []),
          ],
        });
      }
  const policies: ScaleCluster['policies'] = [];
  namespaces.forEach((ns, i) => {
    policies.push({ namespace: ns.name, name: 'default-deny', spec: { podSelector: {}, policyTypes: ['Ingress'] } });
    const byName = (n: string) => ({ matchLabels: { 'kubernetes.io/metadata.name': n } });
    switch (i % 4) {
      case 0:
        policies.push({ namespace: ns.name, name: 'allow-web', spec: { podSelector: { matchLabels: { tier: 'front' } }, ingress: [
          { from: [{ namespaceSelector: byName('ingress-nginx') }], ports: [{ port: 8080 }] },
          { from: [{ podSelector: {} }], ports: [{ port: 8080, endPort: 8090, protocol: 'TCP' }] },
        ] } });
        break;
      case 1:
        policies.push({ namespace: ns.name, name: 'egress', spec: { podSelector: {}, policyTypes: ['Egress'], egress: [
          { to: [{ namespaceSelector: byName('kube-system'), podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }], ports: [{ port: 53, protocol: 'UDP' }, { port: 53, protocol: 'TCP' }] },
          { to: [{ podSelector: {} }] },
          { to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8', '169.254.169.254/32'] } }], ports: [{ port: 443 }] },
        ] } });
        break;
      case 2:
        policies.push({ namespace: ns.name, name: 'allow-monitoring', spec: { podSelector: {}, ingress: [
          { from: [{ namespaceSelector: { matchLabels: { purpose: 'monitoring' } } }], ports: [{ port: 'metrics' }] },
        ] } });
        break;
      default:
        policies.push({ namespace: ns.name, name: 'allow-team', spec: { podSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['app-1', 'app-2'] }] }, ingress: [
          { from: [{ namespaceSelector: { matchLabels: { team: ns.labels.team! } }, podSelector: { matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['back'] }] } }] },
        ] } });
    }
  });
  return { namespaces, pods, policies, nodes };
}
