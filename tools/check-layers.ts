// The direction of dependency, checked (README, "Layout"): loader/ (all FFI)
// at the bottom, then the libraries src/common, src/netlink, src/dataplane,
// src/kube, then the binaries src/daemon, src/cni, src/cli, then src/sim.
// A package imports only packages below it; a binary never imports another
// binary, except the plugin's library through its one entry, src/cni/index.ts
// (bvcnid serves the plugin's commands with it); loader/'s raw bindings stay
// inside loader/. Type-only and dynamic imports count like the others.
//
// `node --import tsx tools/check-layers.ts [root]` prints every import against
// the order and exits 1 when there is one; `make test` and `make test-unit`
// run it first.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const LIBRARIES = ['src/common', 'src/netlink', 'src/dataplane', 'src/kube', 'src/policy'] as const;
const BINARIES = ['src/daemon', 'src/cni', 'src/cli'] as const;

/** What each package may import, besides itself. */
const ALLOWED: Record<string, readonly string[]> = {
  loader: [],
  'src/common': ['loader'],
  'src/netlink': ['loader', 'src/common'],
  'src/dataplane': ['loader', 'src/common', 'src/netlink'],
  'src/kube': ['loader', 'src/common', 'src/netlink', 'src/dataplane'],
  // The NetworkPolicy model and compiler: pure computation over parsed objects.
  'src/policy': ['loader', 'src/common'],
  'src/daemon': ['loader', ...LIBRARIES],
  'src/cni': ['loader', ...LIBRARIES],
  'src/cli': ['loader', ...LIBRARIES],
  'src/sim': ['loader', ...LIBRARIES],
};

/** A binary's library entry other packages may import, and who may. */
const ENTRIES: Record<string, readonly string[]> = {
  'src/cni/index.ts': ['src/daemon', 'src/cli'],
};

/** Modules private to their package: the raw FFI bindings. */
const PRIVATE = ['loader/ffi.ts', 'loader/bindings.ts'];

/** The packages checked, in order; also what the README's Layout draws. */
export const PACKAGES = ['loader', ...LIBRARIES, ...BINARIES, 'src/sim'] as const;

export interface SourceFile {
  /** Path relative to the repository root, '/'-separated. */
  path: string;
  text: string;
}

export interface Violation {
  file: string;
  import: string;
  /** The imported module, relative to the root. */
  target: string;
  reason: string;
}

/** The package a root-relative path belongs to, or undefined outside loader/ and src/. */
export function packageOf(path: string): string | undefined {
  const parts = path.split('/');
  if (parts[0] === 'loader') return 'loader';
  if (parts[0] === 'src' && parts.length > 2) return `src/${parts[1]}`;
  return undefined;
}

/** Relative module specifiers of one file: static, type-only, re-exports and import(). */
export function importsOf(text: string): string[] {
  const info = ts.preProcessFile(text, true, true);
  return info.importedFiles.map((f) => f.fileName).filter((s) => s.startsWith('./') || s.startsWith('../'));
}

function targetPath(from: string, spec: string): string {
  const joined = posix.normalize(posix.join(posix.dirname(from), spec));
  return joined.replace(/\.js$/, '.ts');
}

/**
 * C under src/ (the plugin's native front, src/cni/front/) is a binary of its
 * own: it includes libc's headers and, in quotes, only its own directory's and
 * the headers the build generates from the TypeScript (never another package's).
 */
const GENERATED_HEADERS = ['front-defaults.h'];

function checkIncludes(f: SourceFile): Violation[] {
  const out: Violation[] = [];
  for (const m of f.text.matchAll(/^\s*#\s*include\s*"([^"]+)"/gm)) {
    const spec = m[1]!;
    if (GENERATED_HEADERS.includes(spec)) continue;
    const target = posix.normalize(posix.join(posix.dirname(f.path), spec));
    if (posix.dirname(target) !== posix.dirname(f.path))
      out.push({ file: f.path, import: spec, target, reason: `C in ${packageOf(f.path)} includes only headers of its own directory (and ${GENERATED_HEADERS.join(', ')})` });
  }
  return out;
}

export function checkImports(files: readonly SourceFile[]): Violation[] {
  const out: Violation[] = [];
  for (const f of files) {
    if (/\.[ch]$/.test(f.path)) {
      out.push(...checkIncludes(f));
      continue;
    }
    const from = packageOf(f.path);
    if (from === undefined) continue;
    if (!(from in ALLOWED)) {
      out.push({ file: f.path, import: '', target: '', reason: `${from} is not a known package: give it a place in tools/check-layers.ts and README's Layout` });
      continue;
    }
    for (const spec of importsOf(f.text)) {
      const target = targetPath(f.path, spec);
      const to = packageOf(target);
      const bad = (reason: string) => out.push({ file: f.path, import: spec, target, reason });
      if (to === from) {
        if (/^src\/[^/]+\/main\.ts$/.test(target)) bad(`${target} is a binary's entry point: nothing imports it`);
        continue;
      }
      if (to === undefined) {
        bad(`${from} imports ${target}, outside loader/ and src/ (test or tool code)`);
        continue;
      }
      if (PRIVATE.includes(target)) {
        bad(`${target} is private to ${to}: use ${to}/index.ts`);
        continue;
      }
      if (ENTRIES[target]?.includes(from)) continue;
      if (ALLOWED[from]!.includes(to)) continue;
      const entry = Object.entries(ENTRIES).find(([e, users]) => packageOf(e) === to && users.includes(from));
      if (entry) bad(`${from} may import ${to} only through ${entry[0]}`);
      else if ((BINARIES as readonly string[]).includes(from) && (BINARIES as readonly string[]).includes(to)) bad(`binary ${from} imports binary ${to}`);
      else bad(`${from} may not import ${to} (it may import: ${ALLOWED[from]!.join(', ') || 'nothing of src/'})`);
    }
  }
  return out;
}

function walk(dir: string, root: string, acc: SourceFile[]): void {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, root, acc);
    else if (/\.(ts|c|h)$/.test(e.name)) acc.push({ path: relative(root, p).split('\\').join('/'), text: readFileSync(p, 'utf8') });
  }
}

/** Every .ts file (and C source or header) under loader/ and src/ of a tree. */
export function readTree(root: string): SourceFile[] {
  const files: SourceFile[] = [];
  for (const top of ['loader', 'src']) walk(join(root, top), root, files);
  return files.sort((a, b) => a.path.localeCompare(b.path));
}

function main(): void {
  const root = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..'));
  const files = readTree(root);
  const violations = checkImports(files);
  for (const v of violations) process.stderr.write(`${v.file}: ${v.import ? `import '${v.import}': ` : ''}${v.reason}\n`);
  if (violations.length > 0) {
    process.stderr.write(`check-layers: ${violations.length} import(s) against the layer order (README, "Layout")\n`);
    process.exit(1);
  }
  process.stdout.write(`check-layers: ${files.length} files, imports follow the layer order\n`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
