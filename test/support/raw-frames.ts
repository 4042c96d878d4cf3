// Raw Ethernet frames in and out of a namespace's interface, as a hostile pod
// would handle them: python3 AF_PACKET sockets (a pod needs nothing more).
// Frames are built with test/bpf/packet.ts; captures come back whole, so a
// test filters them with its own predicate and can print what it saw.
import type { ChildProcess } from 'node:child_process';
import { bufferToMac, intToIpv4 } from '../../loader/codec.js';
import { run, startProcess } from '../../src/common/exec.js';

const PY = String.raw`
import errno, json, select, socket, sys, time
mode, ifname = sys.argv[1], sys.argv[2]
if mode == 'send':
    frames = [bytes.fromhex(h) for h in json.loads(sys.argv[3])]
    rounds, gap = int(sys.argv[4]), float(sys.argv[5])
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((ifname, 0))
    refused = 0
    for r in range(rounds):
        if r:
            time.sleep(gap)
        for f in frames:
            try:
                s.send(f)
            except OSError as e:
                # On a netkit pair the program runs in the sender's own transmit: its drop comes back as ENOBUFS.
                if e.errno != errno.ENOBUFS:
                    raise
                refused += 1
    print(json.dumps({'sent': rounds * len(frames), 'refused': refused}))
else:
    # Every frame the interface receives (not what it sends) until stdin closes.
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind((ifname, 0))
    print('ready', flush=True)
    out = []
    while True:
        r, _, _ = select.select([s, sys.stdin], [], [])
        if s in r:
            data, addr = s.recvfrom(65535)
            if addr[2] != socket.PACKET_OUTGOING:
                out.append(data[:128].hex())
        if sys.stdin in r and not sys.stdin.readline():
            break
    while True:
        r, _, _ = select.select([s], [], [], 0)
        if not r:
            break
        data, addr = s.recvfrom(65535)
        if addr[2] != socket.PACKET_OUTGOING:
            out.append(data[:128].hex())
    print(json.dumps(out), flush=True)
`;

export interface SendOptions {
  ifname?: string;
  /** The whole list is sent this many times (default 1)… */
  rounds?: number;
  /** …this far apart (default 0). */
  gapMs?: number;
}

/** Sends raw frames out of an interface (default eth0) of a namespace. */
export async function sendFrames(netns: string, frames: Buffer[], o: SendOptions = {}): Promise<number> {
  const rounds = o.rounds ?? 1;
  const gap = (o.gapMs ?? 0) / 1000;
  const r = await run(['python3', '-c', PY, 'send', o.ifname ?? 'eth0', JSON.stringify(frames.map((f) => f.toString('hex'))), String(rounds), String(gap)], {
    netns,
    timeoutMs: 30_000 + rounds * (o.gapMs ?? 0),
  });
  return (JSON.parse(r.stdout) as { sent: number }).sent;
}

export interface Capture {
  /** Stops capturing and returns every frame received meanwhile (first 128 bytes each). */
  stop(): Promise<Frame[]>;
}

/** Starts capturing on an interface (default eth0); resolves once the socket is bound. */
export async function startCapture(netns: string, ifname = 'eth0', track?: (c: ChildProcess) => void): Promise<Capture> {
  const child = startProcess(['python3', '-u', '-c', PY, 'capture', ifname], { netns, stdio: ['pipe', 'pipe', 'pipe'] });
  track?.(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? 1)));
  await new Promise<void>((resolve, reject) => {
    const check = (): void => {
      if (stdout.startsWith('ready\n')) resolve();
    };
    child.stdout!.on('data', check);
    void exited.then((code) => reject(new Error(`capture in ${netns} exited ${code} before it was ready: ${stderr.trim()}`)));
  });
  return {
    async stop(): Promise<Frame[]> {
      child.stdin!.end();
      const code = await exited;
      if (code !== 0) throw new Error(`capture in ${netns} exited ${code}: ${stderr.trim()}`);
      const list = JSON.parse(stdout.slice('ready\n'.length)) as string[];
      return list.map((h) => parseFrame(Buffer.from(h, 'hex')));
    },
  };
}

export interface Frame {
  srcMac: string;
  dstMac: string;
  /** The EtherType after any in-band VLAN tags. */
  type: number;
  /** An in-band 802.1Q/802.1ad tag was present. */
  tagged: boolean;
  ipv4?: { src: string; dst: string; proto: number };
  arp?: { op: number; sha: string; sip: string; tip: string };
  raw: Buffer;
}

export function parseFrame(raw: Buffer): Frame {
  let off = 12;
  let type = raw.readUInt16BE(off);
  let tagged = false;
  while ((type === 0x8100 || type === 0x88a8) && raw.length >= off + 6) {
    tagged = true;
    off += 4;
    type = raw.readUInt16BE(off);
  }
  const l3 = off + 2;
  const f: Frame = { srcMac: bufferToMac(raw.subarray(6, 12)), dstMac: bufferToMac(raw.subarray(0, 6)), type, tagged, raw };
  if (type === 0x0800 && raw.length >= l3 + 20) {
    f.ipv4 = { src: intToIpv4(raw.readUInt32BE(l3 + 12)), dst: intToIpv4(raw.readUInt32BE(l3 + 16)), proto: raw[l3 + 9]! };
  } else if (type === 0x0806 && raw.length >= l3 + 28) {
    f.arp = {
      op: raw.readUInt16BE(l3 + 6),
      sha: bufferToMac(raw.subarray(l3 + 8, l3 + 14)),
      sip: intToIpv4(raw.readUInt32BE(l3 + 14)),
      tip: intToIpv4(raw.readUInt32BE(l3 + 24)),
    };
  }
  return f;
}

/** One line per frame, for assertion messages. */
export function describeFrames(frames: Frame[]): string {
  return frames
    .slice(0, 10)
    .map((f) => {
      const what = f.ipv4 ? `IPv4 ${f.ipv4.src} > ${f.ipv4.dst} proto ${f.ipv4.proto}` : f.arp ? `ARP op ${f.arp.op} ${f.arp.sip} is-at ${f.arp.sha} (for ${f.arp.tip})` : `type 0x${f.type.toString(16)}`;
      return `${f.srcMac} > ${f.dstMac}${f.tagged ? ' tagged' : ''}: ${what}`;
    })
    .join('\n');
}
