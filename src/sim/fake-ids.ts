// Deterministic stand-ins for the ids, digests and hashes real Kubernetes
// objects carry, so the simulator's realistic objects (kube-resources.ts) and
// the benchmarks' production-sized Nodes (test/support/kube-nodes.ts) are the
// same from run to run.

/** Deterministic hex of length n derived from seed (FNV-1a steps). */
export function fakeHex(seed: string, n: number): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < seed.length; i++) h = Math.imul(h ^ seed.charCodeAt(i), 0x01000193) >>> 0;
  let out = '';
  while (out.length < n) {
    h = Math.imul(h ^ out.length, 0x01000193) >>> 0;
    out += h.toString(16).padStart(8, '0');
  }
  return out.slice(0, n);
}

/** A UUIDv4-shaped metadata.uid derived from seed. */
export const fakeUid = (seed: string): string =>
  `${fakeHex(seed, 8)}-${fakeHex(`${seed}1`, 4)}-4${fakeHex(`${seed}2`, 3)}-8${fakeHex(`${seed}3`, 3)}-${fakeHex(`${seed}4`, 12)}`;
