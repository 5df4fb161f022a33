import { agentPriorityBenchmark } from './agent-priority.js';
import type { Benchmark } from './benchmark.js';
import { coreBenchmark } from './core.js';
import { metricsLatencyBenchmark } from './metrics-latency.js';
import { migrationBenchmark } from './migration.js';
import { migrationTlsBenchmark } from './migration-tls.js';
import { nicBenchmark } from './nic.js';
import { restartBenchmark } from './restart.js';
import { imageImportBenchmark } from './image-import.js';
import { guestAgentBenchmark } from './guest-agent.js';

/** Every benchmark `npm run bench` knows, in the order they run. Add new ones here. */
export const BENCHMARKS: readonly Benchmark[] = [coreBenchmark, metricsLatencyBenchmark, nicBenchmark, migrationBenchmark, migrationTlsBenchmark, restartBenchmark, agentPriorityBenchmark, imageImportBenchmark, guestAgentBenchmark];
