// Reading the drop-event ring buffer from Node: the mmap reader bvcnictl
// monitor uses (loader/ringbuf.ts: the ring's pages read in place, one poll
// copies out every ready record) against libbpf's ring_buffer__consume with a
// koffi callback per record. The ring is filled by BPF_PROG_TEST_RUN of
// bpf_pod (no config written: every run is a DROP_NO_CONFIG, so an event),
// then drained by one reader; interleaved, per-record cost in µs.
//   node --import tsx test/bench/ringbuf.bench.ts   (BENCH_RUNS=n, default 7; BENCH_EVENTS=n, default 5000)
import { join } from 'node:path';
import { BpfObject, RingBufReader, testRun } from '../../loader/index.js';
import { bpf } from '../../loader/bindings.js';
import { koffi, libbpf } from '../../loader/ffi.js';
import { dropEvent, MapName } from '../../src/dataplane/abi.js';
import { defaultObjDir, Programs } from '../../src/dataplane/layout.js';
import { DropMonitor } from '../../src/dataplane/monitor.js';
import { unpinTree } from '../../src/dataplane/pins.js';
import { uniquePrefix } from '../../src/sim/netns.js';
import { packet, PROTO } from '../bpf/packet.js';
import { interleave, median, printTable } from './stats.js';

const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 7));
// The ring holds 256 KiB / 48 B = 5461 events.
const EVENTS = Math.min(5000, Number(process.env.BENCH_EVENTS ?? 5000));
const PIN = `/sys/fs/bpf/${uniquePrefix('bvrb')}`;

const obj = BpfObject.open(join(defaultObjDir(), Programs.pod.object), { pinDir: PIN });
try {
  obj.load();
  using prog = obj.program(Programs.pod.program);
  using monitor = DropMonitor.open(PIN, { burst: 1_000_000, rate: 1_000_000 });
  const pkt = packet({ src: '10.244.1.2', dst: '10.244.2.2', proto: PROTO.UDP, sport: 1, dport: 2 });
  const fill = (): void => {
    testRun(prog, { data: pkt, repeat: EVENTS });
    if (monitor.pending < EVENTS * 48) throw new Error(`the ring holds ${monitor.pending} bytes, not ${EVENTS} events`);
  };

  using reader = RingBufReader.openPinned(join(PIN, MapName.events));
  const mmapRead = async (): Promise<number> => {
    fill();
    const t0 = process.hrtime.bigint();
    const { records } = reader.poll();
    let sum = 0;
    for (const r of records) sum += dropEvent.decode(r).reason;
    const us = Number(process.hrtime.bigint() - t0) / 1000;
    if (records.length !== EVENTS || !sum) throw new Error(`mmap reader: ${records.length} records`);
    return us / EVENTS;
  };

  const k = koffi();
  const lib = libbpf();
  k.opaque('ring_buffer');
  const cbProto = k.proto('int bvcni_ring_cb(void *ctx, void *data, size_t size)');
  const rbNew = lib.func('ring_buffer *ring_buffer__new(int fd, bvcni_ring_cb *cb, void *ctx, void *opts)');
  const rbConsume = lib.func('int ring_buffer__consume(ring_buffer *rb)');
  const rbFree = lib.func('void ring_buffer__free(ring_buffer *rb)');
  let got = 0;
  let sum = 0;
  const cb = k.register((_ctx: unknown, data: unknown, size: number) => {
    sum += dropEvent.decode(Buffer.from(k.view(data, Number(size)))).reason;
    got++;
    return 0;
  }, k.pointer(cbProto));
  const fd = bpf().bpf_obj_get(join(PIN, MapName.events)) as number;
  const rb = rbNew(fd, cb, null, null);
  if (!rb) throw new Error('ring_buffer__new failed');
  const libbpfRead = async (): Promise<number> => {
    fill();
    got = 0;
    const t0 = process.hrtime.bigint();
    const n = rbConsume(rb) as number;
    const us = Number(process.hrtime.bigint() - t0) / 1000;
    if (got !== EVENTS || n < 0 || !sum) throw new Error(`libbpf reader: ${got} records (${n})`);
    return us / EVENTS;
  };

  try {
    const res = await interleave('ring buffer readers', [
      { name: 'mmap, read in place (loader/ringbuf.ts)', run: mmapRead },
      { name: 'libbpf ring_buffer__consume + koffi callback', run: libbpfRead },
    ], RUNS);
    const base = median(res.get('mmap, read in place (loader/ringbuf.ts)')!);
    printTable(
      `reading ${EVENTS} drop events (${RUNS} interleaved runs)`,
      ['reader', 'µs per event (median)', 'ratio'],
      [...res].map(([name, xs]) => [name, median(xs).toFixed(3), `${(median(xs) / base).toFixed(2)}× mmap`]),
    );
  } finally {
    rbFree(rb);
    k.unregister(cb);
  }
} finally {
  obj.close();
  unpinTree(PIN);
}
