// The libc calls Node does not offer, bound once for every caller: netlink
// sockets (src/netlink), flock (the IPAM lock), close (the loader's file
// descriptors), _exit. koffi and libc come from ./ffi.ts, the one place that
// finds them (also inside the self-contained plugin).
import { koffi, libc as libcLib } from './ffi.js';

type Fn = (...args: unknown[]) => number;

export interface Libc {
  socket(domain: number, type: number, protocol: number): number;
  sendto(fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, addrlen: number): number;
  recv(fd: number, buf: Buffer, len: number, flags: number): number;
  /**
   * sendto on libuv's thread pool. The kernel handles a netlink request inside
   * sendto, so a slow one (a link delete waits for RCU) leaves the event loop free.
   * Resolves to the return value; errno is the pool thread's and is not reported.
   */
  sendtoAsync(fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, addrlen: number): Promise<number>;
  close(fd: number): number;
  flock(fd: number, op: number): number;
  /** Leaves at once: no atexit handlers, no V8 or addon teardown. */
  exit(code: number): never;
  errno(): number;
}

let lib: Libc | undefined;

/** libc bound already (so koffi is loaded), without binding it. */
export function libcIfLoaded(): Libc | undefined {
  return lib;
}

export function libc(): Libc {
  if (lib) return lib;
  const k = koffi();
  const so = libcLib();
  const f = (decl: string): Fn => so.func(decl) as unknown as Fn;
  const socket = f('int socket(int, int, int)');
  const sendto = f('long sendto(int, const void *buf, size_t, int, const void *addr, uint32_t)');
  const recv = f('long recv(int, void *buf, size_t, int)');
  const close = f('int close(int)');
  const flock = f('int flock(int, int)');
  const exit = f('void _exit(int)');
  lib = {
    socket: (d, t, p) => socket(d, t, p),
    sendto: (fd, b, l, fl, a, al) => sendto(fd, b, l, fl, a, al),
    recv: (fd, b, l, fl) => recv(fd, b, l, fl),
    sendtoAsync: (fd, b, l, fl, a, al) =>
      new Promise((resolve, reject) => {
        (sendto as unknown as { async: (...args: unknown[]) => void }).async(fd, b, l, fl, a, al, (err: unknown, n: number) => (err ? reject(err as Error) : resolve(n)));
      }),
    close: (fd) => close(fd),
    flock: (fd, op) => flock(fd, op),
    exit: (code) => {
      exit(code);
      throw new Error('_exit returned');
    },
    errno: () => k.errno(),
  };
  return lib;
}
