// The fake API server of the NetworkPolicy sync benchmark, in its own process
// (so the benchmark's RSS is bvcnid's sync alone): a scaled cluster
// (test/support/netpol-scale.ts) as realistic objects (~6 KiB Pods), then
// changes on request. Line protocol on stdin/stdout, JSON:
//   -> {ready, kubeconfig, objects, populateMs}
//   <- {op: 'relabel', namespace, name, labels} | {op: 'policy', namespace, name, spec} | {op: 'exit'}
//   -> {at: <epoch ms of the write, sub-ms>}
// For a real bvcnid on a simulated node (policy.bench.ts's daemon part):
// BVP_API_NETNS (a namespace path to listen in), BVP_API_HOST (the address the
// kubeconfig names), BVP_LOCAL_NODE (JSON {name, podCidr, ip}: that node's Node
// object is served, and the scaled cluster's first node's Pods are placed on it).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { withNetns } from '../../loader/index.js';
import { FakeKubeApiServer } from '../../src/sim/kube-apiserver.js';
import { makeNode } from '../../src/sim/kube-node.js';
import { makeNamespace, makeRealisticNetworkPolicy, makeRealisticPod, NAMESPACES, NETWORK_POLICIES, PODS } from '../../src/sim/kube-resources.js';
import { scaleCluster } from '../support/netpol-scale.js';

const now = (): number => performance.timeOrigin + performance.now();
const sc = scaleCluster({ namespaces: Number(process.env.BVP_NS ?? 1000), replicas: Math.max(1, Math.round(Number(process.env.BVP_PODS_PER_NS ?? 100) / 10)) });
const localNode = process.env.BVP_LOCAL_NODE ? (JSON.parse(process.env.BVP_LOCAL_NODE) as { name: string; podCidr: string; ip: string }) : undefined;
const srv = new FakeKubeApiServer({}, withNetns);
const t0 = performance.now();
if (localNode) srv.addNode(makeNode(localNode.name, { podCIDR: localNode.podCidr, internalIP: localNode.ip }));
for (const ns of sc.namespaces) srv.resources.add(NAMESPACES, makeNamespace(ns.name, ns.labels));
for (const p of sc.pods) srv.resources.add(PODS, makeRealisticPod(localNode && p.nodeName === sc.nodes[0]!.name ? { ...p, nodeName: localNode.name } : p));
for (const p of sc.policies) srv.resources.add(NETWORK_POLICIES, makeRealisticNetworkPolicy(p.namespace, p.name, p.spec));
const populateMs = performance.now() - t0;
await srv.start(process.env.BVP_API_NETNS ? { netns: process.env.BVP_API_NETNS } : {});
const dir = mkdtempSync(join(tmpdir(), 'bvp-api-'));
const kubeconfig = join(dir, 'kubeconfig');
writeFileSync(kubeconfig, srv.kubeconfig(process.env.BVP_API_HOST));
const out = (o: unknown): void => void process.stdout.write(`${JSON.stringify(o)}\n`);
out({ ready: true, kubeconfig, objects: sc.pods.length + sc.namespaces.length + sc.policies.length, populateMs });

const done = async (): Promise<void> => {
  await srv.close();
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
};
for await (const line of createInterface({ input: process.stdin })) {
  const m = JSON.parse(line) as { op: string; namespace?: string; name?: string; labels?: Record<string, string>; spec?: Record<string, unknown> };
  if (m.op === 'exit') break;
  if (m.op === 'relabel') {
    srv.resources.modify(PODS, m.namespace, m.name!, (o) => (o.metadata!.labels = m.labels));
    out({ at: now() });
  } else if (m.op === 'policy') {
    srv.resources.add(NETWORK_POLICIES, makeRealisticNetworkPolicy(m.namespace!, m.name!, m.spec!));
    out({ at: now() });
  }
}
await done();
