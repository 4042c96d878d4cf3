// File descriptors owned by loader handles: closed exactly once, by close()
// or, as a safety net, when the handle is garbage collected.
import { closeFd } from './bindings.js';

const leaked = new FinalizationRegistry<number>((fd) => closeFd(fd));

export class OwnedFd {
  #fd: number;
  constructor(fd: number) {
    this.#fd = fd;
    leaked.register(this, fd, this);
  }
  get fd(): number {
    if (this.#fd < 0) throw new Error('file descriptor used after close');
    return this.#fd;
  }
  get closed(): boolean {
    return this.#fd < 0;
  }
  close(): void {
    if (this.#fd < 0) return;
    leaked.unregister(this);
    closeFd(this.#fd);
    this.#fd = -1;
  }
}
