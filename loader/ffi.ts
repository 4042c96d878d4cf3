// The one place that finds koffi, libc and libbpf. Everything else in loader/
// asks this module for bound functions.
//
// Why koffi: ffi-napi does not install on current Node and is unmaintained;
// koffi ships prebuilt N-API binaries and TypeScript types, and costs about
// 1 µs per call (see README, "Why koffi").
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { isSea } from 'node:sea';
import { basename, dirname, join } from 'node:path';
import type * as KoffiModule from 'koffi';

export type Koffi = typeof KoffiModule;
export type KoffiLib = ReturnType<Koffi['load']>;

/**
 * What a self-contained build needs (koffi.node, libbpf.so.1 and its
 * dependencies) sits in a `*.d` directory: the one the running executable is
 * in (the bvcni plugin: `bvcni.d/bvcni-node`, run by its native front
 * `bvcni`), or one named `<executable>.d` beside it. The plugin is a single
 * executable application and runs on hosts without Node.js, so it cannot rely
 * on node_modules or on system libbpf.
 */
export function supportDir(): string | undefined {
  const own = dirname(process.execPath);
  if (own.endsWith('.d') && existsSync(join(own, 'koffi.node'))) return own;
  const dir = join(own, `${basename(process.execPath)}.d`);
  return existsSync(join(dir, 'koffi.node')) ? dir : undefined;
}

let koffiInstance: Koffi | undefined;

export function koffi(): Koffi {
  if (koffiInstance) return koffiInstance;
  const dir = supportDir();
  if (dir) {
    // Inside a SEA, require() only loads builtins: open the native module
    // directly. Its exports are the koffi API (the JS wrapper only adds
    // deprecated aliases).
    const mod = { exports: {} as Koffi };
    process.dlopen(mod, join(dir, 'koffi.node'));
    koffiInstance = mod.exports;
  } else if (isSea()) {
    // The executable's startup snapshot keeps the module path it was built at:
    // a require() from there would find the build tree's koffi, where there is one.
    throw new Error(`koffi not found: koffi.node must sit beside ${process.execPath} in its .d directory`);
  } else {
    const base = typeof __filename === 'string' ? __filename : import.meta.url;
    koffiInstance = createRequire(base)('koffi') as Koffi;
  }
  return koffiInstance;
}

let libbpfInstance: KoffiLib | undefined;
let libcInstance: KoffiLib | undefined;

export function libbpf(): KoffiLib {
  if (libbpfInstance) return libbpfInstance;
  const k = koffi();
  const dir = supportDir();
  if (dir && existsSync(join(dir, 'libbpf.so.1'))) {
    // Load dependencies first so the dynamic linker satisfies libbpf's
    // DT_NEEDED entries by soname from what is already loaded.
    for (const dep of ['libz.so.1', 'libelf.so.1']) {
      if (existsSync(join(dir, dep))) k.load(join(dir, dep));
    }
    libbpfInstance = k.load(join(dir, 'libbpf.so.1'));
  } else {
    libbpfInstance = k.load('libbpf.so.1');
  }
  return libbpfInstance;
}

export function libc(): KoffiLib {
  libcInstance ??= koffi().load('libc.so.6');
  return libcInstance;
}

/**
 * Loads koffi, or koffi and libbpf, without binding a function: a caller that
 * times its start-up (the plugin's trace) sees each cost on its own.
 */
export function preload(what: 'koffi' | 'libbpf'): void {
  if (what === 'koffi') koffi();
  else libbpf();
}

/** errno of the last foreign call on this thread. */
export function lastErrno(): number {
  return koffi().errno();
}
