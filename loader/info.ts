// bpf_obj_get_info_by_fd for maps and programs (struct bpf_map_info and
// struct bpf_prog_info from <linux/bpf.h>; only the leading fields we read).
import { bpf } from './bindings.js';
import { check } from './errors.js';

export interface MapInfo {
  type: number;
  id: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  name: string;
}

export interface ProgramInfo {
  type: number;
  id: number;
  tag: string;
  name: string;
  /** Instructions the verifier processed to load it (Linux 5.16; 0 before). */
  verifiedInsns: number;
}

function rawInfo(fd: number, op: string): Buffer {
  const buf = Buffer.alloc(256);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(buf.length);
  check(op, bpf().bpf_obj_get_info_by_fd(fd, buf, len) as number);
  return buf;
}

function cString(buf: Buffer, at: number, max: number): string {
  const s = buf.subarray(at, at + max);
  const nul = s.indexOf(0);
  return s.toString('utf8', 0, nul < 0 ? max : nul);
}

export function mapInfo(fd: number): MapInfo {
  const b = rawInfo(fd, 'map info');
  return {
    type: b.readUInt32LE(0),
    id: b.readUInt32LE(4),
    keySize: b.readUInt32LE(8),
    valueSize: b.readUInt32LE(12),
    maxEntries: b.readUInt32LE(16),
    flags: b.readUInt32LE(20),
    name: cString(b, 24, 16),
  };
}

export function programInfo(fd: number): ProgramInfo {
  const b = rawInfo(fd, 'program info');
  return {
    type: b.readUInt32LE(0),
    id: b.readUInt32LE(4),
    tag: b.subarray(8, 16).toString('hex'),
    name: cString(b, 64, 16),
    verifiedInsns: b.readUInt32LE(216),
  };
}

export const MapType = {
  hash: 1,
  array: 2,
  percpuHash: 5,
  percpuArray: 6,
  lruHash: 9,
  lruPercpuHash: 10,
  lpmTrie: 11,
  ringbuf: 27,
} as const;

const PER_CPU = new Set<number>([MapType.percpuHash, MapType.percpuArray, MapType.lruPercpuHash, 21]);
export function isPerCpu(type: number): boolean {
  return PER_CPU.has(type);
}
