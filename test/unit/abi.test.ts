// The TypeScript mirror (src/dataplane/abi.ts) against what clang compiled:
// struct sizes, member offsets and sizes from the objects' BTF, and the
// enums/constants from bpf/lib/abi.h.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { fieldSize, type StructCodec } from '../../loader/codec.js';
import * as abi from '../../src/dataplane/abi.js';
import { MIN_OVERLAY_OBJ, minOverlayParams } from '../fixtures/bpf/min-overlay.js';
import { loadBtf, sizeOf, type BtfType } from '../support/btf.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const OBJECTS = ['bpf_pod.o', 'bpf_overlay.o', 'bpf_host.o', 'bpf_to_pod.o'].map((f) => `${ROOT}dist/bpf/${f}`);
const HEADER = readFileSync(`${ROOT}bpf/lib/abi.h`, 'utf8');

const CODECS: StructCodec<unknown>[] = [
  abi.tunnelKey,
  abi.tunnelValue,
  abi.endpointKey,
  abi.endpointValue,
  abi.configValue,
  abi.statsValue,
  abi.natKey,
  abi.natEntry,
  abi.hostportKey,
  abi.hostportValue,
  abi.hostportFlowKey,
  abi.hostportFlowValue,
  abi.ipcacheKey,
  abi.ipcacheValue,
  abi.policyKey,
  abi.policyValue,
  abi.podCtKey,
  abi.podCtValue,
  abi.dropEvent,
  abi.monitorConfig,
  abi.monitorBucket,
] as StructCodec<unknown>[];

/** Asserts the codec's size and fields against the struct of that name in every object that has it. */
function assertCodecMatches(codec: StructCodec<unknown>, btfs: Map<number, BtfType>[]): void {
  let checked = 0;
  for (const btf of btfs) {
    const st = [...btf.values()].find((t) => t.kind === 'STRUCT' && t.name === codec.name);
    if (!st) continue;
    checked++;
    assert.equal(codec.size, st.size, `${codec.name} size`);
    const members = st.members!.map((m) => ({ name: m.name, offset: m.bits_offset / 8, size: sizeOf(btf, m.type_id) }));
    const fields = codec.fields.map((f) => ({ name: f.name, offset: f.offset, size: fieldSize(f) }));
    assert.deepEqual(fields, members);
  }
  assert.ok(checked > 0, `${codec.name} is in no object's BTF`);
}

describe('ABI: TypeScript codecs match the compiled C structs', () => {
  for (const obj of OBJECTS) assert.ok(existsSync(obj), `${obj} missing: run make build`);
  const btfs = OBJECTS.map(loadBtf);

  for (const codec of CODECS) {
    test(`${codec.name}: size, member offsets and sizes`, () => assertCodecMatches(codec, btfs));
  }

  test("the benchmark's minimal overlay: its parameter struct", () => {
    assertCodecMatches(minOverlayParams as StructCodec<unknown>, [loadBtf(`${ROOT}${MIN_OVERLAY_OBJ}`)]);
  });

  test('every map the objects declare has a codec of the right key and value size', () => {
    for (const btf of btfs) {
      let seen = 0;
      for (const t of btf.values()) {
        if (t.kind !== 'VAR' || !t.name?.startsWith('bvcni_')) continue;
        seen++;
        const def = btf.get(t.type_id!)!;
        const member = (n: string) => def.members!.find((m) => m.name === n)!;
        if (t.name === abi.MapName.events) {
          // A ring buffer: no key or value; its size in max_entries, its records drop_event (checked above).
          const size = btf.get(btf.get(member('max_entries').type_id)!.type_id!)!.nr_elems;
          assert.equal(size, abi.EVENTS_BYTES, 'bvcni_events size');
          continue;
        }
        // __type(key, T) is a pointer member to T.
        const keySize = sizeOf(btf, btf.get(member('key').type_id)!.type_id!);
        const valueSize = sizeOf(btf, btf.get(member('value').type_id)!.type_id!);
        const expected: Record<string, [number, number]> = {
          [abi.MapName.tunnel]: [abi.tunnelKey.size, abi.tunnelValue.size],
          [abi.MapName.endpoints]: [abi.endpointKey.size, abi.endpointValue.size],
          [abi.MapName.config]: [abi.configKey.size, abi.configValue.size],
          [abi.MapName.nat]: [abi.natKey.size, abi.natEntry.size],
          [abi.MapName.stats]: [abi.statsKey.size, abi.statsValue.size],
          [abi.MapName.hostport]: [abi.hostportKey.size, abi.hostportValue.size],
          [abi.MapName.hostportFlows]: [abi.hostportFlowKey.size, abi.hostportFlowValue.size],
          [abi.MapName.ipcache]: [abi.ipcacheKey.size, abi.ipcacheValue.size],
          [abi.MapName.policy]: [abi.policyKey.size, abi.policyValue.size],
          [abi.MapName.podCt]: [abi.podCtKey.size, abi.podCtValue.size],
          [abi.MapName.monitor]: [4, abi.monitorConfig.size],
          [abi.MapName.monitorBucket]: [4, abi.monitorBucket.size],
        };
        assert.ok(expected[t.name], `map ${t.name} has no codec in abi.ts`);
        assert.deepEqual([keySize, valueSize], expected[t.name], t.name);
      }
      assert.equal(seen, Object.keys(abi.MapName).length, 'every object declares all shared maps');
    }
  });
});

function headerEnum(prefix: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of HEADER.matchAll(new RegExp(`^\\s*${prefix}(\\w+)\\s*=\\s*(\\d+)`, 'gm'))) out[m[1]!] = Number(m[2]);
  return out;
}

function headerDefine(name: string): string {
  const m = new RegExp(`^#define\\s+${name}\\s+(.+?)\\s*(/\\*.*)?$`, 'm').exec(HEADER);
  if (!m) throw new Error(`#define ${name} not in abi.h`);
  return m[1]!;
}

describe('ABI: enums and constants match abi.h', () => {
  test('drop reasons', () => {
    const fromHeader = headerEnum('REASON_');
    const max = fromHeader.MAX;
    delete fromHeader.MAX;
    assert.deepEqual(fromHeader, { ...abi.Reason });
    assert.equal(max, abi.REASON_MAX);
  });

  test('drop events: hooks and flags', () => {
    assert.deepEqual(headerEnum('HOOK_'), { POD: abi.Hook.pod, UPLINK: abi.Hook.uplink, OVERLAY_IN: abi.Hook.overlayIngress, OVERLAY_OUT: abi.Hook.overlayEgress, TO_POD: abi.Hook.toPod });
    assert.deepEqual(
      Object.fromEntries([...HEADER.matchAll(/^\s*EVENT_F_(\w+)\s*=\s*1 << (\d+)/gm)].map((m) => [m[1]!.toLowerCase(), 1 << Number(m[2])])),
      { ...abi.EventFlags },
    );
    assert.equal(headerDefine('BVCNI_EVENTS_BYTES'), '(256 * 1024)');
    assert.equal(abi.EVENTS_BYTES, 256 * 1024);
  });

  test('directions, flags, NAT enums', () => {
    assert.deepEqual(headerEnum('DIR_'), { INGRESS: abi.Direction.ingress, EGRESS: abi.Direction.egress });
    assert.deepEqual(headerEnum('NAT_DIR_'), { EGRESS: abi.NatDir.egress, INGRESS: abi.NatDir.ingress });
    assert.deepEqual(headerEnum('NAT_TCP_'), { ...abi.NatTcpState });
    assert.equal(abi.TunnelFlags.nodeIp, 1 << Number(/TUNNEL_F_NODE_IP\s*=\s*1 << (\d+)/.exec(HEADER)![1]));
    assert.equal(abi.EndpointFlags.pod, 1 << Number(/ENDPOINT_F_POD\s*=\s*1 << (\d+)/.exec(HEADER)![1]));
    assert.equal(abi.EndpointFlags.hostport, 1 << Number(/ENDPOINT_F_HOSTPORT\s*=\s*1 << (\d+)/.exec(HEADER)![1]));
    assert.equal(abi.ConfigFlags.ready, 1 << Number(/CONFIG_F_READY\s*=\s*1 << (\d+)/.exec(HEADER)![1]));
    assert.deepEqual(
      Object.fromEntries([...HEADER.matchAll(/^\s*ENDPOINT_F_(\w+)\s*=\s*1 << (\d+)/gm)].map((m) => [m[1]!.toLowerCase(), 1 << Number(m[2])])),
      { ...abi.EndpointFlags },
    );
    assert.equal(abi.ConfigFlags.masquerade, 1 << Number(/CONFIG_F_MASQUERADE\s*=\s*1 << (\d+)/.exec(HEADER)![1]));
  });

  test('map sizes, names and NAT timeouts', () => {
    assert.equal(Number(headerDefine('BVCNI_TUNNEL_MAX')), abi.TUNNEL_MAX);
    assert.equal(Number(headerDefine('BVCNI_ENDPOINTS_MAX')), abi.ENDPOINTS_MAX);
    assert.equal(Number(headerDefine('BVCNI_NAT_MAX')), abi.NAT_MAX);
    assert.equal(Number(headerDefine('BVCNI_HOSTPORT_MAX')), abi.HOSTPORT_MAX);
    assert.equal(Number(headerDefine('BVCNI_HOSTPORT_FLOWS_MAX')), abi.HOSTPORT_FLOWS_MAX);
    assert.equal(Number(headerDefine('BVCNI_IPCACHE_MAX')), abi.IPCACHE_MAX);
    assert.equal(Number(headerDefine('BVCNI_POLICY_MAX')), abi.POLICY_MAX);
    assert.equal(Number(headerDefine('BVCNI_POD_CT_MAX')), abi.POD_CT_MAX);
    assert.deepEqual(Object.fromEntries([...HEADER.matchAll(/^\s*POD_CT_F_(\w+)\s*=\s*1 << (\d+)/gm)].map((m) => [m[1]!, 1 << Number(m[2])])), { ...abi.PodCtFlags });
    assert.deepEqual({ ANY: Number(headerDefine('ID_ANY')), HOST: Number(headerDefine('ID_HOST')), WORLD: Number(headerDefine('ID_WORLD')) }, { ANY: abi.Identity.any, HOST: abi.Identity.host, WORLD: abi.Identity.world });
    assert.equal(Number(headerDefine('NAT_PORT_PROBES')), abi.NAT_PORT_PROBES);
    assert.equal(Number(headerDefine('NAT_PORT_RUN')), abi.NAT_PORT_RUN);
    for (const [k, v] of Object.entries(abi.MapName)) {
      assert.equal(headerDefine(`BVCNI_MAP_${k.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`), v);
    }
    const sec = (name: string): bigint => {
      const m = /\((\d+)ULL \* NAT_SEC\)/.exec(headerDefine(name));
      assert.ok(m, name);
      return BigInt(m[1]!) * 1_000_000_000n;
    };
    assert.equal(Number(headerDefine('NAT_SEC').replace(/ULL$/, '')), 1e9);
    assert.deepEqual(
      {
        TCP_SYN: sec('NAT_TIMEOUT_TCP_SYN'),
        TCP_EST: sec('NAT_TIMEOUT_TCP_EST'),
        TCP_FIN: sec('NAT_TIMEOUT_TCP_FIN'),
        TCP_CLOSED: sec('NAT_TIMEOUT_TCP_CLOSED'),
        TCP_TIME_WAIT: sec('NAT_TIMEOUT_TCP_TIME_WAIT'),
        UDP: sec('NAT_TIMEOUT_UDP'),
        ICMP: sec('NAT_TIMEOUT_ICMP'),
      },
      { ...abi.NatTimeout },
    );
  });

  test('codecs round-trip', () => {
    const cfg = {
      node_ip: '192.0.2.11',
      pod_cidr: '10.244.1.0',
      pod_prefix: 24,
      cluster_cidr: '10.244.0.0',
      cluster_prefix: 16,
      vxlan_ifindex: 5,
      uplink_ifindex: 2,
      bridge_ifindex: 4,
      vni: 1,
      nat_port_min: 61000,
      nat_port_max: 65000,
      bridge_mac: '0a:58:0a:f4:01:01',
      uplink_mac: '02:00:00:00:00:01',
      mtu: 1450,
      flags: 3,
      service_cidr: '10.96.0.0',
      service_prefix: 12,
      vxlan_port: 8472,
    };
    const b = Buffer.alloc(abi.configValue.size);
    abi.configValue.encode(cfg, b);
    assert.deepEqual(abi.configValue.decode(b), cfg);
    assert.equal(b.readUInt32BE(0), 0xc000020b, 'addresses in network order');
    const nk = { saddr: '10.244.1.2', daddr: '198.51.100.1', sport: 40000, dport: 80, proto: 6, dir: 1 };
    const nb = Buffer.alloc(abi.natKey.size);
    abi.natKey.encode(nk, nb);
    assert.equal(nb.readUInt16BE(8), 40000, 'ports in network order');
    assert.deepEqual(abi.natKey.decode(nb), nk);
  });
});
