// One answer to "what is running here", shared by bvcnid, bvcni and bvcnictl:
// the release, the commit, and the dataplane ABI its programs and maps speak.
import { release, type Release } from '../common/release.js';
import { ABI_VERSION } from './abi.js';

export interface BuildInfo extends Release {
  abiVersion: number;
  /** The Node.js runtime executing this code. */
  node: string;
}

export function buildInfo(): BuildInfo {
  return { ...release(), abiVersion: ABI_VERSION, node: process.version };
}

/** e.g. "bvcnid 0.2.0-dev (commit 1a2b3c4d5e6f, dataplane ABI 1, Node.js v20.20.2)". */
export function buildLine(program: string): string {
  const b = buildInfo();
  return `${program} ${b.release} (commit ${b.commit.slice(0, 12)}${b.commit.endsWith('-dirty') ? '-dirty' : ''}, dataplane ABI ${b.abiVersion}, Node.js ${b.node})`;
}
