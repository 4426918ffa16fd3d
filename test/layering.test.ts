/**
 * The layering of src/ and providers/, read from the import statements and
 * kept: each unit (a folder of src/, src/errors.ts, src/paths.ts, providers/)
 * may import only the units ALLOWED names for it, and no value import closes
 * a cycle between files. Stage labels and DNS names are made by one function
 * each, and paths by src/paths.ts. The KNOWN_* lists are empty: an exception
 * may be listed there only with a comment saying what would remove it, and a
 * listed entry that is no longer true fails too (delete it: the ratchet moves).
 *
 * The checker is a pure function over an import graph; the first tests run it
 * on a small graph in memory with a deliberately wrong import, then write a
 * wrong import into a real file's source and check the real graph with it, to
 * show what a failure looks like.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { REPO_ROOT } from './helpers/cli.js';

/**
 * Which units each unit may import, lowest first. errors, paths and names
 * (domain names) import nothing; record is pure (the _dmarc record); report-model
 * is the aggregate report as values and its rows digest; dns looks records up;
 * plans and store hold the data; reports parses and stores reports; engine judges and moves a domain;
 * fleet is what a person does to domains and what they see; app holds the
 * use cases that combine engine and fleet (simulate, dry run, explain,
 * acknowledge a quiet reporter), which the doors call; web renders
 * pages; notify tells people; api, daemon and cli are the doors.
 * providers/ holds the DNS adapters: only the composition roots (daemon and
 * cli) build them, everything else sees DNS through an interface.
 */
const FOUNDATION = ['errors', 'paths', 'names'];
export const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  errors: [],
  paths: [],
  names: [],
  record: [...FOUNDATION],
  'report-model': [...FOUNDATION],
  dns: [...FOUNDATION, 'record'],
  plans: [...FOUNDATION, 'record'],
  store: [...FOUNDATION, 'record', 'report-model', 'plans'],
  reports: [...FOUNDATION, 'record', 'report-model', 'store'],
  engine: [...FOUNDATION, 'record', 'report-model', 'dns', 'plans', 'store', 'reports'],
  fleet: [...FOUNDATION, 'record', 'report-model', 'dns', 'plans', 'store', 'reports', 'engine'],
  app: [...FOUNDATION, 'record', 'report-model', 'dns', 'plans', 'store', 'reports', 'engine', 'fleet'],
  web: [...FOUNDATION, 'record', 'report-model', 'plans', 'store', 'reports', 'engine', 'fleet', 'app'],
  notify: [...FOUNDATION, 'record', 'report-model', 'plans', 'store', 'reports', 'engine', 'fleet', 'app', 'web'],
  api: [...FOUNDATION, 'record', 'report-model', 'dns', 'plans', 'store', 'reports', 'engine', 'fleet', 'app', 'web', 'notify'],
  providers: [...FOUNDATION, 'record', 'dns'],
  daemon: [...FOUNDATION, 'record', 'report-model', 'dns', 'plans', 'store', 'reports', 'engine', 'fleet', 'app', 'web', 'notify', 'api', 'providers'],
  cli: [...FOUNDATION, 'record', 'report-model', 'dns', 'plans', 'store', 'reports', 'engine', 'fleet', 'app', 'web', 'notify', 'api', 'providers', 'daemon'],
};

/**
 * Modules that show things (the fleet's views, the pages) must not import
 * the modules that write DNS: a page that can reach the writer is one typo
 * from changing a record.
 */
const READ_SIDE = [/^src\/fleet\/(views|status)\.ts$/, /^src\/web\//];
const DNS_WRITERS = [/^src\/engine\/apply\.ts$/, /^providers\//];

/**
 * Edges against the rules that are let stand, each with a comment saying what
 * would remove it. Empty since src/app/, src/report-model/ and
 * src/store/observed.ts took the code that crossed the order; keep it so.
 */
const KNOWN_EDGES: readonly string[] = [];

/** Value-import cycles between files that are let stand (each as its files, sorted), with why. Empty; keep it so. */
const KNOWN_CYCLES: readonly string[] = [];

/** Files that build a stage label inline instead of calling stageLabel() (src/record/stage.ts). Empty; keep it so. */
const KNOWN_INLINE_STAGE_LABELS: readonly string[] = [];

/** Files that lowercase a DNS name and strip its trailing dot themselves instead of calling canonicalName() (src/names.ts). Empty; keep it so. */
const KNOWN_INLINE_NAME_NORMALISERS: readonly string[] = [];

export interface Import {
  from: string;
  to: string;
  /** `import type` / `export type`: gone at run time, so it cannot make a load-order cycle. */
  typeOnly: boolean;
}

/** The unit a file belongs to: providers, a folder of src/, or a file directly in src/ by its name. */
export function unitOf(file: string): string {
  const parts = file.split('/');
  if (parts[0] === 'providers') return 'providers';
  return parts.length === 2 ? parts[1]!.replace(/\.ts$/, '') : parts[1]!;
}

/** The relative imports of one file (static, re-exports and import() with a literal), as repository paths. */
export function importsOf(file: string, source: string): Import[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const found: Import[] = [];
  const pattern = /(?:^|[;\s])(import|export)\s+(type\s+)?(?:[\w*{}\s,]+?\s+from\s+)?['"](\.{1,2}\/[^'"]+)['"]|import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g;
  for (const m of code.matchAll(pattern)) {
    const spec = m[3] ?? m[4]!;
    const to = relative(REPO_ROOT, resolve(REPO_ROOT, dirname(file), spec)).replace(/\.js$/, '.ts');
    found.push({ from: file, to, typeOnly: m[2] !== undefined });
  }
  return found;
}

export interface LayeringReport {
  /** `from -> to` of each import against ALLOWED or READ_SIDE. */
  violations: string[];
  /** Each value-import cycle, its files sorted and joined with ` <-> `. */
  cycles: string[];
}

/** The pure checker: which imports go against the allowed order, and which files import each other in a cycle. */
export function checkLayering(imports: readonly Import[], allowed: Readonly<Record<string, readonly string[]>>): LayeringReport {
  const violations = new Set<string>();
  for (const i of imports) {
    const [a, b] = [unitOf(i.from), unitOf(i.to)];
    const edge = `${i.from} -> ${i.to}`;
    if (a !== b && !(allowed[a] ?? []).includes(b)) violations.add(edge);
    if (READ_SIDE.some((r) => r.test(i.from)) && DNS_WRITERS.some((w) => w.test(i.to))) violations.add(edge);
  }
  return { violations: [...violations].sort(), cycles: valueCycles(imports) };
}

/** Strongly connected components of more than one file over value imports (Tarjan). */
function valueCycles(imports: readonly Import[]): string[] {
  const next = new Map<string, string[]>();
  for (const i of imports) if (!i.typeOnly) next.set(i.from, [...(next.get(i.from) ?? []), i.to]);
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[] = [];
  let counter = 0;
  const visit = (v: string) => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) cycles.push(component.sort().join(' <-> '));
    }
  };
  for (const v of next.keys()) if (!index.has(v)) visit(v);
  return cycles.sort();
}

function sourceFiles(dir: string): string[] {
  return readdirSync(join(REPO_ROOT, dir)).flatMap((name) => {
    const path = `${dir}/${name}`;
    if (statSync(join(REPO_ROOT, path)).isDirectory()) return sourceFiles(path);
    return path.endsWith('.ts') && !path.endsWith('.d.ts') ? [path] : [];
  });
}

const FILES = [...sourceFiles('src'), ...sourceFiles('providers')];
const IMPORTS = FILES.flatMap((f) => importsOf(f, readFileSync(join(REPO_ROOT, f), 'utf8')));

test('the checker fails on a deliberately wrong import: record importing the engine, and the cycle it closes', () => {
  const graph: Import[] = [
    { from: 'src/engine/decide.ts', to: 'src/record/stage.ts', typeOnly: false },
    { from: 'src/record/stage.ts', to: 'src/engine/decide.ts', typeOnly: false }, // the wrong one
    { from: 'src/fleet/views.ts', to: 'src/engine/apply.ts', typeOnly: false }, // a view importing the DNS writer
    { from: 'src/cli/main.ts', to: 'providers/index.ts', typeOnly: false }, // a door building adapters: fine
  ];
  const report = checkLayering(graph, ALLOWED);
  assert.deepEqual(report.violations, ['src/fleet/views.ts -> src/engine/apply.ts', 'src/record/stage.ts -> src/engine/decide.ts']);
  assert.deepEqual(report.cycles, ['src/engine/decide.ts <-> src/record/stage.ts']);
  // A type-only import cannot close a load-order cycle, but it is still against the order: the store
  // naming a type the engine declares is the store depending on the engine.
  assert.deepEqual(checkLayering([graph[0]!, { ...graph[1]!, typeOnly: true }], ALLOWED).cycles, []);
  assert.deepEqual(checkLayering([{ from: 'src/store/observations.ts', to: 'src/engine/types.ts', typeOnly: true }], ALLOWED).violations, [
    'src/store/observations.ts -> src/engine/types.ts',
  ]);
});

test('a wrong import written into a real file fails against the real graph: the engine reaching up into the application layer', () => {
  // engine/tick.ts importing app/simulate.ts: engine is below app, and simulate already imports the tick, so it is a cycle too.
  const file = 'src/engine/tick.ts';
  const wrong = `${readFileSync(join(REPO_ROOT, file), 'utf8')}\nimport { simulate } from '../app/simulate.js';\n`;
  const graph = [...IMPORTS.filter((i) => i.from !== file), ...importsOf(file, wrong)];
  const report = checkLayering(graph, ALLOWED);
  assert.deepEqual(report.violations, ['src/engine/tick.ts -> src/app/simulate.ts']);
  assert.ok(
    report.cycles.some((c) => c.split(' <-> ').includes('src/app/simulate.ts') && c.split(' <-> ').includes('src/engine/tick.ts')),
    `expected a cycle through simulate and the tick, got ${JSON.stringify(report.cycles)}`,
  );
});

test('the import reader sees static imports, re-exports and import() with a literal, and skips comments', () => {
  const source = [
    "import { a } from '../record/index.js';",
    "import type { B } from '../store/schema.js';",
    "export { c } from './c.js';",
    "const d = await import('../dns/index.js');",
    "// import { e } from '../api/server.js';",
    '/* import { f } from "../web/pages.js"; */',
  ].join('\n');
  assert.deepEqual(
    importsOf('src/engine/x.ts', source).map((i) => `${i.to}${i.typeOnly ? ' (type)' : ''}`),
    ['src/record/index.ts', 'src/store/schema.ts (type)', 'src/engine/c.ts', 'src/dns/index.ts'],
  );
});

test('every unit of src/ and providers/ has a place in the allowed order', () => {
  const units = [...new Set(FILES.map(unitOf))].sort();
  assert.deepEqual(
    units.filter((u) => !(u in ALLOWED)),
    [],
    'a new folder (or a file directly in src/) needs a line in ALLOWED saying what it may import',
  );
  // The order itself has no cycle: following allowed imports never comes back.
  const seen = new Set<string>();
  const path: string[] = [];
  const walk = (u: string) => {
    assert.ok(!path.includes(u), `ALLOWED has a cycle: ${[...path, u].join(' -> ')}`);
    if (seen.has(u)) return;
    path.push(u);
    for (const v of ALLOWED[u] ?? []) walk(v);
    path.pop();
    seen.add(u);
  };
  for (const u of Object.keys(ALLOWED)) walk(u);
});

test('no import goes against the allowed order except the known edges, which may only shrink', () => {
  const { violations } = checkLayering(IMPORTS, ALLOWED);
  assert.deepEqual(
    violations.filter((v) => !KNOWN_EDGES.includes(v)),
    [],
    'a new import against the order: import from a lower layer, or move the code down',
  );
  assert.deepEqual(
    KNOWN_EDGES.filter((k) => !violations.includes(k)),
    [],
    'a known edge is gone: delete it from KNOWN_EDGES so it cannot come back',
  );
});

test('no value imports form a cycle between files, except the known ones, which may only shrink', () => {
  const { cycles } = checkLayering(IMPORTS, ALLOWED);
  assert.deepEqual(cycles.filter((c) => !KNOWN_CYCLES.includes(c)), [], 'a new import cycle');
  assert.deepEqual(KNOWN_CYCLES.filter((k) => !cycles.includes(k)), [], 'a known cycle is gone: delete it from KNOWN_CYCLES');
});

test('stage labels come from stageLabel(); files that still build `${policy}:${pct}` inline may only shrink', () => {
  const inline = /`[^`]*\$\{\s*([\w.!?]+)\.policy\s*\}:\$\{\s*\1\.pct\s*\}/;
  const offenders = FILES.filter((f) => f !== 'src/record/stage.ts' && inline.test(readFileSync(join(REPO_ROOT, f), 'utf8')));
  assert.deepEqual(offenders.filter((f) => !KNOWN_INLINE_STAGE_LABELS.includes(f)), [], 'use stageLabel() from src/record/stage.ts');
  assert.deepEqual(KNOWN_INLINE_STAGE_LABELS.filter((f) => !offenders.includes(f)), [], 'fixed: delete it from KNOWN_INLINE_STAGE_LABELS');
});

test('domain names are normalised in one place (src/names.ts); files that still do it inline may only shrink', () => {
  const read = (f: string) => readFileSync(join(REPO_ROOT, f), 'utf8');
  const idna = FILES.filter((f) => /\bdomainToASCII\b|\btoASCII\(|from ['"](node:)?punycode/.test(read(f)));
  assert.deepEqual(idna, ['src/names.ts'], 'call normalizeDomainName() instead of converting names yourself');
  const inline = FILES.filter((f) => f !== 'src/names.ts' && /replace\(\/\\\.\$\/, ''\)/.test(read(f)));
  assert.deepEqual(inline.filter((f) => !KNOWN_INLINE_NAME_NORMALISERS.includes(f)), [], 'call canonicalName() from src/names.ts');
  assert.deepEqual(KNOWN_INLINE_NAME_NORMALISERS.filter((f) => !inline.includes(f)), [], 'fixed: delete it from KNOWN_INLINE_NAME_NORMALISERS');
});

test('paths come from src/paths.ts: no other module works out a folder from its own location', () => {
  const own = FILES.filter((f) => f !== 'src/paths.ts' && /import\.meta\.(url|dirname|filename)/.test(readFileSync(join(REPO_ROOT, f), 'utf8')));
  assert.deepEqual(own, [], 'ask src/paths.ts: the compiled dist/ is one folder deeper than the sources');
});

test('paths come from src/paths.ts: no other module reads where things live from the environment or the home folder', () => {
  const where = /\benv\.(DMARC_ROLLOUT_(DB|PLANS)|XDG_\w+|HOME)\b|\benv\[['"](DMARC_ROLLOUT_(DB|PLANS)|XDG_\w+|HOME)['"]\]|\bhomedir\(/;
  const own = FILES.filter((f) => f !== 'src/paths.ts' && where.test(readFileSync(join(REPO_ROOT, f), 'utf8')));
  assert.deepEqual(own, [], 'ask src/paths.ts (planDirectories, defaultDatabasePath, defaultRejectedDir, compileCacheDir)');
});
