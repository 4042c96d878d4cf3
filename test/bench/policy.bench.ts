// NetworkPolicy compilation at issue 16's scale (indicative only on a shared
// machine): 100,000 Pods in 1,000 Namespaces with 2,000 policies on 1,000
// nodes (test/support/netpol-scale.ts). For each round, from the objects bvcnid's
// informers would hold (the fields the model reads): parse, index, compile one
// node's endpoints (what bvcnid does on its node), recompile after a label
// change with the same identity numbering and diff; heap and RSS growth.
// BVP_ROUNDS (3), BVP_PODS_PER_NS (100 = 10 apps x 10 replicas), BVP_NS (1000).
// Run with --expose-gc for exact heap figures (make bench does not; then the
// figures include garbage not yet collected).
import { performance } from 'node:perf_hooks';
import {
  compileNode,
  diffNode,
  entryCount,
  IdentityAllocator,
  parseNamespace,
  parseNetworkPolicy,
  parseNode,
  parsePod,
  StateIndex,
  type ClusterState,
} from '../../src/policy/index.js';
import { scaleCluster } from '../support/netpol-scale.js';
import { median, printTable } from './stats.js';

const ROUNDS = Number(process.env.BVP_ROUNDS ?? 3);
const NS = Number(process.env.BVP_NS ?? 1000);
const REPLICAS = Math.max(1, Math.round(Number(process.env.BVP_PODS_PER_NS ?? 100) / 10));
const gc = (globalThis as { gc?: () => void }).gc;
const mib = (b: number): number => b / 1048576;

function slimPod(p: ReturnType<typeof scaleCluster>['pods'][number]): object {
  // What an informer keeps of a Pod: metadata, spec.nodeName/hostNetwork, containers' ports, status.podIP/phase.
  return {
    metadata: { name: p.name, namespace: p.namespace, labels: p.labels, resourceVersion: '1' },
    spec: { nodeName: p.nodeName, containers: [{ ports: p.ports }] },
    status: { podIP: p.ip, phase: 'Running' },
  };
}

const results: Record<string, number[]> = {};
const note = (k: string, v: number): void => void (results[k] ??= []).push(v);
let shape = '';

for (let round = 0; round < ROUNDS; round++) {
  const sc = scaleCluster({ namespaces: NS, replicas: REPLICAS });
  const rawPods = sc.pods.map(slimPod);
  gc?.();
  const heap0 = process.memoryUsage().heapUsed;
  const rss0 = process.memoryUsage().rss;
  let t = performance.now();
  const state: ClusterState = {
    namespaces: sc.namespaces.map((n) => parseNamespace({ metadata: n })),
    pods: rawPods.map(parsePod),
    policies: sc.policies.map((p) => parseNetworkPolicy({ metadata: { name: p.name, namespace: p.namespace }, spec: p.spec })),
    nodes: sc.nodes.map((n) => parseNode({ metadata: { name: n.name }, status: { addresses: [{ type: 'InternalIP', address: n.ip }] } })),
  };
  note('parse ms', performance.now() - t);
  t = performance.now();
  const idx = new StateIndex(state);
  note('index ms', performance.now() - t);
  const alloc = new IdentityAllocator();
  t = performance.now();
  const compiled = compileNode(idx, sc.nodes[0]!.name, { allocator: alloc });
  note('compile one node ms', performance.now() - t);
  gc?.();
  note('heap growth MiB', mib(process.memoryUsage().heapUsed - heap0));
  note('RSS growth MiB', mib(process.memoryUsage().rss - rss0));
  // A label change on one local pod: a new state, recompiled with the same numbering, then diffed.
  const local = state.pods.findIndex((p) => p.nodeName === sc.nodes[0]!.name);
  const pods2 = state.pods.slice();
  pods2[local] = { ...pods2[local]!, labels: { ...pods2[local]!.labels, tier: 'back' } };
  t = performance.now();
  const idx2 = new StateIndex({ ...state, pods: pods2 });
  const compiled2 = compileNode(idx2, sc.nodes[0]!.name, { allocator: alloc });
  const d = diffNode(compiled, compiled2);
  note('label change: index+compile+diff ms', performance.now() - t);
  shape =
    `${state.pods.length} pods, ${state.namespaces.length} namespaces, ${state.policies.length} policies, ${state.nodes.length} nodes; ` +
    `node ${compiled.node}: ${compiled.endpoints.size} endpoints, ${entryCount(compiled)} policy entries, ` +
    `${compiled.identities.size} identities, ${compiled.ipcache.length} ipcache entries; ` +
    `the label change rewrote ${d.endpoints.size} endpoints' tables and ${d.ipcacheUpsert.length} ipcache entries`;
}

console.log(shape);
printTable(
  `NetworkPolicy compile (indicative: shared machine; ${ROUNDS} rounds)${gc ? '' : ' [no --expose-gc: heap includes uncollected garbage]'}`,
  ['measure', 'median', 'min', 'max'],
  Object.entries(results).map(([k, v]) => [k, median(v).toFixed(1), Math.min(...v).toFixed(1), Math.max(...v).toFixed(1)]),
);
