/**
 * Benchmark "core": create → RUNNING through vmlet (gRPC CreateVm{start: true} against a real
 * daemon) versus raw QEMU started with the same argv and the same QMP handshake, interleaved;
 * plus the create + delete cycle through vmlet.
 */
import { copyFile, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { processCmdline } from '../src/host/process.js';
import { buildQemuArgv } from '../src/qemu/argv.js';
import { vmPaths } from '../src/state/paths.js';
import type { VmSpec } from '../src/model/vm.js';
import type { BenchContext, BenchOutcome, Benchmark } from './benchmark.js';
import { argvDifference, normaliseArgv } from './argv-check.js';
import { BenchDaemon } from './daemon.js';
import { demoGuestSpec } from './guest.js';
import { killStrayQemus, threadTimes, whichBinary } from './procs.js';
import type { Spawner } from '../src/qemu/spawner.js';
import { runtimeBase } from './runtime-dir.js';
import { rawSide, RawQemu, type RawTimings } from './raw-qemu.js';
import { createRunning, deleteGone, nodeInfoRoundTrip } from './vmlet-ops.js';
import { coreReport, type CoreSamples } from './core-report.js';
import { serverBreakdown } from './daemon-log.js';
import { benchDir } from './util.js';

/** Quiet time after each VM is gone, so one run's teardown does not leak into the next. */
const SETTLE_MS = 100;
/** The cycle deletes with force: a graceful stop would wait for the booting guest to honour ACPI. */
const CYCLE_DELETE_FORCE = true;

type Accelerator = 'kvm' | 'tcg';

interface Setup {
  ctx: BenchContext;
  daemon: BenchDaemon;
  rawRoot: string;
  rawRunRoot: string;
  qemuBinary: string;
  accelerator: Accelerator;
  raws: Set<RawQemu>;
  /** The raw side starts QEMU through the same spawn helper as vmlet. */
  spawner: Spawner;
}

const plan = (spec: VmSpec, paths: ReturnType<typeof vmPaths>, accelerator: Accelerator) =>
  buildQemuArgv({ spec, paths, accelerator, disks: [], nics: [], vhostNet: false, startPaused: true });

const runId = (kind: string, i: number): string => `bench-${kind}-${String(i).padStart(3, '0')}`;

/** One vmlet start; checks that its QEMU runs exactly buildQemuArgv's argv before deleting it. */
async function vmletRun(s: Setup, id: string): Promise<{ ms: number; argv: string[] }> {
  const spec = demoGuestSpec(s.ctx.repo, id);
  const { ms, pid } = await createRunning(s.daemon.clients, spec);
  const paths = vmPaths(s.daemon.stateDir, s.daemon.runDir, id);
  const expected = plan(spec, paths, s.accelerator);
  const actual = (await processCmdline(pid)) ?? [];
  await deleteGone(s.daemon.clients, id, pid, true);
  if (actual[0] !== s.qemuBinary) throw new Error(`vmlet ran ${actual[0]}, the raw side runs ${s.qemuBinary}: unfair comparison`);
  const diff = argvDifference(actual.slice(1), expected);
  if (diff) throw new Error(`vmlet's QEMU argv is not buildQemuArgv's (${diff}): the raw side would not be comparable; update bench/core.ts`);
  return { ms, argv: normaliseArgv(expected, paths.runDir, id) };
}

/** One raw start, then (untimed) a GetNodeInfo round trip to vmlet while that guest boots. */
async function rawRun(s: Setup, id: string): Promise<{ timings: RawTimings; grpcWhileBootingMs: number }> {
  const spec = demoGuestSpec(s.ctx.repo, id);
  const paths = vmPaths(join(s.rawRoot, 'state'), join(s.rawRunRoot, 'run'), id);
  let qemu: RawQemu | undefined;
  try {
    const launched = await RawQemu.launch(
      { binary: s.qemuBinary, argv: plan(spec, paths, s.accelerator), paths, spawner: s.spawner },
      (q) => s.raws.add((qemu = q)),
    );
    return { timings: launched.timings, grpcWhileBootingMs: await nodeInfoRoundTrip(s.daemon.clients) };
  } finally {
    await qemu?.quit();
    if (qemu) s.raws.delete(qemu);
    await rm(paths.runDir, { recursive: true, force: true });
  }
}

/**
 * One create + delete; also what the daemon spent (CPU of all its threads, context switches) from
 * before the CreateVm until its reply: vmlet's own cost of a start, whatever the host's speed.
 * Measured here, not in the interleaved runs, so reading /proc never touches the compared times.
 */
async function cycleRun(s: Setup, id: string): Promise<CoreSamples['cycle'][number]> {
  const daemonPid = s.daemon.pid!;
  const before = await threadTimes(daemonPid);
  const { ms: createMs, pid } = await createRunning(s.daemon.clients, demoGuestSpec(s.ctx.repo, id));
  const after = await threadTimes(daemonPid);
  const deleteMs = await deleteGone(s.daemon.clients, id, pid, CYCLE_DELETE_FORCE);
  return { cycleMs: createMs + deleteMs, createMs, deleteMs, daemonCpuMs: after.cpuMs - before.cpuMs, daemonSwitches: after.switches - before.switches };
}

async function measure(s: Setup): Promise<CoreSamples> {
  const samples: CoreSamples = { vmletMs: [], raw: [], cycle: [], vmletIds: [], argv: [], grpcRoundTripMs: [], grpcRoundTripBootingMs: [] };
  const { runs } = s.ctx;
  for (let i = 0; i <= runs; i++) {
    const t = await nodeInfoRoundTrip(s.daemon.clients);
    if (i > 0) samples.grpcRoundTripMs.push(t);
  }
  // Run 0 of each loop is the warm-up (page cache, JIT, gRPC channel); it is not recorded.
  for (let i = 0; i <= runs; i++) {
    const label = i === 0 ? 'warm-up' : `${i}/${runs}`;
    // Alternate who goes first, so neither side always follows the other's teardown.
    const order = i % 2 === 0 ? (['vmlet', 'raw'] as const) : (['raw', 'vmlet'] as const);
    for (const side of order) {
      s.ctx.cleanup.checkOpen();
      if (side === 'vmlet') {
        const id = runId('v', i);
        const { ms, argv } = await vmletRun(s, id);
        samples.argv = argv;
        if (i > 0) {
          samples.vmletMs.push(ms);
          samples.vmletIds.push(id);
        }
      } else {
        const { timings, grpcWhileBootingMs } = await rawRun(s, runId('r', i));
        if (i > 0) {
          samples.raw.push(timings);
          samples.grpcRoundTripBootingMs.push(grpcWhileBootingMs);
        }
      }
      await delay(SETTLE_MS);
    }
    s.ctx.log(`create→RUNNING ${label}: vmlet ${samples.vmletMs.at(-1)?.toFixed(1) ?? '-'} ms, raw ${samples.raw.at(-1)?.totalMs.toFixed(1) ?? '-'} ms`);
  }
  for (let i = 0; i <= runs; i++) {
    s.ctx.cleanup.checkOpen();
    const c = await cycleRun(s, runId('c', i));
    if (i > 0) samples.cycle.push(c);
    await delay(SETTLE_MS);
    s.ctx.log(`create+delete ${i === 0 ? 'warm-up' : `${i}/${runs}`}: ${c.cycleMs.toFixed(1)} ms`);
  }
  return samples;
}

async function run(ctx: BenchContext): Promise<BenchOutcome> {
  const qemuBinary = await whichBinary(process.env.BENCH_QEMU ?? 'qemu-system-x86_64');
  const root = await benchDir(tmpdir(), 'vmlet-bench-');
  ctx.cleanup.defer('remove temp dir', () => rm(root, { recursive: true, force: true }));
  const runtime = await runtimeBase();
  const runRoot = await benchDir(runtime.dir, 'vmlet-bench-');
  ctx.cleanup.defer('remove run dirs', () => rm(runRoot, { recursive: true, force: true }));
  ctx.cleanup.defer('kill stray QEMUs', async () => {
    const killed = await killStrayQemus(runRoot);
    if (killed.length > 0) ctx.log(`killed stray QEMU pids ${killed.join(', ')}`);
  });
  const { raws, spawner } = rawSide(ctx.cleanup);
  const daemonLogCopy = join(ctx.resultsDir, 'core-daemon.log');
  const daemon = await BenchDaemon.start({ repo: ctx.repo, root: join(root, 'vmlet'), runDir: join(runRoot, 'vmlet'), qemuBinary });
  ctx.cleanup.defer('keep the daemon log', () => copyFile(daemon.logFile, daemonLogCopy));
  ctx.cleanup.defer('stop the daemon', () => daemon.stop());
  ctx.cleanup.defer('delete VMs', () => daemon.deleteAllVms());

  const info = await daemon.nodeInfo();
  if (info.accelerator !== 'kvm' && info.accelerator !== 'tcg') throw new Error(`unknown accelerator ${info.accelerator}`);
  const setup: Setup = { ctx, daemon, rawRoot: join(root, 'raw'), rawRunRoot: join(runRoot, 'raw'), qemuBinary, accelerator: info.accelerator, raws, spawner };
  ctx.log(`core: ${ctx.runs} runs + 1 warm-up, QEMU ${info.qemuVersion} (${qemuBinary}), ${info.accelerator}`);
  const loadBefore = loadavg();
  const samples = await measure(setup);
  const loadAfter = loadavg();

  await daemon.deleteAllVms();
  await daemon.stop();
  const breakdown = serverBreakdown(await daemon.logText(), samples.vmletIds);
  return coreReport({
    info,
    qemuBinary,
    runs: ctx.runs,
    samples,
    breakdown,
    settleMs: SETTLE_MS,
    cycleDeleteForce: CYCLE_DELETE_FORCE,
    runDirs: runtime,
    daemonLog: daemonLogCopy,
    repo: ctx.repo,
    load: { before: loadBefore, after: loadAfter },
  });
}

export const coreBenchmark: Benchmark = {
  name: 'core',
  description: 'create→RUNNING through vmlet vs raw QEMU (same argv, same QMP handshake); create+delete cycle',
  // The medians of QEMU's own start time move by a few percent between runs of 15 on a busy host;
  // the 95 % interval of the ratio is about ±0.025 at 120 runs here, ±0.02 at 200.
  defaultRuns: 200,
  run,
};
