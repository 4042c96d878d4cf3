// A fast non-cryptographic string hash for deriving names (host veth, IPAM
// index). Node's crypto would initialise OpenSSL on every plugin run for
// nothing: these names need spread, not secrecy.

/** 64 bits as 16 hex digits: two independently seeded 32-bit FNV-1a-style mixes. */
export function hash64hex(s: string): string {
  let h1 = 0x811c9dc5 ^ 0x5bd1e995;
  let h2 = 0x811c9dc5 ^ 0x27d4eb2f;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x85ebca6b);
  }
  // Final avalanche so short inputs differing in one character spread over all bits.
  h1 = Math.imul(h1 ^ (h1 >>> 16), 0x85ebca6b);
  h1 = Math.imul(h1 ^ (h1 >>> 13), 0xc2b2ae35) ^ (h1 >>> 16);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 0x7feb352d);
  h2 = Math.imul(h2 ^ (h2 >>> 15), 0x846ca68b) ^ (h2 >>> 16);
  return (h1 >>> 0).toString(16).padStart(8, '0') + (h2 >>> 0).toString(16).padStart(8, '0');
}
