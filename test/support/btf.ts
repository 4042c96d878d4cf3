// Reading an object's BTF (through bpftool's JSON dump) for the tests that
// hold the TypeScript ABI and the recorded map layouts against what clang compiled.
import { execFileSync } from 'node:child_process';

export interface BtfType {
  id: number;
  kind: string;
  name?: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: { name: string; type_id: number; bits_offset: number }[];
  values?: { name: string; val: number }[];
}

export type Btf = Map<number, BtfType>;

export function loadBtf(path: string): Btf {
  const out = execFileSync('bpftool', ['btf', 'dump', 'file', path, '-j'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const types = (JSON.parse(out) as { types: BtfType[] }).types;
  return new Map(types.map((t) => [t.id, t]));
}

export function btfType(btf: Btf, id: number): BtfType {
  const t = btf.get(id);
  if (!t) throw new Error(`BTF type ${id} missing`);
  return t;
}

/** Follows typedefs and qualifiers to the type itself. */
export function resolveType(btf: Btf, id: number): BtfType {
  const t = btfType(btf, id);
  return t.kind === 'TYPEDEF' || t.kind === 'VOLATILE' || t.kind === 'CONST' ? resolveType(btf, t.type_id!) : t;
}

export function sizeOf(btf: Btf, id: number): number {
  const t = resolveType(btf, id);
  switch (t.kind) {
    case 'INT':
    case 'STRUCT':
    case 'UNION':
    case 'ENUM':
      return t.size!;
    case 'ARRAY':
      return sizeOf(btf, t.type_id!) * t.nr_elems!;
    default:
      throw new Error(`unexpected BTF kind ${t.kind}`);
  }
}
