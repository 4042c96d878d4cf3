// Every default bvcni ships with, in one place: bvcnid's flags, the plugin's
// config, bvcnictl's options, the simulator and the manifest's comments all
// read them here, so a change is one line. Constants only: the plugin loads
// this on every call.

/** Bytes the VXLAN encapsulation adds: outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14). */
export const VXLAN_OVERHEAD = 50;

export const Defaults = {
  /** bpffs directory of the pinned maps and programs. */
  pinDir: '/sys/fs/bpf/bvcni',
  /** The pod bridge. */
  bridge: 'cni0',
  vxlanDev: 'vxlan.1',
  /** The Linux kernel's VXLAN port (and flannel's vxlan backend's), not IANA's 4789. */
  vxlanPort: 8472,
  vni: 1,
  clusterCidr: '10.244.0.0/16',
  /** kubeadm's and kube-apiserver's default --service-cluster-ip-range. */
  serviceCidr: '10.96.0.0/12',
  /** Above Linux's default ephemeral range (32768-60999), and reserved anyway. */
  natPortMin: 61000,
  natPortMax: 65000,
  /** Where the container runtime reads CNI configs. */
  cniConfDir: '/etc/cni/net.d',
  /** Where the container runtime finds CNI plugins. */
  cniBinDir: '/opt/cni/bin',
  /** IPAM state: bvcnid's --state-dir, the plugin's dataDir. */
  stateDir: '/var/lib/cni/bvcni',
  /** bvcnid's /healthz and /readyz (the kubelet probes loopback: hostNetwork). */
  healthAddr: '127.0.0.1:9099',
  /** The plugin's pod MTU when it finds no uplink: a 1500-byte underlay less the VXLAN overhead. */
  podMtu: 1500 - VXLAN_OVERHEAD,
  logLevel: 'info',
  /** Deadline for connect and response headers of every API request. */
  apiTimeoutMs: 30_000,
  /** Deadline for a whole response body once its headers are in. */
  apiBodyTimeoutMs: 60_000,
  /** A Node watch silent this long is restarted from its resourceVersion. */
  watchIdleTimeoutMs: 150_000,
  /** /healthz fails when the API sync or the reconcile loop is stuck this long. */
  stuckAfterMs: 300_000,
  /** Pause between background counts of the NAT table. */
  natCountIntervalMs: 10_000,
} as const;
