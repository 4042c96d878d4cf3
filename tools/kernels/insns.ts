// Prints how many instructions the running kernel's verifier processed for each
// tc program (bpf_prog_info.verified_insns; Debian 12's bpftool does not print it), for the objects in
// each directory given (default: the program set bvcnid loads here). `make
// test-kernels WHAT=insns` runs it in each VM; a directory of another build
// (an older commit's objects, say) gives the before/after of a change. The
// verifier's budget is 1,000,000 per program.
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BpfObject, programInfo } from '../../loader/index.js';
import { currentProgramDir } from '../../src/dataplane/features.js';

const dirs = process.argv.slice(2);
if (!dirs.length) dirs.push(await currentProgramDir());
const pinDir = `/sys/fs/bpf/bvinsns-${process.pid}`;
let failed = 0;
try {
  for (const dir of dirs) {
    console.log(`== ${dir}`);
    for (const file of ['bpf_pod.o', 'bpf_overlay.o', 'bpf_host.o', 'bpf_to_pod.o']) {
      const path = join(dir, file);
      if (!existsSync(path)) continue;
      try {
        using obj = BpfObject.open(path, { pinDir });
        obj.load();
        for (const name of obj.programNames) {
          using prog = obj.program(name);
          console.log(`  ${file.padEnd(14)} ${name.padEnd(22)} ${String(programInfo(prog.fd).verifiedInsns).padStart(8)}`);
        }
      } catch (e) {
        failed++;
        console.log(`  ${file.padEnd(14)} refused: ${(e as Error).message.split('\n')[0]}`);
      }
    }
  }
} finally {
  rmSync(pinDir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
