import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Cleanup } from './cleanup.js';

/** What every benchmark gets from the runner. */
export interface BenchContext {
  /** Measured runs per measure (warm-up runs come on top). */
  runs: number;
  /** The repository root (holds package.json, .guest/, dist/). */
  repo: string;
  /** bench/results: where `<name>.json` (and any `<name>-*.log`) go. */
  resultsDir: string;
  /** Everything a benchmark creates is undone through this, even when it throws or the run is interrupted. */
  cleanup: Cleanup;
  /** Progress lines, on stderr. */
  log(message: string): void;
}

export interface BenchOutcome {
  /** Written to bench/results/<name>.json. */
  result: Record<string, unknown>;
  /** A few lines for people, printed after the run. */
  summary: string[];
}

/** One named benchmark; add one by writing a module that exports this and listing it in registry.ts. */
export interface Benchmark {
  name: string;
  description: string;
  /** Measured runs when neither --runs nor BENCH_RUNS says (default DEFAULT_RUNS). */
  defaultRuns?: number;
  run(ctx: BenchContext): Promise<BenchOutcome>;
}

/** The repository root, found upward from this module (it runs from dist/bench/). */
export function findRepo(from: string = import.meta.dirname): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'proto'))) return dir;
    if (dirname(dir) === dir) throw new Error(`repository root not found above ${from}`);
  }
}
