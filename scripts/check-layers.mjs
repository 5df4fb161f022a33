// Enforces vmlet's layering (transport → domain → ports → drivers → host; "arrows point down"):
// every relative import between src files must follow the table below, and no src file may
// reach itself through imports. Type-only imports count: they are still a design dependency.
// Usage: node scripts/check-layers.mjs [src-root]   (default: this repo's src/)
// Prints one line per violation and exits 1; prints nothing and exits 0 when the tree is clean.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

const ANYTHING = '*';
const DRIVERS = ['src/qemu/', 'src/net/', 'src/storage/', 'src/state/', 'src/console/', 'src/cgroup/', 'src/guest-agent/', 'src/images/'];
const DRIVER = {
  level: 2,
  mayImport: ['src/model/', 'src/host/'],
  note: 'a driver never imports another driver, the domain or an adapter',
};
const ROOT = { level: 7, mayImport: ANYTHING };

/**
 * The layer table: a folder (ending in /) or a root file → what it may import besides itself.
 * Every import, `import type`, re-export and `import()` between src files is held to it.
 * `level` only names the direction of a broken rule (a higher level is further up).
 */
export const LAYERS = {
  'src/model/': { level: 0, mayImport: [], note: 'the leaf: spec, status, phases, errors, events' },
  'src/host/': { level: 1, mayImport: ['src/model/'] },
  ...Object.fromEntries(DRIVERS.map((folder) => [folder, DRIVER])),
  'src/vm/': {
    level: 3,
    mayImport: ['src/model/', 'src/host/'],
    note: 'the domain declares its ports in src/vm/ports.ts and daemon.ts passes the drivers that implement them',
  },
  'src/migration/': { level: 4, mayImport: ['src/vm/', 'src/model/', 'src/host/'] },
  'src/api/': {
    level: 5,
    mayImport: ['src/vm/', 'src/migration/', 'src/model/', 'src/host/', 'src/console/'],
    note: 'an adapter calls the domain, and streams consoles through the console hub; never another driver',
  },
  'src/metrics/': { level: 5, mayImport: ['src/vm/', 'src/migration/', 'src/model/', 'src/host/'], note: 'an adapter calls the domain, never a driver' },
  'src/cli/': {
    level: 6,
    mayImport: ['src/api/', 'src/model/', 'src/host/', 'src/main.ts', 'src/config.ts', 'src/version.ts'],
    note: 'the CLI talks to the daemon through the gRPC client; it never links the domain or a driver',
  },
  'src/daemon.ts': ROOT,
  'src/main.ts': ROOT,
  'src/early-start.ts': ROOT,
  'src/config.ts': ROOT,
  'src/version.ts': ROOT,
};

/** Folders that are not read (generated code); imports into them still count, as their layer's. */
export const SKIPPED = ['src/api/grpc/generated/'];

/** More cycles than this in one tangle are summarised in one line instead of listed. */
const MAX_CYCLES_PER_TANGLE = 50;

const SOURCE = /\.(?:m|c)?ts$/;

/**
 * @typedef {{ kind: 'layer' | 'cycle' | 'unknown-layer' | 'unresolved' | 'cycles-truncated', files: string[], rule: string }} Violation
 *   `files` are src-relative names starting with "src/": [importer, imported] for an import,
 *   [a, b, …, a] for a cycle, [file] for a file outside the table.
 */

/** The layer key of a src name ("src/qemu/qmp.ts" → "src/qemu/"), or undefined when the table has none. */
export function layerOf(name) {
  if (Object.hasOwn(LAYERS, name)) return name;
  const parts = name.split('/');
  return parts.length > 2 && Object.hasOwn(LAYERS, `${parts[0]}/${parts[1]}/`) ? `${parts[0]}/${parts[1]}/` : undefined;
}

/** Why `from` may not import `to` (layer keys), or undefined when it may. */
function brokenRule(from, to) {
  if (from === to) return undefined;
  const layer = LAYERS[from];
  if (layer.mayImport === ANYTHING || layer.mayImport.includes(to)) return undefined;
  const target = LAYERS[to];
  const direction =
    DRIVERS.includes(from) && DRIVERS.includes(to)
      ? 'sideways between drivers'
      : target.level > layer.level
        ? 'runs up the layers'
        : target.level === layer.level
          ? 'sideways'
          : 'not allowed';
  const allowed = layer.mayImport.length === 0 ? 'nothing of vmlet' : `only ${layer.mayImport.join(', ')}`;
  return `${direction}: ${from} may import ${allowed}${layer.note ? ` (${layer.note})` : ''}`;
}

/** The module specifiers a TypeScript file imports: static, type-only, re-exports, `import()` and `import('…')` types. */
export function importsOf(fileName, text) {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const found = [];
  const literal = (node) => (node && (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) ? node.text : undefined);
  const visit = (node) => {
    let specifier;
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) specifier = literal(node.moduleSpecifier);
    else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) specifier = literal(node.moduleReference.expression);
    else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) specifier = literal(node.arguments[0]);
    else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) specifier = literal(node.argument.literal);
    if (specifier !== undefined) found.push(specifier);
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** Every name "src/…" of a source file under root, sorted, skipping SKIPPED folders. */
function sourceNames(root) {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && SOURCE.test(entry.name))
    .map((entry) => nameOf(root, join(entry.parentPath, entry.name)))
    .filter((name) => !SKIPPED.some((folder) => name.startsWith(folder)))
    .sort();
}

function within(root, path) {
  const rel = relative(root, path);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
}

function nameOf(root, path) {
  return `src/${relative(root, path).split(sep).join('/')}`;
}

/**
 * Resolves a relative specifier the way NodeNext does for TS sources ("./a.js" → a.ts).
 * Returns { name } for a src file, { outside: true } for a file outside root, or {} when nothing is there.
 */
function resolveImport(root, importer, specifier) {
  const base = resolve(root, dirname(importer.slice('src/'.length)), specifier);
  const candidates = [base, base.replace(/\.js$/, '.ts'), base.replace(/\.mjs$/, '.mts'), base.replace(/\.cjs$/, '.cts'), `${base}.ts`, join(base, 'index.ts')];
  for (const candidate of candidates) {
    if (existsSync(candidate) && statSync(candidate).isFile()) return within(root, candidate) ? { name: nameOf(root, candidate) } : { outside: true };
  }
  if (!within(root, base)) return { outside: true };
  // Generated code may not be generated yet: take the path at its word.
  const name = nameOf(root, base.replace(/\.js$/, '.ts'));
  return SKIPPED.some((folder) => name.startsWith(folder)) ? { name } : {};
}

/**
 * Every elementary cycle of the graph (Johnson's algorithm), each once, starting at its
 * alphabetically first file; at most `limit` per strongly connected tangle.
 * Returns { cycles, truncated } where truncated lists the tangles that had more.
 */
export function findCycles(graph, limit = MAX_CYCLES_PER_TANGLE) {
  const nodes = [...graph.keys()].sort();
  const cycles = [];
  const truncated = [];
  for (const tangle of tanglesOf(nodes, graph)) {
    const inTangle = new Set(tangle);
    const found = [];
    let full = false;
    for (let i = 0; i < tangle.length && !full; i++) {
      const start = tangle[i];
      // Elementary cycles through `start` among files not before it (earlier ones are done).
      const allowed = new Set(tangle.slice(i));
      const blocked = new Set();
      const blockedBy = new Map();
      const stack = [];
      const unblock = (node) => {
        blocked.delete(node);
        for (const waiting of blockedBy.get(node) ?? []) if (blocked.has(waiting)) unblock(waiting);
        blockedBy.delete(node);
      };
      const circuit = (node) => {
        let closed = false;
        stack.push(node);
        blocked.add(node);
        for (const next of graph.get(node) ?? []) {
          if (full) break;
          if (!inTangle.has(next) || !allowed.has(next)) continue;
          if (next === start) {
            found.push([...stack, start]);
            if (found.length >= limit) full = true;
            closed = true;
          } else if (!blocked.has(next) && circuit(next)) closed = true;
        }
        if (closed) unblock(node);
        else
          for (const next of graph.get(node) ?? []) {
            if (!allowed.has(next)) continue;
            if (!blockedBy.has(next)) blockedBy.set(next, new Set());
            blockedBy.get(next).add(node);
          }
        stack.pop();
        return closed;
      };
      circuit(start);
    }
    cycles.push(...found);
    if (full) truncated.push(tangle);
  }
  return { cycles, truncated };
}

/** Strongly connected components with a cycle in them (Tarjan), each sorted. */
function tanglesOf(nodes, graph) {
  let counter = 0;
  const index = new Map();
  const low = new Map();
  const onStack = new Set();
  const stack = [];
  const tangles = [];
  const connect = (node) => {
    index.set(node, counter);
    low.set(node, counter++);
    stack.push(node);
    onStack.add(node);
    for (const next of graph.get(node) ?? []) {
      if (!index.has(next)) {
        connect(next);
        low.set(node, Math.min(low.get(node), low.get(next)));
      } else if (onStack.has(next)) low.set(node, Math.min(low.get(node), index.get(next)));
    }
    if (low.get(node) !== index.get(node)) return;
    const component = [];
    let member;
    do {
      member = stack.pop();
      onStack.delete(member);
      component.push(member);
    } while (member !== node);
    if (component.length > 1 || (graph.get(node) ?? []).includes(node)) tangles.push(component.sort());
  };
  for (const node of nodes) if (!index.has(node)) connect(node);
  return tangles.sort((a, b) => (a[0] < b[0] ? -1 : 1));
}

/**
 * Checks the tree under srcRoot (read as "src/") against the layer table and for import cycles.
 * @param {string} srcRoot
 * @returns {Violation[]} layer, unknown-layer and unresolved violations by file, then cycles
 */
export function checkLayers(srcRoot) {
  const root = resolve(srcRoot);
  if (!statSync(root).isDirectory()) throw new Error(`${srcRoot} is not a directory`);
  const violations = [];
  const graph = new Map();
  for (const name of sourceNames(root)) {
    const edges = new Set();
    graph.set(name, edges);
    const from = layerOf(name);
    if (from === undefined) {
      const folder = name.split('/').length > 2 ? `${name.split('/').slice(0, 2).join('/')}/` : name;
      violations.push({ kind: 'unknown-layer', files: [name], rule: `unknown layer ${folder}: add it to the table in scripts/check-layers.mjs` });
    }
    const text = readFileSync(join(root, name.slice('src/'.length)), 'utf8');
    const specifiers = [...new Set(importsOf(name, text))].filter((s) => s.startsWith('./') || s.startsWith('../') || s === '.' || s === '..');
    for (const specifier of specifiers) {
      const target = resolveImport(root, name, specifier);
      if (target.outside) continue;
      if (target.name === undefined) {
        violations.push({ kind: 'unresolved', files: [name, specifier], rule: 'unresolved import: no such file under src/' });
        continue;
      }
      if (edges.has(target.name)) continue;
      edges.add(target.name);
      const to = layerOf(target.name);
      if (from === undefined || to === undefined) continue; // the unknown file is reported once, by itself
      const rule = brokenRule(from, to);
      if (rule !== undefined) violations.push({ kind: 'layer', files: [name, target.name], rule });
    }
  }
  for (const [name, edges] of graph) graph.set(name, [...edges].filter((next) => graph.has(next)).sort());
  const { cycles, truncated } = findCycles(graph);
  for (const cycle of cycles) violations.push({ kind: 'cycle', files: cycle, rule: `import cycle of ${cycle.length - 1} file${cycle.length === 2 ? '' : 's'}` });
  for (const tangle of truncated)
    violations.push({
      kind: 'cycles-truncated',
      files: tangle,
      rule: `more than ${MAX_CYCLES_PER_TANGLE} import cycles among these ${tangle.length} files; break the ones listed first`,
    });
  return violations;
}

/** One line: "src/a/b.ts → src/c/d.ts: rule" (a cycle lists every file and returns to the first). */
export function formatViolation(violation) {
  const joiner = violation.kind === 'cycles-truncated' ? ', ' : ' → ';
  return `${violation.files.join(joiner)}: ${violation.rule}`;
}

/** The CLI: prints the violations of the tree at argv[2] (default: this repo's src/); exit 1 if any, 2 if it cannot read it. */
function main() {
  const srcRoot = process.argv[2] ?? resolve(import.meta.dirname, '../src');
  let violations;
  try {
    violations = checkLayers(srcRoot);
  } catch (error) {
    console.error(`check-layers: ${error instanceof Error ? error.message : String(error)}`);
    return 2;
  }
  for (const violation of violations) console.log(formatViolation(violation));
  if (violations.length === 0) return 0;
  console.error(`check-layers: ${violations.length} violation${violations.length === 1 ? '' : 's'} of vmlet's layering (the table is in scripts/check-layers.mjs)`);
  return 1;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === import.meta.filename) process.exitCode = main();
