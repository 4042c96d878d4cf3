// The byte layout of the policy and ipcache LPM maps (README.md in this
// directory): bpf/lib/abi.h's struct policy_key, which src/dataplane/abi.ts
// mirrors and src/dataplane/policy.ts writes (this library may not import it;
// test/unit/policy-keys.test.ts holds both encodings to the same bytes).
//
//   struct policy_key {            // BPF_MAP_TYPE_LPM_TRIE, BPF_F_NO_PREALLOC
//       __u32  prefixlen;          // bits of what follows that must match
//       __be32 endpoint;           // the local pod's IPv4
//       __u32  identity;           // the peer's (ID_ANY: every peer), network order
//       __u8   direction;          // 0 ingress, 1 egress
//       __u8   proto;              // IP protocol; the prefix stops before it for "every protocol"
//       __be16 dport;              // the port; a range is several prefixes
//   };                             // 16 bytes; 96 bits after prefixlen
//
//   struct ipcache_key { __u32 prefixlen; __be32 addr; };   // -> __u32 identity
//
// A lookup uses prefixlen 96 with the packet's values; LPM answers whether an
// entry covers it. Two lookups per new flow: the peer's identity, then ID_ANY.
import { ipv4ToInt } from '../../loader/codec.js';
import { PROTO_ANY, type PolicyEntry } from './compile.js';
import type { Direction } from './types.js';

export const POLICY_KEY_SIZE = 16;
export const POLICY_KEY_BITS = 96;
/** endpoint + identity + direction: always matched in full. */
const FIXED_BITS = 72;
const DIRECTION: Readonly<Record<Direction, number>> = { ingress: 0, egress: 1 };

function encode(endpoint: string, dir: Direction, identity: number, proto: number, port: number, prefixlen: number): Buffer {
  const b = Buffer.alloc(POLICY_KEY_SIZE);
  b.writeUInt32LE(prefixlen, 0); // host order on x86_64, as the kernel reads it
  b.writeUInt32BE(ipv4ToInt(endpoint), 4);
  b.writeUInt32BE(identity >>> 0, 8);
  b.writeUInt8(DIRECTION[dir], 12);
  b.writeUInt8(proto, 13);
  b.writeUInt16BE(port, 14);
  return b;
}

/** The map key of one compiled entry of an endpoint's table. */
export function policyEntryKey(endpoint: string, dir: Direction, e: PolicyEntry): Buffer {
  const prefixlen = e.proto === PROTO_ANY ? FIXED_BITS : FIXED_BITS + 8 + e.portPrefix;
  // Bits past the prefix are zero, as the kernel's trie keeps them (it ignores them).
  const port = e.portPrefix === 0 ? 0 : (e.port >>> (16 - e.portPrefix)) << (16 - e.portPrefix);
  return encode(endpoint, dir, e.peer, e.proto === PROTO_ANY ? 0 : e.proto, port, prefixlen);
}

/** The key a program looks up for a packet (the full 96 bits). */
export function policyLookupKey(endpoint: string, dir: Direction, identity: number, proto: number, port: number): Buffer {
  return encode(endpoint, dir, identity, proto, port, POLICY_KEY_BITS);
}

/** Whether an entry's key covers a lookup key, as BPF_MAP_TYPE_LPM_TRIE decides it (first prefixlen bits equal). */
export function lpmCovers(entry: Buffer, lookup: Buffer): boolean {
  const bits = entry.readUInt32LE(0);
  const full = bits >>> 3;
  for (let i = 0; i < full; i++) if (entry[4 + i] !== lookup[4 + i]) return false;
  const rest = bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (entry[4 + full]! & mask) === (lookup[4 + full]! & mask);
}
