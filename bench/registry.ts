import type { Benchmark } from './benchmark.js';
import { coreBenchmark } from './core.js';

/** Every benchmark `npm run bench` knows, in the order they run. Add new ones here. */
export const BENCHMARKS: readonly Benchmark[] = [coreBenchmark];
