// The plugin's view of the dataplane: the endpoint map under the pin
// directory (pod IP -> host veth, MACs) and whether bvcnid has finished
// setting the node up. Everything goes through one small interface so the
// command handlers can run against a fake in unit tests and the fuzzer.
import { existsSync } from 'node:fs';
import { EndpointFlags, MapName, type EndpointValue } from '../dataplane/abi.js';
import { listEndpoints, registerEndpoint, unregisterEndpoint } from '../dataplane/endpoint.js';
import { mapPin, openEndpointsMap } from '../dataplane/maps.js';
import { dataplaneReady } from '../dataplane/node.js';
import { preload } from '../../loader/index.js';
import { mark } from './trace.js';

export interface Endpoint {
  ip: string;
  ifindex: number;
  hostIfname: string;
  podMac: string;
  gwMac: string;
}

export type Readiness = { ready: true } | { ready: false; reason: string };

export interface Dataplane {
  readiness(pinDir: string): Readiness;
  register(pinDir: string, ep: Endpoint): void;
  /** Removes a pod's entry (tolerant of absent); false when no dataplane is pinned there. */
  unregister(pinDir: string, ip: string): boolean;
  lookup(pinDir: string, ip: string): EndpointValue | undefined;
  /** Pod addresses with an entry (flag ENDPOINT_F_POD), for GC. */
  podIps(pinDir: string): string[];
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
    registerEndpoint(pinDir, { ip: ep.ip, hostIfname: ep.hostIfname, hostIfindex: ep.ifindex, podMac: ep.podMac, gwMac: ep.gwMac });
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
}

/** In-memory dataplane for unit tests and the in-process fuzzer. */
export class FakeDataplane implements Dataplane {
  readonly entries = new Map<string, EndpointValue>();
  ready: Readiness = { ready: true };
  readiness(): Readiness {
    return this.ready;
  }
  register(_pinDir: string, ep: Endpoint): void {
    this.entries.set(ep.ip, { ifindex: ep.ifindex, flags: EndpointFlags.pod, pod_mac: ep.podMac, gw_mac: ep.gwMac, identity: 0 });
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
}
