// The plugin's dataplane in memory (src/cni/dataplane.ts's interface), for
// unit tests of the command handlers and the in-process fuzzer.
import type { EndpointValue } from '../../src/dataplane/abi.js';
import { endpointFlags } from '../../src/dataplane/endpoint.js';
import { conflictError, type Dataplane, type Endpoint, type Overlay, type Readiness } from '../../src/cni/dataplane.js';
import { HostPortConflict, type HostPortEntry, type HostPortMapping } from '../../src/dataplane/hostport.js';

export class FakeDataplane implements Dataplane {
  readonly entries = new Map<string, EndpointValue>();
  readonly ports = new Map<string, HostPortEntry>();
  ready: Readiness = { ready: true };
  readiness(): Readiness {
    return this.ready;
  }
  register(_pinDir: string, ep: Endpoint): void {
    this.entries.set(ep.ip, { ifindex: ep.ifindex, flags: endpointFlags(ep.device, ep.hostport), pod_mac: ep.podMac, gw_mac: ep.gwMac, identity: 0 });
  }
  unregister(_pinDir: string, ip: string): boolean {
    return this.entries.delete(ip);
  }
  lookup(_pinDir: string, ip: string): EndpointValue | undefined {
    return this.entries.get(ip);
  }
  podIps(): string[] {
    return [...this.entries.keys()];
  }
  /** What missingPodPrograms answers (the real one asks the kernel). */
  missing: string[] = [];
  missingPodPrograms(): string[] {
    return this.missing;
  }
  nodeIp(): string | undefined {
    return undefined;
  }
  /** Unset: no bvcnid config, pods get no tunnel routes. */
  tunnel: Overlay | undefined;
  overlay(): Overlay | undefined {
    return this.tunnel;
  }
  claimHostPorts(_pinDir: string, owner: bigint, podIp: string, mappings: readonly HostPortMapping[]): void {
    const id = (m: HostPortMapping): string => `${m.hostIp}:${m.hostPort}/${m.protocol}`;
    for (const m of mappings) {
      const holder = this.ports.get(id(m));
      if (holder && holder.owner !== owner) throw conflictError(new HostPortConflict(m, { pod_ip: holder.podIp, pod_port: holder.containerPort, owner: holder.owner }));
    }
    for (const m of mappings) this.ports.set(id(m), { ...m, podIp, owner });
  }
  pruneHostPorts(_pinDir: string, remove: (e: HostPortEntry) => boolean): number {
    let n = 0;
    for (const [k, e] of this.ports) if (remove(e) && this.ports.delete(k)) n++;
    return n;
  }
  hostPorts(): HostPortEntry[] {
    return [...this.ports.values()];
  }
}
