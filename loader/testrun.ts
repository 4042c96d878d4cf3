// BPF_PROG_TEST_RUN: run a program on a crafted packet inside the kernel and
// read back the verdict and the rewritten packet (Cilium's PKTGEN/CHECK style).
import { check } from './errors.js';
import { koffi, libbpf } from './ffi.js';
import type { BpfProgram } from './program.js';

let run: ((fd: number, opts: Record<string, unknown>) => number) | undefined;

function testRunFn(): (fd: number, opts: Record<string, unknown>) => number {
  if (run) return run;
  const k = koffi();
  k.struct('bpf_test_run_opts', {
      sz: 'size_t',
      data_in: 'void *',
      data_out: 'void *',
      data_size_in: 'uint32_t',
      data_size_out: 'uint32_t',
      ctx_in: 'void *',
      ctx_out: 'void *',
      ctx_size_in: 'uint32_t',
      ctx_size_out: 'uint32_t',
      retval: 'uint32_t',
      repeat: 'int',
      duration: 'uint32_t',
      flags: 'uint32_t',
      cpu: 'uint32_t',
    batch_size: 'uint32_t',
  });
  run = libbpf().func('int bpf_prog_test_run_opts(int fd, _Inout_ bpf_test_run_opts *opts)') as unknown as typeof run;
  return run!;
}

export interface TestRunResult {
  retval: number;
  dataOut: Buffer;
  duration: number;
}

export function testRun(
  program: BpfProgram | number,
  opts: { data: Buffer; repeat?: number; dataOutSize?: number },
): TestRunResult {
  const fd = typeof program === 'number' ? program : program.fd;
  const out = Buffer.alloc(opts.dataOutSize ?? opts.data.length + 256);
  const o: Record<string, unknown> = {
    sz: 80,
    data_in: opts.data,
    data_out: out,
    data_size_in: opts.data.length,
    data_size_out: out.length,
    ctx_in: null,
    ctx_out: null,
    ctx_size_in: 0,
    ctx_size_out: 0,
    retval: 0,
    repeat: opts.repeat ?? 1,
    duration: 0,
    flags: 0,
    cpu: 0,
    batch_size: 0,
  };
  check('test run', testRunFn()(fd, o));
  return {
    retval: o.retval as number,
    dataOut: out.subarray(0, o.data_size_out as number),
    duration: o.duration as number,
  };
}
