// The dataplane ABI version (BVCNI_ABI_VERSION) against the pinned maps'
// layout as clang compiled it. Each version's layout is recorded in
// test/fixtures/abi/layouts.json; a layout that differs from its version's
// record fails here, so no change to a map can ship without a new number
// (which is what tells a running node's bvcnid that its pinned maps need
// migrating). To change a map: bump BVCNI_ABI_VERSION in bpf/lib/abi.h and
// ABI_VERSION in src/dataplane/abi.ts, then record the new layout with
// BVCNI_RECORD_ABI=1 (it refuses to overwrite an existing version's record).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ABI_VERSION } from '../../src/dataplane/abi.js';
import { btfType, loadBtf, resolveType, sizeOf, type Btf } from '../support/btf.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const OBJECTS = ['bpf_pod.o', 'bpf_overlay.o', 'bpf_host.o', 'bpf_to_pod.o'].map((f) => `${ROOT}dist/bpf/${f}`);
const RECORD = `${ROOT}test/fixtures/abi/layouts.json`;

interface TypeLayout {
  type: string;
  size: number;
  members?: { name: string; offset: number; size: number; type: string }[];
}
interface MapLayout {
  mapType: number;
  maxEntries: number;
  flags: number;
  key?: TypeLayout;
  value?: TypeLayout;
  /** A ring buffer's records. */
  record?: TypeLayout;
}
type Layouts = Record<string, MapLayout>;

function typeName(btf: Btf, id: number): string {
  const t = btfType(btf, id);
  if (t.kind === 'ARRAY') return `${typeName(btf, t.type_id!)}[${t.nr_elems}]`;
  if (t.kind === 'VOLATILE' || t.kind === 'CONST') return typeName(btf, t.type_id!);
  return `${t.kind === 'STRUCT' ? 'struct ' : ''}${t.name ?? '(anon)'}`;
}

function typeLayout(btf: Btf, id: number): TypeLayout {
  const t = resolveType(btf, id);
  const out: TypeLayout = { type: typeName(btf, id), size: sizeOf(btf, id) };
  if (t.kind === 'STRUCT')
    out.members = t.members!.map((m) => ({ name: m.name, offset: m.bits_offset / 8, size: sizeOf(btf, m.type_id), type: typeName(btf, m.type_id) }));
  return out;
}

const RINGBUF = 27;
/** The struct each ring buffer's records are (bpf/lib/abi.h). */
const RINGBUF_RECORDS: Record<string, string> = { bvcni_events: 'drop_event' };

/** Every bvcni_* map an object declares: libbpf's __uint/__type encode each attribute in a member's type. */
export function mapLayouts(btf: Btf): Layouts {
  const out: Layouts = {};
  for (const v of btf.values()) {
    if (v.kind !== 'VAR' || !v.name?.startsWith('bvcni_')) continue;
    const def = resolveType(btf, v.type_id!);
    const member = (n: string): number | undefined => def.members!.find((m) => m.name === n)?.type_id;
    // __uint(name, N) is `int (*name)[N]`; __type(name, T) is `T *name`.
    const uint = (n: string): number => {
      const id = member(n);
      return id === undefined ? 0 : btfType(btf, btfType(btf, id).type_id!).nr_elems!;
    };
    const pointee = (n: string): number => btfType(btf, member(n)!).type_id!;
    const mapType = uint('type');
    if (mapType === RINGBUF) {
      // No key or value: what the layout holds is its records' struct.
      const rec = RINGBUF_RECORDS[v.name];
      assert.ok(rec, `ring buffer ${v.name}: name its record struct in RINGBUF_RECORDS`);
      const id = [...btf.entries()].find(([, t]) => t.kind === 'STRUCT' && t.name === rec)?.[0];
      assert.ok(id !== undefined, `struct ${rec} (${v.name}'s records) is in no BTF`);
      out[v.name] = { mapType, maxEntries: uint('max_entries'), flags: uint('map_flags'), record: typeLayout(btf, id) };
      continue;
    }
    out[v.name] = {
      mapType,
      maxEntries: uint('max_entries'),
      flags: uint('map_flags'),
      key: typeLayout(btf, pointee('key')),
      value: typeLayout(btf, pointee('value')),
    };
  }
  return out;
}

function compiledLayouts(objects: string[] = OBJECTS): Layouts {
  for (const obj of objects) assert.ok(existsSync(obj), `${obj} missing: run make build`);
  const [first, ...rest] = objects.map((o) => mapLayouts(loadBtf(o)));
  for (const other of rest) assert.deepEqual(other, first, 'every object declares the shared maps alike');
  return first!;
}

describe('dataplane ABI version', () => {
  test('abi.h and abi.ts agree on the number', () => {
    const m = /^#define\s+BVCNI_ABI_VERSION\s+(\d+)/m.exec(readFileSync(`${ROOT}bpf/lib/abi.h`, 'utf8'));
    assert.ok(m, 'BVCNI_ABI_VERSION in abi.h');
    assert.equal(Number(m[1]), ABI_VERSION);
  });

  test("the compiled maps' layout is the one recorded for this ABI version", () => {
    const compiled = compiledLayouts();
    assert.ok(Object.keys(compiled).length >= 5, 'the maps were found in the BTF');
    const record = JSON.parse(readFileSync(RECORD, 'utf8')) as Record<string, Layouts>;
    if (process.env.BVCNI_RECORD_ABI === '1' && !record[ABI_VERSION]) {
      record[ABI_VERSION] = compiled;
      writeFileSync(RECORD, `${JSON.stringify(record, null, 1)}\n`);
    }
    assert.ok(record[ABI_VERSION], `no layout recorded for ABI ${ABI_VERSION}: record it (see this file's header)`);
    assert.deepEqual(
      compiled,
      record[ABI_VERSION],
      `a pinned map's layout changed but BVCNI_ABI_VERSION is still ${ABI_VERSION}: bump it and record the new layout`,
    );
  });

  test("the ABI 1 build (dist/bpf/abi1, for --prepare-downgrade) has exactly v0.1.0's recorded layout", () => {
    const record = JSON.parse(readFileSync(RECORD, 'utf8')) as Record<string, Layouts>;
    for (const dir of ['abi1', 'abi1/noct']) {
      const objects = ['bpf_pod.o', 'bpf_overlay.o', 'bpf_host.o'].map((f) => `${ROOT}dist/bpf/${dir}/${f}`);
      // Exactly v0.1.0's maps: one it does not know (ABI 2's hostPort maps) would be
      // created and pinned by these programs and then left behind by v0.1.0.
      const compiled = compiledLayouts(objects);
      assert.deepEqual(compiled, record['1'], `dist/bpf/${dir}: v0.1.0 could not adopt its maps, or would find maps it does not know`);
      assert.ok(!existsSync(`${ROOT}dist/bpf/${dir}/bpf_sock.o`), `dist/bpf/${dir}/bpf_sock.o: the hostPort socket program is ABI 2's`);
    }
  });

  test('each recorded version differs from the others (a bump without a change proves nothing)', () => {
    const record = JSON.parse(readFileSync(RECORD, 'utf8')) as Record<string, Layouts>;
    const seen = Object.entries(record).map(([v, l]) => [v, JSON.stringify(l)] as const);
    for (const [i, [v, l]] of seen.entries()) for (const [w, m] of seen.slice(i + 1)) assert.notEqual(l, m, `ABI ${v} and ${w} record the same layout`);
  });
});
