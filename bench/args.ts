import { parseArgs } from 'node:util';

export interface BenchArgs {
  /** Undefined: each benchmark's own default (Benchmark.defaultRuns), else DEFAULT_RUNS. */
  runs: number | undefined;
  /** Benchmark names to run; empty means all. */
  only: string[];
  list: boolean;
  help: boolean;
}

export const DEFAULT_RUNS = 15;

export const USAGE = `node dist/bench/run.js [options]      (npm run bench -- [options])
  --runs N        measured runs per measure (default $BENCH_RUNS, else the benchmark's own: core 200, others ${DEFAULT_RUNS}); one warm-up run comes on top
  --only NAME     run only this benchmark; repeatable or comma-separated
  --list          list the benchmarks and exit
  --help          this text`;

export function parseBenchArgs(argv: string[], env: NodeJS.ProcessEnv): BenchArgs {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      runs: { type: 'string' },
      only: { type: 'string', multiple: true },
      list: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const rawRuns = values.runs ?? env.BENCH_RUNS;
  const runs = rawRuns === undefined ? undefined : Number(rawRuns);
  if (runs !== undefined && (!Number.isInteger(runs) || runs < 1)) throw new Error(`--runs / BENCH_RUNS: must be an integer >= 1, got "${rawRuns}"`);
  const only = (values.only ?? []).flatMap((s) => s.split(',')).map((s) => s.trim()).filter((s) => s !== '');
  return { runs, only, list: values.list, help: values.help };
}
