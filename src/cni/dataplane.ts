// The plugin's view of the dataplane: the endpoint map under the pin
// directory (pod IP -> host veth, MACs) and whether bvcnid has finished
// setting the node up. Everything goes through one small interface so the
// command handlers can run against a fake in unit tests and the fuzzer
// (test/support/fake-dataplane.ts).
import { existsSync } from 'node:fs';
import { EndpointFlags, MapName, type EndpointValue } from '../dataplane/abi.js';
import { listEndpoints, missingPodPrograms, registerEndpoint, unregisterEndpoint, type PodDevice } from '../dataplane/endpoint.js';
import { mapPin, openEndpointsMap, readDataplaneConfig } from '../dataplane/maps.js';
import { dataplaneReady } from '../dataplane/node.js';
import { BpfProgram, preload, queryNetkit } from '../../loader/index.js';
import {
  HostPortConflict,
  claimHostPorts,
  listHostPorts,
  pruneHostPorts,
  type HostPortEntry,
  type HostPortMapping,
} from '../dataplane/hostport.js';
import { programPin } from '../dataplane/layout.js';
import { Code, CniError } from './errors.js';
import { mark } from './trace.js';

export interface Endpoint {
  ip: string;
  ifindex: number;
  hostIfname: string;
  podMac: string;
  gwMac: string;
  /** The pod owns hostPort mappings (ENDPOINT_F_HOSTPORT). */
  hostport?: boolean;
  device?: PodDevice;
  /** NetworkPolicy is enforced on this node: the entry starts ENDPOINT_F_POLICY_PENDING until bvcnid writes the pod's rules. */
  policyPending?: boolean;
}

export type Readiness = { ready: true } | { ready: false; reason: string };

/** What crosses the VXLAN tunnel, and the MTU that leaves room for its header. */
export interface Overlay {
  mtu: number;
  /** Other nodes' pods (the cluster CIDR) and ClusterIPs, whose backends may be on any node. */
  cidrs: { dst: string; dstLen: number }[];
}

export interface Dataplane {
  readiness(pinDir: string): Readiness;
  register(pinDir: string, ep: Endpoint): void;
  /** Removes a pod's entry (tolerant of absent); false when no dataplane is pinned there. */
  unregister(pinDir: string, ip: string): boolean;
  lookup(pinDir: string, ip: string): EndpointValue | undefined;
  /** Pod addresses with an entry (flag ENDPOINT_F_POD), for GC. */
  podIps(pinDir: string): string[];
  /** What of the pod's programs (dataplane/endpoint.ts, attachPodProgram) its host end lacks: empty when both run. */
  missingPodPrograms(pinDir: string, ifindex: number, device: PodDevice): string[];
  /** The node's own address as bvcnid configured it, if it did: the source the node talks to pods from. */
  nodeIp(pinDir: string): string | undefined;
  /** The tunnel as bvcnid configured it, if it did. */
  overlay(pinDir: string): Overlay | undefined;
  /**
   * Claims every mapping for the pod, all or nothing: CniError 105 when one is
   * another owner's (whose entry stays), 7 when a hostPort lies in the node's
   * masquerade port range (its replies would be taken for masqueraded ones).
   */
  claimHostPorts(pinDir: string, owner: bigint, podIp: string, mappings: readonly HostPortMapping[]): void;
  /** Removes the entries that remove() selects (only owner or GC); how many went. Tolerant of no map. */
  pruneHostPorts(pinDir: string, remove: (e: HostPortEntry) => boolean): number;
  hostPorts(pinDir: string): HostPortEntry[];
}

/** A HostPortConflict as the CNI error the runtime sees (code 105). */
export function conflictError(e: HostPortConflict): CniError {
  const m = e.mapping;
  return new CniError(
    Code.hostPortInUse,
    `hostPort ${m.hostIp}:${m.hostPort}/${m.protocol} is already in use`,
    `mapped to ${e.holder.pod_ip}:${e.holder.pod_port} by another container`,
  );
}

/** The real dataplane: src/dataplane's endpoint registration against the pinned maps. */
export class PinnedDataplane implements Dataplane {
  readiness(pinDir: string): Readiness {
    preload('koffi');
    mark('koffi loaded');
    preload('libbpf');
    mark('libbpf loaded');
    if (!existsSync(mapPin(pinDir, MapName.endpoints))) return { ready: false, reason: `dataplane not loaded: nothing pinned under ${pinDir}` };
    if (!dataplaneReady(pinDir)) return { ready: false, reason: `dataplane not ready under ${pinDir}: bvcnid has not finished loading and configuring it` };
    return { ready: true };
  }

  register(pinDir: string, ep: Endpoint): void {
    registerEndpoint(pinDir, { ip: ep.ip, hostIfname: ep.hostIfname, hostIfindex: ep.ifindex, podMac: ep.podMac, gwMac: ep.gwMac, device: ep.device ?? 'veth', hostport: ep.hostport, policyPending: ep.policyPending });
  }

  claimHostPorts(pinDir: string, owner: bigint, podIp: string, mappings: readonly HostPortMapping[]): void {
    if (mappings.length === 0) return;
    if (!existsSync(mapPin(pinDir, MapName.hostport)))
      throw new CniError(Code.notAvailable, `the dataplane under ${pinDir} has no hostPort map: bvcnid predates hostPort support (upgrade it), or --prepare-downgrade removed it for a rollback to v0.1.0`);
    const cfg = readDataplaneConfig(pinDir);
    const min = cfg?.nat_port_min ?? 0;
    const max = cfg?.nat_port_max ?? 0;
    for (const m of mappings) {
      if (min && m.hostPort >= min && m.hostPort <= max)
        throw new CniError(Code.invalidConfig, `invalid config: field "runtimeConfig.portMappings": hostPort ${m.hostPort} is in the node's masquerade port range ${min}-${max}`);
    }
    try {
      claimHostPorts(pinDir, owner, podIp, mappings);
    } catch (e) {
      throw e instanceof HostPortConflict ? conflictError(e) : e;
    }
  }

  pruneHostPorts(pinDir: string, remove: (e: HostPortEntry) => boolean): number {
    return pruneHostPorts(pinDir, remove);
  }

  hostPorts(pinDir: string): HostPortEntry[] {
    return listHostPorts(pinDir);
  }

  unregister(pinDir: string, ip: string): boolean {
    // DEL stays idempotent after an uninstall removed the maps.
    if (!existsSync(mapPin(pinDir, MapName.endpoints))) return false;
    // DEL and GC delete the pod's host veth, and its program with it. (With
    // bvcnid the delete comes after the answer, so a detach here would find
    // the veth and wait ~up to 30 ms for RCU while bvcnid serves nothing else.)
    unregisterEndpoint(pinDir, ip, { detach: false });
    return true;
  }

  lookup(pinDir: string, ip: string): EndpointValue | undefined {
    if (!existsSync(mapPin(pinDir, MapName.endpoints))) return undefined;
    using m = openEndpointsMap(pinDir);
    return m.lookup({ ip });
  }

  podIps(pinDir: string): string[] {
    if (!existsSync(mapPin(pinDir, MapName.endpoints))) return [];
    return listEndpoints(pinDir)
      .filter((e) => Number(e.flags) & EndpointFlags.pod)
      .map((e) => String(e.ip));
  }

  missingPodPrograms(pinDir: string, ifindex: number, device: PodDevice): string[] {
    return missingPodPrograms(pinDir, { ifindex, device });
  }

  nodeIp(pinDir: string): string | undefined {
    const ip = readDataplaneConfig(pinDir)?.node_ip;
    return typeof ip === 'string' && ip !== '0.0.0.0' ? ip : undefined;
  }

  overlay(pinDir: string): Overlay | undefined {
    const c = readDataplaneConfig(pinDir);
    if (!c || !c.mtu) return undefined;
    const cidrs = [{ dst: String(c.cluster_cidr), dstLen: Number(c.cluster_prefix) }];
    if (c.service_prefix) cidrs.push({ dst: String(c.service_cidr), dstLen: Number(c.service_prefix) });
    return { mtu: Number(c.mtu), cidrs };
  }
}
