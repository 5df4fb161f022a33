/**
 * Benchmark "metrics-latency": how long `GET /metrics` takes with 20 running VMs (each with a NIC
 * on a bridge in a network namespace of the benchmark's own, so the TAP listing runs too),
 * against the same daemon with no VM. Sequential scrapes, client-side wall time of the whole
 * response. Also reports the exposition size, the per-VM series, and scrape errors (which must
 * stay 0: a slow scrape that drops VMs is not a fast one).
 */
import { randomBytes } from 'node:crypto';
import { specToProto } from '../src/api/grpc/convert.js';
import { execFile } from 'node:child_process';
import { copyFile, readFile, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { setTimeout as delay } from 'node:timers/promises';
import { unary } from '../src/api/grpc/client.js';
import type { CreateVmRequest } from '../src/api/grpc/generated/vmlet/v1/CreateVmRequest.js';
import type { Vm__Output } from '../src/api/grpc/generated/vmlet/v1/Vm.js';
import type { BenchContext, BenchOutcome, Benchmark } from './benchmark.js';
import type { Cleanup } from './cleanup.js';
import { BenchDaemon } from './daemon.js';
import { demoGuestSpec } from './guest.js';
import { killStrayQemus, whichBinary } from './procs.js';
import { ms, summarise, type Stats } from './stats.js';
import { benchDir } from './util.js';

const execFileP = promisify(execFile);

export interface MetricsLatencyOptions {
  repo: string;
  /** Measured scrapes per setting (one warm-up scrape comes on top). */
  runs: number;
  cleanup: Cleanup;
  log(message: string): void;
  /** Where the daemon log is copied (`metrics-latency-daemon.log`); not copied when absent. */
  resultsDir?: string;
  /** Running VMs. Default 20. */
  vms?: number;
  /** Each VM gets a NIC on a bridge inside a network namespace of the benchmark. Default true. */
  nics?: boolean;
  /** How long the guests get to boot (VMLET-GUEST-READY on every console) before measuring. Default 600 s. */
  bootTimeoutMs?: number;
  qemuBinary?: string;
}

interface Scrapes {
  stats: Stats;
  bytes: number;
  lines: number;
  scrapeErrors: number;
}

const READY_LINE = 'VMLET-GUEST-READY';

async function ip(args: string[]): Promise<void> {
  await execFileP('ip', args, { timeout: 15_000 });
}

function count(text: string, prefix: string): number {
  return text.split('\n').filter((l) => l.startsWith(prefix)).length;
}

function scrapeErrors(text: string): number {
  const m = /^vmlet_scrape_errors_total (\S+)$/m.exec(text);
  return m ? Number(m[1]) : NaN;
}

async function fetchMetrics(url: string): Promise<{ ms: number; text: string }> {
  const t0 = performance.now();
  const res = await fetch(url);
  const text = await res.text();
  const elapsed = performance.now() - t0;
  if (res.status !== 200) throw new Error(`GET ${url}: HTTP ${res.status}`);
  return { ms: elapsed, text };
}

async function scrapeMany(url: string, runs: number): Promise<Scrapes> {
  const samples: number[] = [];
  let last = '';
  const before = scrapeErrors((await fetchMetrics(url)).text); // the warm-up
  for (let i = 0; i < runs; i++) {
    const { ms: t, text } = await fetchMetrics(url);
    samples.push(t);
    last = text;
  }
  return {
    stats: summarise(samples),
    bytes: Buffer.byteLength(last),
    lines: count(last, '') - count(last, '#'),
    scrapeErrors: scrapeErrors(last) - before,
  };
}

async function waitAllBooted(stateDir: string, ids: string[], timeoutMs: number, log: (m: string) => void): Promise<number> {
  const t0 = performance.now();
  const pending = new Set(ids);
  const deadline = Date.now() + timeoutMs;
  while (pending.size > 0) {
    for (const id of [...pending]) {
      const text = await readFile(join(stateDir, 'vms', id, 'console.log'), 'utf8').catch(() => '');
      if (text.includes(READY_LINE)) pending.delete(id);
    }
    if (pending.size === 0) break;
    if (Date.now() > deadline) throw new Error(`guests not booted within ${timeoutMs} ms: ${[...pending].join(', ')}`);
    await delay(500);
  }
  const seconds = (performance.now() - t0) / 1000;
  log(`all ${ids.length} guests booted (${seconds.toFixed(1)} s after the last start)`);
  return seconds;
}

/** Runs the benchmark; everything it creates is undone through options.cleanup. */
export async function metricsLatencyBench(options: MetricsLatencyOptions): Promise<BenchOutcome> {
  const { cleanup, log, runs } = options;
  const vmCount = options.vms ?? 20;
  const withNics = options.nics ?? true;
  const qemuBinary = options.qemuBinary ?? (await whichBinary(process.env.BENCH_QEMU ?? 'qemu-system-x86_64'));
  const root = await benchDir(tmpdir(), 'vmlet-bench-m-');
  cleanup.defer('remove temp dir', () => rm(root, { recursive: true, force: true }));
  cleanup.defer('kill stray QEMUs', async () => {
    const killed = await killStrayQemus(root);
    if (killed.length > 0) log(`killed stray QEMU pids ${killed.join(', ')}`);
  });

  let netns: string | undefined;
  if (withNics) {
    netns = `vmlet-b-${randomBytes(3).toString('hex')}`;
    await ip(['netns', 'add', netns]);
    const ns = netns;
    cleanup.defer('delete the network namespace', () => ip(['netns', 'delete', ns]));
    await ip(['-n', netns, 'link', 'add', 'name', 'br0', 'type', 'bridge']);
    await ip(['-n', netns, 'link', 'set', 'dev', 'br0', 'up']);
  }

  const daemon = await BenchDaemon.start({
    repo: options.repo,
    root: join(root, 'vmlet'),
    qemuBinary,
    http: true,
    // 20 demo guests use far less than their 128 MiB each; do not let a small host refuse them.
    extraArgs: ['--memory-overcommit', '4', ...(netns ? ['--netns', netns] : [])],
  });
  if (options.resultsDir) {
    const copy = join(options.resultsDir, 'metrics-latency-daemon.log');
    cleanup.defer('keep the daemon log', () => copyFile(daemon.logFile, copy));
  }
  cleanup.defer('stop the daemon', () => daemon.stop());
  cleanup.defer('delete VMs', () => daemon.deleteAllVms());
  const url = `${await daemon.httpAddress()}/metrics`;
  const info = await daemon.nodeInfo();

  log(`metrics-latency: ${runs} scrapes + 1 warm-up with 0 VMs, then with ${vmCount}; QEMU ${info.qemuVersion}, ${info.accelerator}`);
  const idle = await scrapeMany(url, runs);
  log(`0 VMs: median ${ms(idle.stats.median)}, p90 ${ms(idle.stats.p90)}`);

  const ids = Array.from({ length: vmCount }, (_, i) => `bench-m-${String(i).padStart(2, '0')}`);
  const vms = daemon.clients.vms;
  for (const id of ids) {
    cleanup.checkOpen();
    const spec = demoGuestSpec(options.repo, id);
    if (withNics) spec.nics = [{ name: 'eth0', bridge: 'br0', mac: '' }];
    const vm = await unary<CreateVmRequest, Vm__Output>(vms.createVm.bind(vms), { spec: specToProto(spec), start: true }, { deadline: Date.now() + 60_000 });
    if (vm.status?.phase !== 'PHASE_RUNNING') throw new Error(`${id}: ${vm.status?.phase} ${vm.status?.reason}`);
  }
  const bootSeconds = await waitAllBooted(daemon.stateDir, ids, options.bootTimeoutMs ?? 600_000, log);
  const loadBefore = loadavg();
  const busy = await scrapeMany(url, runs);
  const loadAfter = loadavg();
  log(`${vmCount} VMs: median ${ms(busy.stats.median)}, p90 ${ms(busy.stats.p90)}, ${busy.scrapeErrors} scrape errors`);
  const lastText = (await fetchMetrics(url)).text;
  const perVm = lastText.split('\n').filter((l) => l.includes(`name="${ids[0]}"`)).length;

  await daemon.deleteAllVms();
  await daemon.stop();
  const result = {
    benchmark: 'metrics-latency',
    vms: vmCount,
    nics: withNics,
    runs,
    qemuVersion: info.qemuVersion,
    accelerator: info.accelerator,
    hostLoad: { before: loadBefore, after: loadAfter },
    guestBootSeconds: bootSeconds,
    idle: { latencyMs: idle.stats, bytes: idle.bytes, samples: idle.lines },
    busy: { latencyMs: busy.stats, bytes: busy.bytes, samples: busy.lines, seriesPerVm: perVm, scrapeErrors: busy.scrapeErrors },
  };
  const summary = [
    `GET /metrics, 0 VMs:  median ${ms(idle.stats.median)}, p90 ${ms(idle.stats.p90)} (${idle.lines} samples, ${idle.bytes} bytes)`,
    `GET /metrics, ${vmCount} VMs: median ${ms(busy.stats.median)}, p90 ${ms(busy.stats.p90)}, max ${ms(busy.stats.max)} (${busy.lines} samples, ${perVm} per VM, ${busy.bytes} bytes)`,
    `scrape errors during the ${vmCount}-VM scrapes: ${busy.scrapeErrors}; load average ${loadBefore[0]?.toFixed(2)} → ${loadAfter[0]?.toFixed(2)}`,
  ];
  if (busy.scrapeErrors !== 0) throw new Error(`${busy.scrapeErrors} scrape errors: VMs were dropped from scrapes; the latency figures are not comparable.\n${summary.join('\n')}`);
  return { result, summary };
}

export const metricsLatencyBenchmark: Benchmark = {
  name: 'metrics-latency',
  description: 'GET /metrics latency with 20 running VMs (each with a NIC), against an idle daemon',
  run: (ctx: BenchContext) => metricsLatencyBench({ repo: ctx.repo, runs: ctx.runs, cleanup: ctx.cleanup, log: ctx.log, resultsDir: ctx.resultsDir }),
};
