// A tiny TCP/UDP responder that tells each client which address it saw.
// Tests use it to prove who masquerades and who keeps source addresses: the
// first line of every TCP reply and the head of every UDP reply is
// `peer=<address>:<port> local=<address>`. After that line TCP echoes what it
// receives, so the same server serves ping-pong latency runs.
//
// It runs as `node -e` (plain CommonJS, no tsx) because it is started in many
// namespaces and Node's startup is the only cost worth paying.
import type { ChildProcess } from 'node:child_process';
import { startProcess } from '../common/exec.js';

/** The responder's program (`node -e RESPONDER_SOURCE PORT`), for runtimes that start it in a container. */
export const RESPONDER_SOURCE = `
const net = require('node:net'), dgram = require('node:dgram');
const port = Number(process.argv[1]);
let pending = 2;
const up = () => { if (--pending === 0) process.stdout.write('ready\\n'); };
const tcp = net.createServer((s) => {
  s.setNoDelay(true);
  s.on('error', () => {});
  s.write('peer=' + s.remoteAddress + ':' + s.remotePort + ' local=' + s.localAddress + '\\n');
  s.pipe(s);
});
tcp.listen(port, '0.0.0.0', up);
const udp = dgram.createSocket('udp4');
udp.on('message', (m, r) => {
  udp.send('peer=' + r.address + ':' + r.port + ' ' + m.toString(), r.port, r.address);
});
udp.bind(port, '0.0.0.0', up);
process.on('SIGTERM', () => process.exit(0));
`;

export const RESPONDER_PORT = 7000;

/** Starts the responder in a namespace and resolves once both sockets listen. */
export async function startResponder(netns: string, port = RESPONDER_PORT, opts: { cpu?: number } = {}): Promise<ChildProcess> {
  const argv = [process.execPath, '-e', RESPONDER_SOURCE, String(port)];
  // Pinning lets latency runs put both ends on one CPU.
  const child = startProcess(opts.cpu === undefined ? argv : ['taskset', '-c', String(opts.cpu), ...argv], { netns });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => fail(new Error(`responder in ${netns} did not start in 10 s: ${err}`)), 10_000);
    const fail = (e: Error): void => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(e);
    };
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready\n')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => fail(new Error(`responder in ${netns} exited ${code}: ${err.trim()}`)));
  });
  child.removeAllListeners('exit');
  return child;
}

export interface PeerInfo {
  /** The client address as the server saw it. */
  peer: string;
  peerPort: number;
  /** The server address the client reached. */
  local?: string;
}

export function parsePeerLine(line: string): PeerInfo {
  const m = /peer=([\d.]+):(\d+)(?: local=([\d.]+))?/.exec(line);
  if (!m) throw new Error(`not a responder reply: ${JSON.stringify(line.slice(0, 200))}`);
  return { peer: m[1]!, peerPort: Number(m[2]), local: m[3] };
}
