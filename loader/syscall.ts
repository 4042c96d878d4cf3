// The bpf(2) map-element commands called directly, for the hot path.
//
// Why not libbpf's bpf_map_*_elem wrappers: koffi marshals a Buffer argument
// on every call, which costs about as much as the syscall itself. Here each
// map owns one block of native memory holding its key, value and prebuilt
// bpf_attr for every command, so a call passes only integers.
import { koffi, libc } from './ffi.js';

const SYS_BPF: Partial<Record<string, number>> = { x64: 321, arm64: 280, riscv64: 280, loong64: 280 };

export const Cmd = { lookup: 1, update: 2, delete: 3, nextKey: 4 } as const;
type CmdName = keyof typeof Cmd;
const ATTR_SIZE = 32; // map_fd, key, value|next_key, flags (union bpf_attr, elem commands)
const CMDS: CmdName[] = ['lookup', 'update', 'delete', 'nextKey']; // index = command - 1

let rawSyscall: ((nr: number, cmd: number, attr: number, size: number) => number) | undefined;
function syscallFn() {
  rawSyscall ??= libc().func('int syscall(long nr, long cmd, long attr, long size)') as unknown as typeof rawSyscall;
  return rawSyscall!;
}

const freed = new FinalizationRegistry<unknown>((mem) => koffi().free(mem));

/** Native scratch memory for one map: key, next key, value and one attr per command. */
export class ElemScratch {
  readonly key: Buffer;
  readonly nextKey: Buffer;
  readonly value: Buffer;
  readonly #attr: Buffer;
  readonly #attrAddr: number;
  readonly #nr: number;
  readonly #syscall = syscallFn();
  #mem: unknown;

  constructor(fd: number, keySize: number, valueSize: number) {
    const nr = SYS_BPF[process.arch];
    if (nr === undefined) throw new Error(`bpf(2) syscall number unknown for ${process.arch}`);
    this.#nr = nr;
    const k = koffi();
    const attrBytes = ATTR_SIZE * CMDS.length;
    const total = attrBytes + keySize * 2 + valueSize;
    this.#mem = k.alloc('uint8_t', total);
    freed.register(this, this.#mem, this);
    const base = Number(k.address(this.#mem));
    const view = Buffer.from(k.view(this.#mem, total));
    view.fill(0);
    this.#attr = view.subarray(0, attrBytes);
    this.#attrAddr = base;
    const keyAddr = base + attrBytes;
    const nextAddr = keyAddr + keySize;
    const valueAddr = nextAddr + keySize;
    this.key = view.subarray(attrBytes, attrBytes + keySize);
    this.nextKey = view.subarray(attrBytes + keySize, attrBytes + 2 * keySize);
    this.value = view.subarray(attrBytes + 2 * keySize, total);
    CMDS.forEach((cmd, i) => {
      const at = i * ATTR_SIZE;
      this.#attr.writeUInt32LE(fd, at);
      writeAddr(this.#attr, at + 8, keyAddr);
      writeAddr(this.#attr, at + 16, cmd === 'nextKey' ? nextAddr : cmd === 'delete' ? 0 : valueAddr);
    });
  }

  /** Runs one command; returns 0 or -errno. */
  call(cmd: CmdName, flags = 0): number {
    const i = Cmd[cmd] - 1; // attrs are laid out in command order
    if (flags) this.#attr.writeUInt32LE(flags, i * ATTR_SIZE + 24);
    const ret = this.#syscall(this.#nr, i + 1, this.#attrAddr + i * ATTR_SIZE, ATTR_SIZE);
    if (flags) this.#attr.writeUInt32LE(0, i * ATTR_SIZE + 24);
    return ret < 0 ? -koffi().errno() : ret;
  }

  /** get_next_key from the start of the map (a NULL key). */
  firstKey(): number {
    const at = CMDS.indexOf('nextKey') * ATTR_SIZE + 8;
    const saved = this.#attr.readBigUInt64LE(at);
    this.#attr.writeBigUInt64LE(0n, at);
    try {
      return this.call('nextKey');
    } finally {
      this.#attr.writeBigUInt64LE(saved, at);
    }
  }

  free(): void {
    if (this.#mem === undefined) return;
    freed.unregister(this);
    koffi().free(this.#mem);
    this.#mem = undefined;
  }
}

function writeAddr(buf: Buffer, at: number, addr: number): void {
  buf.writeUInt32LE(addr % 0x1_0000_0000, at);
  buf.writeUInt32LE(Math.floor(addr / 0x1_0000_0000), at + 4);
}
