// The plugin's dataplane in memory (src/cni/dataplane.ts's interface), for
// unit tests of the command handlers and the in-process fuzzer.
import type { EndpointValue } from '../../src/dataplane/abi.js';
import { endpointFlags } from '../../src/dataplane/endpoint.js';
import type { Dataplane, Endpoint, Readiness } from '../../src/cni/dataplane.js';

export class FakeDataplane implements Dataplane {
  readonly entries = new Map<string, EndpointValue>();
  ready: Readiness = { ready: true };
  readiness(): Readiness {
    return this.ready;
  }
  register(_pinDir: string, ep: Endpoint): void {
    this.entries.set(ep.ip, { ifindex: ep.ifindex, flags: endpointFlags(ep.device), pod_mac: ep.podMac, gw_mac: ep.gwMac, identity: 0 });
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
  podProgramOnNetkit(): boolean {
    return false;
  }
  nodeIp(): string | undefined {
    return undefined;
  }
}
