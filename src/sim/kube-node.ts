// The Node the simulator serves for a simulated node (the demo's API server,
// the daemon tests): what bvcnid reads of it, as the node lifecycle
// controller and the kubelet leave it. A production-sized Node for the
// benchmarks: test/support/kube-nodes.ts.
import type { V1Node } from '@kubernetes/client-node';
import type { SimNode } from './cluster.js';

/** A Node object as the node lifecycle controller and kubelet would leave it. */
export function makeNode(
  name: string,
  opts: { podCIDR?: string; podCIDRs?: string[]; internalIP?: string | string[]; externalIP?: string; labels?: Record<string, string> } = {},
): V1Node {
  const ips = opts.internalIP === undefined ? [] : Array.isArray(opts.internalIP) ? opts.internalIP : [opts.internalIP];
  const podCIDRs = opts.podCIDRs ?? (opts.podCIDR ? [opts.podCIDR] : undefined);
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { 'kubernetes.io/hostname': name, ...opts.labels } },
    spec: { ...(opts.podCIDR ?? podCIDRs?.[0] ? { podCIDR: opts.podCIDR ?? podCIDRs![0] } : {}), ...(podCIDRs ? { podCIDRs } : {}) },
    status: {
      addresses: [
        ...ips.map((address) => ({ type: 'InternalIP', address })),
        ...(opts.externalIP ? [{ type: 'ExternalIP', address: opts.externalIP }] : []),
        { type: 'Hostname', address: name },
      ],
      conditions: [{ type: 'Ready', status: 'False', reason: 'KubeletNotReady', message: 'network plugin is not ready' }],
    },
  };
}

/** The Node of a simulated node: its name, podCIDR and address on the underlay. */
export function nodeObject(n: SimNode): V1Node {
  return makeNode(n.name, { podCIDR: n.podCidr, internalIP: n.ip });
}
