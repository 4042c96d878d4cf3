// A Node shaped like one from a production cluster, for the benchmarks that
// measure what a client pays per Node (src/sim/kube-node.ts builds its core).
import type { V1Node, V1NodeCondition } from '@kubernetes/client-node';
import { makeNode } from '../../src/sim/kube-node.js';

/** Deterministic hex of length n derived from seed (stands in for digests and ids; FNV-1a steps). */
function fakeHex(seed: string, n: number): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < seed.length; i++) h = Math.imul(h ^ seed.charCodeAt(i), 0x01000193) >>> 0;
  let out = '';
  while (out.length < n) {
    h = Math.imul(h ^ out.length, 0x01000193) >>> 0;
    out += h.toString(16).padStart(8, '0');
  }
  return out.slice(0, n);
}

const REALISTIC_IMAGES = [
  'registry.k8s.io/kube-proxy:v1.30.4',
  'registry.k8s.io/pause:3.9',
  'registry.k8s.io/coredns/coredns:v1.11.1',
  'registry.k8s.io/metrics-server/metrics-server:v0.7.1',
  'registry.k8s.io/ingress-nginx/controller:v1.10.1',
  'registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.10.1',
  'registry.k8s.io/sig-storage/livenessprobe:v2.12.0',
  'registry.k8s.io/provider-aws/aws-ebs-csi-driver:v1.32.0',
  'quay.io/prometheus/node-exporter:v1.8.1',
  'quay.io/prometheus-operator/prometheus-config-reloader:v0.75.0',
  'quay.io/jetstack/cert-manager-controller:v1.15.1',
  'quay.io/jetstack/cert-manager-webhook:v1.15.1',
  'docker.io/grafana/promtail:3.0.0',
  'docker.io/library/nginx:1.27.0',
  'docker.io/library/redis:7.2.5-alpine',
  'docker.io/library/postgres:16.3',
  'docker.io/bitnami/kubectl:1.30.2',
  'ghcr.io/fluxcd/source-controller:v1.3.0',
  'ghcr.io/fluxcd/kustomize-controller:v1.3.0',
  'ghcr.io/bvcni/bvcni:0.1.0',
];

/**
 * A Node shaped like one a kubelet reports in a production cluster (about
 * 12 KiB of JSON): labels and annotations, managedFields of the kubelet and the
 * controller manager, capacity/allocatable, five conditions, nodeInfo and a
 * list of cached images (names with digests, sizes). Benchmarks that measure
 * what a client pays per Node use it; the fields the daemon reads are those of
 * makeNode.
 */
export function makeRealisticNode(
  name: string,
  opts: { podCIDR?: string; podCIDRs?: string[]; internalIP?: string | string[]; externalIP?: string; labels?: Record<string, string>; images?: number } = {},
): V1Node {
  const base = makeNode(name, opts);
  const t = new Date('2026-11-02T08:14:31Z');
  const zone = `eu-west-1${'abc'[name.length % 3]}`;
  const fields = (keys: string[]): Record<string, object> => Object.fromEntries(keys.map((k) => [k, {}]));
  const conditionFields = Object.fromEntries(
    ['DiskPressure', 'MemoryPressure', 'NetworkUnavailable', 'PIDPressure', 'Ready'].map((type) => [
      `k:{"type":"${type}"}`,
      { '.': {}, ...fields(['f:lastHeartbeatTime', 'f:lastTransitionTime', 'f:message', 'f:reason', 'f:status', 'f:type']) },
    ]),
  );
  const resources = { cpu: '8', 'ephemeral-storage': '101430960Ki', 'hugepages-1Gi': '0', 'hugepages-2Mi': '0', memory: '32386544Ki', pods: '110' };
  const images = Array.from({ length: opts.images ?? 40 }, (_, i) => {
    const ref = REALISTIC_IMAGES[i % REALISTIC_IMAGES.length]!;
    const repo = ref.slice(0, ref.lastIndexOf(':'));
    const tag = i < REALISTIC_IMAGES.length ? ref : `${repo}:build-${fakeHex(`${name}/${i}`, 12)}`;
    return { names: [`${repo}@sha256:${fakeHex(`${tag}@`, 64)}`, tag], sizeBytes: 5_000_000 + ((i * 7_654_321) % 300_000_000) };
  });
  const cond = (type: string, status: string, reason: string, message: string): V1NodeCondition => ({
    type, status, lastHeartbeatTime: t, lastTransitionTime: t, reason, message,
  });
  return {
    ...base,
    metadata: {
      ...base.metadata,
      uid: `${fakeHex(name, 8)}-${fakeHex(`${name}1`, 4)}-4${fakeHex(`${name}2`, 3)}-8${fakeHex(`${name}3`, 3)}-${fakeHex(`${name}4`, 12)}`,
      creationTimestamp: t,
      labels: {
        'beta.kubernetes.io/arch': 'amd64',
        'beta.kubernetes.io/instance-type': 'm6i.2xlarge',
        'beta.kubernetes.io/os': 'linux',
        'failure-domain.beta.kubernetes.io/region': 'eu-west-1',
        'failure-domain.beta.kubernetes.io/zone': zone,
        'kubernetes.io/arch': 'amd64',
        'kubernetes.io/hostname': name,
        'kubernetes.io/os': 'linux',
        'node.kubernetes.io/instance-type': 'm6i.2xlarge',
        'topology.kubernetes.io/region': 'eu-west-1',
        'topology.kubernetes.io/zone': zone,
        'topology.ebs.csi.aws.com/zone': zone,
        ...opts.labels,
      },
      annotations: {
        'alpha.kubernetes.io/provided-node-ip': base.status?.addresses?.[0]?.address ?? '',
        'csi.volume.kubernetes.io/nodeid': JSON.stringify({ 'ebs.csi.aws.com': `i-${fakeHex(name, 17)}` }),
        'kubeadm.alpha.kubernetes.io/cri-socket': 'unix:///run/containerd/containerd.sock',
        'node.alpha.kubernetes.io/ttl': '0',
        'volumes.kubernetes.io/controller-managed-attach-detach': 'true',
      },
      managedFields: [
        {
          manager: 'kubelet', operation: 'Update', apiVersion: 'v1', time: t, fieldsType: 'FieldsV1',
          fieldsV1: {
            'f:metadata': {
              'f:annotations': { '.': {}, ...fields(['f:alpha.kubernetes.io/provided-node-ip', 'f:csi.volume.kubernetes.io/nodeid', 'f:node.alpha.kubernetes.io/ttl', 'f:volumes.kubernetes.io/controller-managed-attach-detach']) },
              'f:labels': { '.': {}, ...fields(['f:beta.kubernetes.io/arch', 'f:beta.kubernetes.io/os', 'f:kubernetes.io/arch', 'f:kubernetes.io/hostname', 'f:kubernetes.io/os', 'f:node.kubernetes.io/instance-type', 'f:topology.kubernetes.io/region', 'f:topology.kubernetes.io/zone']) },
            },
            'f:spec': fields(['f:providerID']),
          },
        },
        {
          manager: 'kube-controller-manager', operation: 'Update', apiVersion: 'v1', time: t, fieldsType: 'FieldsV1',
          fieldsV1: { 'f:spec': { 'f:podCIDR': {}, 'f:podCIDRs': { '.': {}, [`v:"${base.spec?.podCIDR ?? ''}"`]: {} } } },
        },
        {
          manager: 'bvcnid', operation: 'Update', apiVersion: 'v1', time: t, fieldsType: 'FieldsV1', subresource: 'status',
          fieldsV1: { 'f:status': { 'f:conditions': { [`k:{"type":"NetworkUnavailable"}`]: conditionFields[`k:{"type":"NetworkUnavailable"}`]! } } },
        },
        {
          manager: 'kubelet', operation: 'Update', apiVersion: 'v1', time: t, fieldsType: 'FieldsV1', subresource: 'status',
          fieldsV1: {
            'f:status': {
              'f:allocatable': fields(Object.keys(resources).map((k) => `f:${k}`)),
              'f:capacity': fields(Object.keys(resources).map((k) => `f:${k}`)),
              'f:conditions': conditionFields,
              ...fields(['f:daemonEndpoints', 'f:images', 'f:nodeInfo', 'f:volumesAttached', 'f:volumesInUse']),
            },
          },
        },
      ],
    },
    spec: { ...base.spec, providerID: `aws:///${zone}/i-${fakeHex(name, 17)}` },
    status: {
      ...base.status,
      capacity: resources,
      allocatable: { ...resources, cpu: '7910m', 'ephemeral-storage': '92403479626', memory: '31369712Ki' },
      conditions: [
        cond('NetworkUnavailable', 'False', 'BvcniIsUp', 'bvcnid is running on this node'),
        cond('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'),
        cond('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'),
        cond('PIDPressure', 'False', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'),
        cond('Ready', 'True', 'KubeletReady', 'kubelet is posting ready status'),
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
      nodeInfo: {
        machineID: fakeHex(`${name}m`, 32),
        systemUUID: `ec2${fakeHex(`${name}s`, 5)}-${fakeHex(`${name}t`, 4)}-${fakeHex(`${name}u`, 4)}-${fakeHex(`${name}v`, 4)}-${fakeHex(`${name}w`, 12)}`,
        bootID: `${fakeHex(`${name}b`, 8)}-${fakeHex(`${name}c`, 4)}-${fakeHex(`${name}d`, 4)}-${fakeHex(`${name}e`, 4)}-${fakeHex(`${name}f`, 12)}`,
        kernelVersion: '6.1.102-111.182.amzn2023.x86_64',
        osImage: 'Amazon Linux 2023.5.20240819',
        containerRuntimeVersion: 'containerd://1.7.20',
        kubeletVersion: 'v1.30.4-eks-a737599',
        kubeProxyVersion: 'v1.30.4-eks-a737599',
        operatingSystem: 'linux',
        architecture: 'amd64',
      },
      images,
      volumesInUse: [`kubernetes.io/csi/ebs.csi.aws.com^vol-${fakeHex(`${name}vol`, 17)}`],
      volumesAttached: [{ name: `kubernetes.io/csi/ebs.csi.aws.com^vol-${fakeHex(`${name}vol`, 17)}`, devicePath: '' }],
    },
  };
}
