import { bpf, dupFd } from './bindings.js';
import { check } from './errors.js';
import { OwnedFd } from './fd.js';
import { programInfo } from './info.js';

/** A loaded BPF program; owns its own file descriptor. */
export class BpfProgram {
  readonly #fd: OwnedFd;
  readonly name: string;
  readonly id: number;

  constructor(fd: number, name?: string) {
    this.#fd = new OwnedFd(fd);
    const info = programInfo(fd);
    this.id = info.id;
    this.name = name ?? info.name;
  }

  /** Opens a program pinned in bpffs. */
  static openPinned(path: string): BpfProgram {
    const fd = check(`open pinned program ${path}`, bpf().bpf_obj_get(path) as number);
    return new BpfProgram(fd);
  }

  /** Takes a duplicate of a descriptor someone else owns. */
  static fromBorrowedFd(fd: number, name?: string): BpfProgram {
    return new BpfProgram(dupFd(fd), name);
  }

  get fd(): number {
    return this.#fd.fd;
  }

  pin(path: string): void {
    check(`pin program ${this.name} at ${path}`, bpf().bpf_obj_pin(this.fd, path) as number);
  }

  close(): void {
    this.#fd.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
