// One BPF ELF object: open (a spec that can still be changed: pin paths),
// then load (live programs and maps), like cilium/ebpf's CollectionSpec →
// Collection split.
import { existsSync, mkdirSync, openSync, readSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { bpf } from './bindings.js';
import type { Codec } from './codec.js';
import { BpfError, Errno, VerifierError } from './errors.js';
import { koffi } from './ffi.js';
import { withLibbpfCapture } from './log.js';
import { BpfMap } from './map.js';
import { BpfProgram } from './program.js';

const { ENOENT, ENOEXEC, EINVAL } = Errno;
const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);

export interface OpenOptions {
  /**
   * Pin every map of the object under this directory by its name, reusing a
   * compatible map already pinned there. Without it no map is pinned.
   */
  pinDir?: string;
  /**
   * Where to pin (and look for) one map, instead of pinDir/<name>: a migration
   * loads a new release's objects against maps pinned under other names.
   */
  pinPath?: (name: string) => string;
}

/** A map as an opened (not yet loaded) object declares it. */
export interface MapDef {
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
}

type Ptr = unknown;

export class BpfObject {
  #ptr: Ptr | null;
  #loaded = false;
  readonly path: string;
  readonly #maps = new Map<string, Ptr>();
  readonly #programs = new Map<string, Ptr>();

  private constructor(path: string, ptr: Ptr) {
    this.path = path;
    this.#ptr = ptr;
  }

  static open(path: string, opts: OpenOptions = {}): BpfObject {
    const op = `open object ${path}`;
    if (!existsSync(path)) throw new BpfError(op, ENOENT, 'no such file');
    if (!hasElfMagic(path)) throw new BpfError(op, ENOEXEC, 'not an ELF file');
    const { result: ptr, messages } = withLibbpfCapture(() => bpf().bpf_object__open_file(path, null));
    if (!ptr) throw new BpfError(op, koffi().errno() || EINVAL, lastLine(messages));
    const obj = new BpfObject(path, ptr);
    try {
      obj.#index();
      obj.#setPins(opts.pinDir, opts.pinPath);
    } catch (e) {
      obj.close();
      throw e;
    }
    return obj;
  }

  get programNames(): string[] {
    return [...this.#programs.keys()];
  }

  get mapNames(): string[] {
    return [...this.#maps.keys()];
  }

  get loaded(): boolean {
    return this.#loaded;
  }

  /** Loads every program; a verifier rejection names the program and keeps the log. */
  load(): void {
    const ptr = this.#live();
    const { result: ret, messages } = withLibbpfCapture(() => bpf().bpf_object__load(ptr) as number);
    if (ret === undefined || ret < 0) {
      const errno = ret === undefined ? EINVAL : -ret;
      const failed = /prog '([^']+)': (?:BPF program load failed|failed to load)/.exec(messages);
      const log = between(messages, '-- BEGIN PROG LOAD LOG --', '-- END PROG LOAD LOG --');
      if (failed) throw new VerifierError(`load ${this.path}`, errno, failed[1]!, log || messages);
      throw new BpfError(`load ${this.path}`, errno, lastLine(messages));
    }
    this.#loaded = true;
  }

  /** A handle with its own descriptor: it stays valid after close(). */
  program(name: string): BpfProgram {
    const p = this.#programs.get(name);
    if (!p) throw new BpfError(`program ${name} in ${this.path}`, ENOENT, `has: ${this.programNames.join(', ')}`);
    this.#requireLoaded();
    return BpfProgram.fromBorrowedFd(bpf().bpf_program__fd(p) as number, name);
  }

  /** A typed handle with its own descriptor: it stays valid after close(). */
  map<K, V>(name: string, key: Codec<K>, value: Codec<V>): BpfMap<K, V> {
    const m = this.#maps.get(name);
    if (!m) throw new BpfError(`map ${name} in ${this.path}`, ENOENT, `has: ${this.mapNames.join(', ')}`);
    this.#requireLoaded();
    return BpfMap.fromBorrowedFd(bpf().bpf_map__fd(m) as number, key, value, name);
  }

  close(): void {
    if (this.#ptr === null) return;
    bpf().bpf_object__close(this.#ptr);
    this.#ptr = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #index(): void {
    const b = bpf();
    for (let m = b.bpf_object__next_map(this.#ptr, null); m; m = b.bpf_object__next_map(this.#ptr, m)) {
      this.#maps.set(b.bpf_map__name(m) as string, m);
    }
    for (let p = b.bpf_object__next_program(this.#ptr, null); p; p = b.bpf_object__next_program(this.#ptr, p)) {
      this.#programs.set(b.bpf_program__name(p) as string, p);
    }
  }

  /** The maps the object shares through pins (not .rodata/.bss), as declared. */
  get mapDefs(): MapDef[] {
    const b = bpf();
    return [...this.#maps]
      .filter(([, m]) => !b.bpf_map__is_internal(m))
      .map(([name, m]) => ({
        name,
        type: b.bpf_map__type(m) as number,
        keySize: b.bpf_map__key_size(m) as number,
        valueSize: b.bpf_map__value_size(m) as number,
        maxEntries: b.bpf_map__max_entries(m) as number,
        flags: b.bpf_map__map_flags(m) as number,
      }));
  }

  #setPins(pinDir: string | undefined, pinPath: ((name: string) => string) | undefined): void {
    if (pinDir) mkdirSync(pinDir, { recursive: true, mode: 0o700 });
    const b = bpf();
    for (const [name, m] of this.#maps) {
      if (b.bpf_map__is_internal(m)) continue; // .rodata/.bss: private to this object
      // Without a pin dir, clear LIBBPF_PIN_BY_NAME's default of /sys/fs/bpf/<name>.
      const path = pinPath ? pinPath(name) : pinDir ? join(pinDir, name) : null;
      const ret = b.bpf_map__set_pin_path(m, path) as number;
      if (ret < 0) throw new BpfError(`set pin path of map ${name}`, -ret);
    }
  }

  #live(): Ptr {
    if (this.#ptr === null) throw new Error(`object ${this.path} used after close`);
    return this.#ptr;
  }

  #requireLoaded(): void {
    this.#live();
    if (!this.#loaded) throw new Error(`object ${this.path} is not loaded yet`);
  }
}

function hasElfMagic(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(4);
    return readSync(fd, head, 0, 4, 0) === 4 && head.equals(ELF_MAGIC);
  } finally {
    closeSync(fd);
  }
}

function between(text: string, start: string, end: string): string {
  const i = text.indexOf(start);
  if (i < 0) return '';
  const j = text.indexOf(end, i);
  return text.slice(i + start.length, j < 0 ? undefined : j).trim();
}

function lastLine(messages: string): string | undefined {
  const lines = messages.trim().split('\n');
  return lines[lines.length - 1]?.replace(/^libbpf: /, '') || undefined;
}
