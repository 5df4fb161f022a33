/**
 * `npm run bench`: runs the benchmarks of registry.ts (or those named with --only), each writing
 * bench/results/<name>.json. Exits 0 when every benchmark ran, whatever the numbers say (they are
 * measurements, not tests); non-zero when one failed. Whatever a benchmark set up is undone, also
 * on failure and on SIGINT/SIGTERM.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULT_RUNS, parseBenchArgs, USAGE, type BenchArgs } from './args.js';
import { findRepo, type BenchContext, type Benchmark } from './benchmark.js';
import { Cleanup } from './cleanup.js';
import { BENCHMARKS } from './registry.js';
import { errorText } from './util.js';

const log = (message: string): void => void process.stderr.write(`[bench] ${message}\n`);

function select(args: BenchArgs): Benchmark[] {
  if (args.only.length === 0) return [...BENCHMARKS];
  const unknown = args.only.filter((n) => !BENCHMARKS.some((b) => b.name === n));
  if (unknown.length > 0) throw new Error(`unknown benchmark ${unknown.join(', ')}; known: ${BENCHMARKS.map((b) => b.name).join(', ')}`);
  return BENCHMARKS.filter((b) => args.only.includes(b.name));
}

let active: Cleanup | undefined;

async function runOne(bench: Benchmark, base: Omit<BenchContext, 'cleanup'>): Promise<boolean> {
  const cleanup = new Cleanup();
  active = cleanup;
  let ok = true;
  try {
    log(`${bench.name}: ${bench.description}`);
    const { result, summary } = await bench.run({ ...base, cleanup });
    const file = join(base.resultsDir, `${bench.name}.json`);
    await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write([`== ${bench.name} ==`, ...summary, `-> ${file}`, ''].join('\n'));
  } catch (err) {
    ok = false;
    log(`${bench.name} FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  } finally {
    for (const e of await cleanup.runAll()) {
      ok = false;
      log(e.message);
    }
    active = undefined;
  }
  return ok;
}

async function main(): Promise<number> {
  let args: BenchArgs;
  try {
    args = parseBenchArgs(process.argv.slice(2), process.env);
  } catch (err) {
    process.stderr.write(`${errorText(err)}\n${USAGE}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (args.list) {
    for (const b of BENCHMARKS) process.stdout.write(`${b.name}\t${b.description}\n`);
    return 0;
  }
  const repo = findRepo();
  const resultsDir = join(repo, 'bench', 'results');
  await mkdir(resultsDir, { recursive: true });
  let ok = true;
  for (const bench of select(args)) ok = (await runOne(bench, { runs: args.runs ?? bench.defaultRuns ?? DEFAULT_RUNS, repo, resultsDir, log })) && ok;
  return ok ? 0 : 1;
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    log(`${sig}: cleaning up`);
    void (active?.runAll() ?? Promise.resolve([])).then(() => process.exit(130));
  });
}

main().then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    log(`failed: ${errorText(err)}`);
    process.exitCode = 1;
  },
);
