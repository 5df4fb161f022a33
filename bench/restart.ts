/**
 * Benchmark "restart": self-healing speed. (1) A VM with run strategy ALWAYS: create → RUNNING,
 * then kill -SEGV of its QEMU → RUNNING again (first restart, no backoff), per run, against the
 * create → RUNNING of the same VM. (2) A burst of CreateVm{start} at once: time until all run.
 */
import { copyFile, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { ClientReadableStream } from '@grpc/grpc-js';
import { specToProto } from '../src/api/grpc/convert.js';
import { unary } from '../src/api/grpc/client.js';
import type { VmEvent__Output } from '../src/api/grpc/generated/vmlet/v1/VmEvent.js';
import type { Vm__Output } from '../src/api/grpc/generated/vmlet/v1/Vm.js';
import type { CreateVmRequest } from '../src/api/grpc/generated/vmlet/v1/CreateVmRequest.js';
import type { BenchContext, BenchOutcome, Benchmark } from './benchmark.js';
import { BenchDaemon } from './daemon.js';
import { demoGuestSpec } from './guest.js';
import { killStrayQemus, whichBinary } from './procs.js';
import { runtimeBase } from './runtime-dir.js';
import { ms, summarise } from './stats.js';
import { createRunning, deleteGone } from './vmlet-ops.js';
import { benchDir } from './util.js';

/** Issue 17: the first restart after a crash within this many times a create → RUNNING. */
export const TARGET_RATIO = 1.2;
const MAX_RUNS = 10;
const BURST = 100;
const CALL_TIMEOUT_MS = 120_000;

/** Resolves with the client-side time the VM is next RUNNING with a pid other than `pid`. */
function runningAgain(daemon: BenchDaemon, id: string, pid: number): { at: Promise<number>; cancel(): void } {
  const vms = daemon.clients.vms;
  const stream = vms.watchVms({ id }) as ClientReadableStream<VmEvent__Output>;
  const at = new Promise<number>((resolve, reject) => {
    stream.on('data', (e: VmEvent__Output) => {
      const s = e.vm?.status;
      if (s?.phase === 'PHASE_RUNNING' && s.pid !== pid) resolve(performance.now());
    });
    stream.on('error', (err: Error) => reject(err));
  });
  at.catch(() => undefined);
  return { at, cancel: () => stream.cancel() };
}

async function run(ctx: BenchContext): Promise<BenchOutcome> {
  const runs = Math.min(ctx.runs, MAX_RUNS);
  const qemuBinary = await whichBinary(process.env.BENCH_QEMU ?? 'qemu-system-x86_64');
  const root = await benchDir(tmpdir(), 'vmlet-bench-r-');
  ctx.cleanup.defer('remove temp dir', () => rm(root, { recursive: true, force: true }));
  const runtime = await runtimeBase();
  const runRoot = await benchDir(runtime.dir, 'vmlet-bench-r-');
  ctx.cleanup.defer('remove run dirs', () => rm(runRoot, { recursive: true, force: true }));
  ctx.cleanup.defer('kill stray QEMUs', async () => {
    const killed = [...(await killStrayQemus(root)), ...(await killStrayQemus(runRoot))];
    if (killed.length > 0) ctx.log(`killed stray QEMU pids ${killed.join(', ')}`);
  });
  const daemon = await BenchDaemon.start({ repo: ctx.repo, root, runDir: runRoot, qemuBinary, extraArgs: ['--cpu-overcommit', '100'] });
  ctx.cleanup.defer("keep the daemon's log", () => copyFile(daemon.logFile, join(ctx.resultsDir, 'restart-daemon.log')));
  ctx.cleanup.defer('stop daemon', () => daemon.stop());
  ctx.cleanup.defer('delete VMs', () => daemon.deleteAllVms());
  const info = await daemon.nodeInfo();
  ctx.log(`restart: ${runs} runs + 1 warm-up, then a burst of ${BURST}; QEMU ${info.qemuVersion}, ${info.accelerator}`);

  const loadBefore = loadavg();
  const creates: number[] = [];
  const restarts: number[] = [];
  for (let i = 0; i <= runs; i++) {
    ctx.cleanup.checkOpen();
    const id = `bench-restart-${String(i).padStart(2, '0')}`;
    const spec = { ...demoGuestSpec(ctx.repo, id), runStrategy: 'Always' as const };
    const created = await createRunning(daemon.clients, spec);
    const again = runningAgain(daemon, id, created.pid);
    const t0 = performance.now();
    process.kill(created.pid, 'SIGSEGV');
    const restartMs = (await again.at) - t0;
    again.cancel();
    const vms = daemon.clients.vms;
    const now = await unary<{ id: string }, Vm__Output>(vms.getVm.bind(vms), { id });
    await deleteGone(daemon.clients, id, Number(now.status?.pid ?? 0), true);
    if (i > 0) {
      creates.push(created.ms);
      restarts.push(restartMs);
    }
    ctx.log(`restart ${i === 0 ? 'warm-up' : `${i}/${runs}`}: create → RUNNING ${ms(created.ms)}, kill -SEGV → RUNNING ${ms(restartMs)}`);
  }

  ctx.cleanup.checkOpen();
  const vms = daemon.clients.vms;
  const ids = Array.from({ length: BURST }, (_, i) => `bench-burst-${String(i).padStart(3, '0')}`);
  const t0 = performance.now();
  const results = await Promise.allSettled(
    ids.map((id) => unary<CreateVmRequest, Vm__Output>(vms.createVm.bind(vms), { spec: specToProto(demoGuestSpec(ctx.repo, id)), start: true }, { deadline: Date.now() + CALL_TIMEOUT_MS })),
  );
  const burstMs = performance.now() - t0;
  const running = results.filter((r) => r.status === 'fulfilled' && r.value.status?.phase === 'PHASE_RUNNING').length;
  ctx.log(`restart: burst of ${BURST}: ${running} RUNNING after ${ms(burstMs)}`);
  await daemon.deleteAllVms();
  const loadAfter = loadavg();

  const create = summarise(creates);
  const restart = summarise(restarts);
  const ratio = Math.round((restart.median / create.median) * 1000) / 1000;
  const result = {
    benchmark: 'restart',
    timestamp: new Date().toISOString(),
    node: process.version,
    qemuVersion: info.qemuVersion,
    accelerator: info.accelerator,
    runs,
    hostLoad: { before: loadBefore, after: loadAfter },
    method: {
      restart: 'demo guest with run strategy ALWAYS: CreateVm{start} timed to its reply (RUNNING); kill -SEGV of its QEMU timed to the WatchVms event RUNNING with a new pid; then DeleteVm (not timed)',
      burst: `${BURST} CreateVm{start} of the demo guest sent at once (--cpu-overcommit 100, default --max-parallel-starts), timed until every call answered`,
    },
    createMs: create,
    restartMs: restart,
    ratio,
    target: TARGET_RATIO,
    meetsTarget: ratio <= TARGET_RATIO,
    burst: { vms: BURST, running, allRunningMs: Math.round(burstMs) },
  };
  const summary = [
    `kill -SEGV → RUNNING (median of ${runs}) ${ms(restart.median)} vs create → RUNNING ${ms(create.median)}: ratio ${ratio.toFixed(3)} (target ≤ ${TARGET_RATIO}): ${ratio <= TARGET_RATIO ? 'met' : 'NOT met'}`,
    `burst: ${running}/${BURST} RUNNING, all answered after ${ms(burstMs)}`,
  ];
  return { result, summary };
}

export const restartBenchmark: Benchmark = {
  name: 'restart',
  description: 'crash → RUNNING again under run strategy ALWAYS vs create → RUNNING; a burst of 100 starts',
  defaultRuns: 10,
  run,
};
