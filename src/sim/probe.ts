// Client-side connectivity probes run inside a namespace. Each returns what it
// observed (or throws with the tool's output), so a test can assert on the
// address the far side saw, not merely on "it did not fail".
import { run, type RunResult } from '../common/exec.js';
import { parsePeerLine, RESPONDER_PORT, type PeerInfo } from './responder.js';

export interface PingOptions {
  count?: number;
  /** ICMP payload bytes (ping -s); with `df` this proves the path MTU. */
  size?: number;
  df?: boolean;
  timeoutS?: number;
  /** Source address (ping -I). */
  source?: string;
}

/** Resolves with ping's result; `ok` when every echo came back. */
export async function ping(netns: string, dst: string, o: PingOptions = {}): Promise<RunResult & { ok: boolean }> {
  const count = o.count ?? 2;
  const argv = ['ping', '-n', '-q', '-c', String(count), '-i', '0.2', '-W', String(o.timeoutS ?? 2)];
  if (o.size !== undefined) argv.push('-s', String(o.size));
  if (o.df) argv.push('-M', 'do');
  if (o.source) argv.push('-I', o.source);
  argv.push(dst);
  const r = await run(argv, { netns, allowFail: true, timeoutMs: (count * 0.2 + (o.timeoutS ?? 2) + 5) * 1000 });
  const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  return { ...r, ok: r.code === 0 && !!m && m[1] === m[2] };
}

/** TCP to a responder: returns what the server saw and checks the echo came back intact. */
export async function tcpWhoami(netns: string, dst: string, port = RESPONDER_PORT, timeoutS = 3): Promise<PeerInfo> {
  const token = `tok${Math.random().toString(36).slice(2)}`;
  const r = await run(['socat', '-t', String(timeoutS), '-T', String(timeoutS), '-', `TCP:${dst}:${port},connect-timeout=${timeoutS}`], {
    netns,
    input: `${token}\n`,
    allowFail: true,
    timeoutMs: (timeoutS * 3 + 5) * 1000,
  });
  if (r.code !== 0) throw new Error(`TCP ${dst}:${port} from ${netns} failed: ${(r.stderr || r.stdout).trim()}`);
  const lines = r.stdout.split('\n');
  if (lines[1] !== token) throw new Error(`TCP ${dst}:${port} from ${netns}: echo missing (${JSON.stringify(r.stdout)})`);
  return parsePeerLine(lines[0] ?? '');
}

/** One UDP datagram to a responder and its reply. */
export async function udpWhoami(netns: string, dst: string, port = RESPONDER_PORT, timeoutS = 0.5): Promise<PeerInfo> {
  const token = `tok${Math.random().toString(36).slice(2)}`;
  // A lost datagram is retried: the first packet of a flow may wait on ARP.
  let last = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const r = await run(['socat', '-t', String(timeoutS), '-T', String(timeoutS), '-', `UDP:${dst}:${port}`], {
      netns,
      input: token,
      allowFail: true,
      timeoutMs: (timeoutS * 3 + 5) * 1000,
    });
    last = (r.stderr || r.stdout).trim();
    if (r.code === 0 && r.stdout.includes(token)) return parsePeerLine(r.stdout);
  }
  throw new Error(`UDP ${dst}:${port} from ${netns}: no reply (${last})`);
}

/** TCP counters of a namespace from /proc/net/snmp (per namespace: read from inside it). */
export async function tcpCounters(netns: string): Promise<Record<string, number>> {
  const r = await run(['cat', '/proc/net/snmp'], { netns });
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('Tcp:'));
  if (lines.length < 2) throw new Error(`no Tcp lines in /proc/net/snmp of ${netns}`);
  const names = lines[0]!.split(/\s+/).slice(1);
  const values = lines[1]!.split(/\s+/).slice(1).map(Number);
  return Object.fromEntries(names.map((n, i) => [n, values[i] ?? NaN]));
}

export interface ProbeTarget {
  ip: string;
  port?: number;
  proto: 'tcp' | 'udp';
}

export type ProbeOutcome = ({ ok: true } & PeerInfo) | { ok: false; error: string };

// One Node process per source namespace probes all targets at once: a matrix
// of N×N pairs costs N process starts, not N² (and no UDP linger per probe).
const MANY_SOURCE = `
const net = require('node:net'), dgram = require('node:dgram');
const targets = JSON.parse(process.argv[1]);
const timeout = Number(process.argv[2]);
function tcp(t) {
  return new Promise((res) => {
    const tok = 'tok' + Math.random().toString(36).slice(2);
    let buf = '';
    const s = net.connect({ host: t.ip, port: t.port });
    const timer = setTimeout(() => { s.destroy(); res({ error: 'timeout after ' + buf.length + ' bytes' }); }, timeout);
    s.on('connect', () => s.write(tok + '\\n'));
    s.on('data', (d) => { buf += d; if (buf.includes(tok)) { clearTimeout(timer); s.destroy(); res({ line: buf.split('\\n')[0] }); } });
    s.on('error', (e) => { clearTimeout(timer); res({ error: e.code || e.message }); });
  });
}
function udp(t) {
  return new Promise((res) => {
    const tok = 'tok' + Math.random().toString(36).slice(2);
    // Connected, so an ICMP port unreachable surfaces as ECONNREFUSED.
    const s = dgram.createSocket('udp4');
    let tries = 0, iv, timer, over = false;
    const finish = (r) => { if (over) return; over = true; clearInterval(iv); clearTimeout(timer); try { s.close(); } catch {} res(r); };
    const send = () => { tries++; s.send(tok, (e) => e && finish({ error: e.code || e.message })); };
    s.on('message', (m) => { const x = m.toString(); if (x.includes(tok)) finish({ line: x }); });
    s.on('error', (e) => finish({ error: e.code || e.message }));
    timer = setTimeout(() => finish({ error: 'no reply' }), timeout);
    s.connect(t.port, t.ip, () => {
      iv = setInterval(() => { if (tries < 4) send(); }, Math.max(50, timeout / 5));
      send();
    });
  });
}
Promise.all(targets.map((t) => (t.proto === 'tcp' ? tcp(t) : udp(t)))).then((r) => { process.stdout.write(JSON.stringify(r)); });
`;

/** Probes every target from one namespace, concurrently; one outcome per target, in order. */
export async function probeMany(netns: string, targets: ProbeTarget[], timeoutMs = 3000): Promise<ProbeOutcome[]> {
  if (targets.length === 0) return [];
  const list = targets.map((t) => ({ ip: t.ip, port: t.port ?? RESPONDER_PORT, proto: t.proto }));
  const r = await run([process.execPath, '-e', MANY_SOURCE, JSON.stringify(list), String(timeoutMs)], { netns, timeoutMs: timeoutMs + 15_000 });
  const raw = JSON.parse(r.stdout) as ({ line: string } | { error: string })[];
  return raw.map((x) => ('line' in x ? { ok: true as const, ...parsePeerLine(x.line) } : { ok: false as const, error: x.error }));
}
