// The plugin's view of the dataplane: the endpoint map under the pin
// directory (pod IP -> host veth, MACs) and whether bvcnid has finished
// setting the node up. Everything goes through one small interface so the
// command handlers can run against a fake in unit tests and the fuzzer.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BpfMap } from '../../loader/index.js';
import {
  ConfigFlags,
  EndpointFlags,
  MapName,
  configKey,
  configValue,
  endpointKey,
  endpointValue,
  type ConfigValue,
  type EndpointKey,
  type EndpointValue,
} from '../dataplane/abi.js';

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
  /** Removes a pod's entry; false when there was none. */
  unregister(pinDir: string, ip: string): boolean;
  lookup(pinDir: string, ip: string): EndpointValue | undefined;
  /** Pod addresses with an entry (flag ENDPOINT_F_POD), for GC. */
  podIps(pinDir: string): string[];
}

export class PinnedDataplane implements Dataplane {
  private readonly maps = new Map<string, BpfMap<EndpointKey, EndpointValue>>();

  private endpoints(pinDir: string): BpfMap<EndpointKey, EndpointValue> {
    let m = this.maps.get(pinDir);
    if (!m) {
      m = BpfMap.openPinned(join(pinDir, MapName.endpoints), endpointKey, endpointValue);
      this.maps.set(pinDir, m);
    }
    return m;
  }

  readiness(pinDir: string): Readiness {
    if (!existsSync(join(pinDir, MapName.endpoints))) return { ready: false, reason: `dataplane not loaded: no ${MapName.endpoints} map under ${pinDir}` };
    const cfgPath = join(pinDir, MapName.config);
    if (!existsSync(cfgPath)) return { ready: false, reason: `dataplane not loaded: no ${MapName.config} map under ${pinDir}` };
    let cfg: ConfigValue | undefined;
    const m = BpfMap.openPinned(cfgPath, configKey, configValue);
    try {
      cfg = m.lookup(0);
    } finally {
      m.close();
    }
    if (!cfg || (Number(cfg.flags) & ConfigFlags.ready) === 0) return { ready: false, reason: 'dataplane not ready: bvcnid has not finished configuring this node' };
    return { ready: true };
  }

  register(pinDir: string, ep: Endpoint): void {
    this.endpoints(pinDir).update({ ip: ep.ip }, { ifindex: ep.ifindex, flags: EndpointFlags.pod, pod_mac: ep.podMac, gw_mac: ep.gwMac });
  }

  unregister(pinDir: string, ip: string): boolean {
    if (!existsSync(join(pinDir, MapName.endpoints))) return false;
    return this.endpoints(pinDir).delete({ ip });
  }

  lookup(pinDir: string, ip: string): EndpointValue | undefined {
    if (!existsSync(join(pinDir, MapName.endpoints))) return undefined;
    return this.endpoints(pinDir).lookup({ ip });
  }

  podIps(pinDir: string): string[] {
    if (!existsSync(join(pinDir, MapName.endpoints))) return [];
    const out: string[] = [];
    for (const [k, v] of this.endpoints(pinDir).entries()) if (Number(v.flags) & EndpointFlags.pod) out.push(String(k.ip));
    return out;
  }

  close(): void {
    for (const m of this.maps.values()) m.close();
    this.maps.clear();
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
    this.entries.set(ep.ip, { ifindex: ep.ifindex, flags: EndpointFlags.pod, pod_mac: ep.podMac, gw_mac: ep.gwMac });
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
