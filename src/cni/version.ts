export const SUPPORTED_VERSIONS = ['0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];
export const LATEST: CniVersion = '1.1.0';

/** VERSION's answer (the native front prints the same bytes: tools/front-header.ts). */
export function versionInfo(): string {
  return JSON.stringify({ cniVersion: LATEST, supportedVersions: [...SUPPORTED_VERSIONS] });
}

export function isSupported(v: string): v is CniVersion {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** Compares dotted versions numerically; NaN parts sort first. */
export function atLeast(v: string, min: string): boolean {
  const a = v.split('.').map(Number);
  const b = min.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (!(x >= y)) return false;
    if (x > y) return true;
  }
  return true;
}
