// A synchronous rtnetlink socket. It stays bound to the network namespace it
// was created in, which is how the plugin configures a pod's namespace
// without switching the whole process into it for longer than one call.
import { withNetns } from '../../loader/netns.js';
import { SysError } from '../../loader/errors.js';
import { libc } from '../../loader/libc.js';
import { NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST } from './message.js';

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0x80000;
const NETLINK_ROUTE = 0;
const RECV_SIZE = 256 * 1024;

export interface NlMessage {
  type: number;
  flags: number;
  /** The message body after the 16-byte header. */
  body: Buffer;
}

export class NetlinkError extends SysError {
  constructor(op: string, errno: number) {
    super(op, errno);
    this.name = 'NetlinkError';
  }
}

export class NetlinkSocket {
  private fd: number;
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private readonly rbuf = Buffer.alloc(RECV_SIZE);
  private static readonly kernel = (() => {
    const b = Buffer.alloc(12);
    b.writeUInt16LE(AF_NETLINK, 0);
    return b;
  })();

  constructor() {
    const c = libc();
    this.fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (this.fd < 0) throw new SysError('socket(AF_NETLINK)', c.errno());
  }

  close(): void {
    if (this.fd >= 0) libc().close(this.fd);
    this.fd = -1;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** Sends one request and waits for its ACK; throws NetlinkError with the kernel's errno. */
  request(op: string, type: number, flags: number, body: Buffer): void {
    this.exchange(op, type, flags | NLM_F_ACK, body);
  }

  /** Sends a GET request (optionally a dump) and returns the replies. */
  get(op: string, type: number, body: Buffer, dump: boolean): NlMessage[] {
    return this.exchange(op, type, dump ? NLM_F_DUMP : 0, body);
  }

  /**
   * request() with the send on the thread pool: for requests the kernel is slow
   * to carry out. The caller must not use this socket until it settles.
   */
  async requestAsync(op: string, type: number, flags: number, body: Buffer): Promise<void> {
    if (this.fd < 0) throw new Error('netlink socket is closed');
    const { seq, msg } = this.message(type, flags | NLM_F_ACK, body);
    if ((await libc().sendtoAsync(this.fd, msg, msg.length, 0, NetlinkSocket.kernel, 12)) < 0) throw new Error(`${op}: sendto failed`);
    // The kernel queued the ACK before sendto returned: this recv does not wait.
    this.receive(op, seq, flags | NLM_F_ACK);
  }

  private message(type: number, flags: number, body: Buffer): { seq: number; msg: Buffer } {
    const seq = ++this.seq;
    const msg = Buffer.alloc(16 + body.length);
    msg.writeUInt32LE(msg.length, 0);
    msg.writeUInt16LE(type, 4);
    msg.writeUInt16LE(flags | NLM_F_REQUEST, 6);
    msg.writeUInt32LE(seq, 8);
    body.copy(msg, 16);
    return { seq, msg };
  }

  private exchange(op: string, type: number, flags: number, body: Buffer): NlMessage[] {
    if (this.fd < 0) throw new Error('netlink socket is closed');
    const c = libc();
    const { seq, msg } = this.message(type, flags, body);
    if (c.sendto(this.fd, msg, msg.length, 0, NetlinkSocket.kernel, 12) < 0) throw new SysError(`${op}: sendto`, c.errno());
    return this.receive(op, seq, flags);
  }

  private receive(op: string, seq: number, flags: number): NlMessage[] {
    const c = libc();
    const out: NlMessage[] = [];
    const multi = (flags & NLM_F_DUMP) === NLM_F_DUMP;
    for (;;) {
      const n = c.recv(this.fd, this.rbuf, RECV_SIZE, 0);
      if (n < 0) {
        const e = c.errno();
        if (e === 4) continue;
        throw new SysError(`${op}: recv`, e);
      }
      let off = 0;
      while (off + 16 <= n) {
        const len = this.rbuf.readUInt32LE(off);
        if (len < 16 || off + len > n) break;
        const mtype = this.rbuf.readUInt16LE(off + 4);
        const mflags = this.rbuf.readUInt16LE(off + 6);
        const mseq = this.rbuf.readUInt32LE(off + 8);
        const next = off + ((len + 3) & ~3);
        if (mseq !== seq) {
          off = next;
          continue;
        }
        if (mtype === NLMSG_ERROR) {
          const err = -this.rbuf.readInt32LE(off + 16);
          if (err !== 0) throw new NetlinkError(op, err);
          return out;
        }
        if (mtype === NLMSG_DONE) return out;
        out.push({ type: mtype, flags: mflags, body: Buffer.from(this.rbuf.subarray(off + 16, off + len)) });
        off = next;
      }
      // A non-dump GET answers with exactly one message and no ACK unless asked.
      if (!multi && out.length > 0 && (flags & NLM_F_ACK) === 0) return out;
    }
  }
}

/** A socket bound to another network namespace (path such as /run/netns/X or /proc/PID/ns/net). */
export function socketIn(nsPath: string): NetlinkSocket {
  return withNetns(nsPath, () => new NetlinkSocket());
}
