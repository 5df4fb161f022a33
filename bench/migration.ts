/**
 * Benchmark "migration": live migration of the demo guest (1 vCPU, 256 MiB, no disks, no NICs)
 * between two vmlet daemons on this host (each with a loopback TCP gRPC listener, so QEMU's
 * stream runs over 127.0.0.1 too), against the same QEMU pair migrated by hand over raw QMP
 * (same binary, same buildQemuArgv argv, the same QMP commands, query-migrate polled as often as
 * vmlet polls it). vmlet and raw runs alternate. Each run boots a fresh guest on the source and
 * waits for it to print VMLET-GUEST-READY before migrating it.
 */
import { copyFile, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import type { ClientReadableStream } from '@grpc/grpc-js';
import { unary } from '../src/api/grpc/client.js';
import type { GetVmRequest } from '../src/api/grpc/generated/vmlet/v1/GetVmRequest.js';
import type { ListVmsRequest } from '../src/api/grpc/generated/vmlet/v1/ListVmsRequest.js';
import type { ListVmsResponse__Output } from '../src/api/grpc/generated/vmlet/v1/ListVmsResponse.js';
import type { MigrateVmRequest } from '../src/api/grpc/generated/vmlet/v1/MigrateVmRequest.js';
import type { Migration__Output } from '../src/api/grpc/generated/vmlet/v1/Migration.js';
import type { Vm__Output } from '../src/api/grpc/generated/vmlet/v1/Vm.js';
import type { VmEvent__Output } from '../src/api/grpc/generated/vmlet/v1/VmEvent.js';
import { processCmdline } from '../src/host/process.js';
import { freePort } from '../src/host/free-port.js';
import { buildQemuArgv } from '../src/qemu/argv.js';
import type { QmpEvent } from '../src/qemu/qmp.js';
import { vmPaths } from '../src/state/paths.js';
import type { VmSpec } from '../src/model/vm.js';
import { argvDifference } from './argv-check.js';
import type { BenchContext, BenchOutcome, Benchmark } from './benchmark.js';
import { BenchDaemon } from './daemon.js';
import { demoGuestSpec } from './guest.js';
import type { Spawner } from '../src/qemu/spawner.js';
import { rawSide, RawQemu } from './raw-qemu.js';
import { migrationBreakdown } from './migration-log.js';
import { killStrayQemus, whichBinary } from './procs.js';
import { runtimeBase } from './runtime-dir.js';
import { median, ms, summarise } from './stats.js';
import { createRunning, deleteGone } from './vmlet-ops.js';
import type { QueryMigrate } from '../src/qemu/migration-info.js';
import { benchDir, waitForText } from './util.js';

/** vmlet may take at most this many times the raw QMP migration's wall time. */
export const TARGET_RATIO = 1.15;
/** src/migration/source.ts PROGRESS_POLL_MS: vmlet polls query-migrate this often; the raw side does the same. */
export const PROGRESS_POLL_MS = 250;
/** Each run boots two guests' worth of work under TCG: fewer runs than the other benchmarks by default. */
export const MAX_RUNS = 5;
const MEMORY_MIB = 256;
const READY_LINE = 'VMLET-GUEST-READY';
const BOOT_TIMEOUT_MS = 180_000;
const MIGRATION_TIMEOUT_MS = 300_000;
const CALL_TIMEOUT_MS = 60_000;
/** Quiet time after each run, so one run's teardown does not leak into the next. */
const SETTLE_MS = 500;

type Accelerator = 'kvm' | 'tcg';

interface Setup {
  ctx: BenchContext;
  a: BenchDaemon;
  b: BenchDaemon;
  bAddress: string;
  rawRoot: string;
  /** Where the raw side's run dirs go (on a tmpfs when there is one, as for the daemons). */
  rawRunRoot: string;
  qemuBinary: string;
  accelerator: Accelerator;
  raws: Set<RawQemu>;
  /** The raw side starts QEMU through the same spawn helper as vmlet. */
  spawner: Spawner;
}

interface VmletSample {
  id: string;
  /** MigrateVm call → WatchMigration says SUCCEEDED (client side): the compared number. */
  wallMs: number;
  /** MigrateVm call → its reply (the target is prepared: QEMU started with -incoming defer, migrate-incoming sent). */
  migrateCallMs: number;
  /** MigrateVm call → the target node reports the VM PHASE_RUNNING (WatchVms on B). */
  targetRunningMs: number | undefined;
  /** From the final (SUCCEEDED) Migration message. */
  totalTimeMs: number;
  downtimeMs: number;
  /** total_time_ms of the message before SUCCEEDED: QEMU's own total-time (the final message's is vmlet's wall time, see result.notes). */
  qemuTotalTimeMs: number | undefined;
  dataTotalBytes: number;
  dataProcessedBytes: number;
  /** Phase and figures of every WatchMigration message, to tell afterwards what a run's stream said. */
  stream: { phase: string; totalTimeMs: number; downtimeMs: number; atMs: number }[];
  argvDiff: string | undefined;
}

interface RawSample {
  /** First QMP command (target migrate-set-capabilities) → the target's `cont` reply. */
  wallMs: number;
  /** Spawning the target QEMU and connecting QMP, before the timed part (vmlet's PrepareIncoming does this inside its wall time). */
  targetLaunchMs: number;
  /** migrate command → source query-migrate says completed. */
  streamMs: number;
  /** Source completed → target confirmed completed and `cont` replied. */
  finishMs: number;
  totalTimeMs: number;
  downtimeMs: number;
  transferredBytes: number;
  polls: number;
}

const spec = (repo: string, id: string): VmSpec => ({ ...demoGuestSpec(repo, id), memoryMib: MEMORY_MIB });

const plan = (s: VmSpec, paths: ReturnType<typeof vmPaths>, accelerator: Accelerator, incoming: boolean): string[] =>
  buildQemuArgv({ spec: s, paths, accelerator, disks: [], nics: [], vhostNet: false, startPaused: true, ...(incoming ? { incoming: true } : {}) });

/** WatchVms{id} on the target node: resolves with the client-side time the VM is first PHASE_RUNNING there. */
function watchTargetRunning(daemon: BenchDaemon, id: string): { running: Promise<number | undefined>; cancel(): void } {
  const vms = daemon.clients.vms;
  const stream = vms.watchVms({ id }) as ClientReadableStream<VmEvent__Output>;
  const running = new Promise<number | undefined>((resolve) => {
    stream.on('data', (e: VmEvent__Output) => {
      if (e.vm?.status?.phase === 'PHASE_RUNNING') resolve(performance.now());
    });
    stream.on('error', () => resolve(undefined));
    stream.on('end', () => resolve(undefined));
  });
  return { running, cancel: () => stream.cancel() };
}

/** WatchMigration on the source until a terminal phase; every message with its client-side arrival time. */
function watchMigration(daemon: BenchDaemon, id: string): Promise<{ at: number; m: Migration__Output }[]> {
  const m = daemon.clients.migrations;
  return new Promise((resolve, reject) => {
    const seen: { at: number; m: Migration__Output }[] = [];
    const stream = m.watchMigration({ id }, { deadline: Date.now() + MIGRATION_TIMEOUT_MS }) as ClientReadableStream<Migration__Output>;
    stream.on('data', (x: Migration__Output) => seen.push({ at: performance.now(), m: x }));
    stream.on('end', () => resolve(seen));
    stream.on('error', reject);
  });
}

async function vmletRun(s: Setup, id: string): Promise<VmletSample> {
  const { a, b, ctx } = s;
  const vmSpec = spec(ctx.repo, id);
  await createRunning(a.clients, vmSpec);
  await waitForText(vmPaths(a.stateDir, a.runDir, id).consoleLog, READY_LINE, BOOT_TIMEOUT_MS);
  const target = watchTargetRunning(b, id);
  let sample: Omit<VmletSample, 'argvDiff'>;
  try {
    const migrations = a.clients.migrations;
    const t0 = performance.now();
    await unary<MigrateVmRequest, Migration__Output>(migrations.migrateVm.bind(migrations), { id, target: s.bAddress }, { deadline: Date.now() + CALL_TIMEOUT_MS });
    const tCall = performance.now();
    const messages = await watchMigration(a, id);
    const last = messages.at(-1);
    if (!last) throw new Error(`WatchMigration of ${id} sent nothing`);
    const final = last.m;
    if (final.phase !== 'MIGRATION_PHASE_SUCCEEDED') throw new Error(`migration of ${id} ended ${final.phase}: ${final.reason}`);
    const timer = new AbortController();
    const targetAt = await Promise.race([target.running, delay(10_000, undefined, { signal: timer.signal }).catch(() => undefined)]);
    timer.abort();
    const before = messages.at(-2)?.m;
    sample = {
      id,
      wallMs: last.at - t0,
      migrateCallMs: tCall - t0,
      targetRunningMs: targetAt === undefined ? undefined : targetAt - t0,
      totalTimeMs: Number(final.totalTimeMs),
      downtimeMs: Number(final.downtimeMs),
      qemuTotalTimeMs: before && before.phase === 'MIGRATION_PHASE_RUNNING' ? Number(before.totalTimeMs) : undefined,
      dataTotalBytes: Number(final.dataTotalBytes),
      dataProcessedBytes: Number(final.dataProcessedBytes),
      stream: messages.map((x) => ({ phase: x.m.phase, totalTimeMs: Number(x.m.totalTimeMs), downtimeMs: Number(x.m.downtimeMs), atMs: Math.round((x.at - t0) * 10) / 10 })),
    };
  } finally {
    target.cancel();
  }
  // Not timed: the target's QEMU runs the argv the raw side runs, the source has nothing left.
  const vms = b.clients.vms;
  const moved = await unary<GetVmRequest, Vm__Output>(vms.getVm.bind(vms), { id }, { deadline: Date.now() + CALL_TIMEOUT_MS });
  if (moved.status?.phase !== 'PHASE_RUNNING') throw new Error(`${id} on the target is ${moved.status?.phase}, not running`);
  const pid = Number(moved.status.pid);
  const actual = (await processCmdline(pid)) ?? [];
  const argvDiff = actual[0] !== s.qemuBinary ? `binary ${actual[0]} vs ${s.qemuBinary}` : argvDifference(actual.slice(1), plan(vmSpec, vmPaths(b.stateDir, b.runDir, id), s.accelerator, true));
  const left = await unary<ListVmsRequest, ListVmsResponse__Output>(a.clients.vms.listVms.bind(a.clients.vms), {}, { deadline: Date.now() + CALL_TIMEOUT_MS });
  if (left.vms.length > 0) throw new Error(`the source still has ${left.vms.map((v) => v.spec?.id).join(', ')} after the migration`);
  await deleteGone(b.clients, id, pid, true);
  return { ...sample, argvDiff };
}

async function rawRun(s: Setup, id: string): Promise<RawSample> {
  const vmSpec = spec(s.ctx.repo, id);
  const srcPaths = vmPaths(join(s.rawRoot, 'a', 'state'), join(s.rawRunRoot, 'a'), id);
  const dstPaths = vmPaths(join(s.rawRoot, 'b', 'state'), join(s.rawRunRoot, 'b'), id);
  const track = (g: RawQemu) => void s.raws.add(g);
  const guests: RawQemu[] = [];
  try {
    const { qemu: src } = await RawQemu.launch({ binary: s.qemuBinary, argv: plan(vmSpec, srcPaths, s.accelerator, false), paths: srcPaths, spawner: s.spawner, cont: false }, (g) => (track(g), guests.push(g)));
    await src.q.execute('cont');
    await waitForText(srcPaths.consoleLog, READY_LINE, BOOT_TIMEOUT_MS);

    const tl0 = performance.now();
    const { qemu: dst } = await RawQemu.launch({ binary: s.qemuBinary, argv: plan(vmSpec, dstPaths, s.accelerator, true), paths: dstPaths, spawner: s.spawner, cont: false }, (g) => (track(g), guests.push(g)));
    const targetLaunchMs = performance.now() - tl0;
    const uri = `tcp:127.0.0.1:${await freePort('127.0.0.1')}`;
    const incomingDone = dst.q.waitForEvent('MIGRATION', { timeoutMs: MIGRATION_TIMEOUT_MS, predicate: (e: QmpEvent) => e.data.status === 'completed' || e.data.status === 'failed' });
    incomingDone.catch(() => undefined);

    const t0 = performance.now();
    await dst.q.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
    await dst.q.execute('migrate-incoming', { uri });
    await src.q.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
    const tm = performance.now();
    await src.q.execute('migrate', { uri });
    let info: QueryMigrate;
    let polls = 0;
    const deadline = Date.now() + MIGRATION_TIMEOUT_MS;
    for (;;) {
      info = await src.q.execute<QueryMigrate>('query-migrate');
      polls++;
      if (info.status === 'completed') break;
      if (info.status === 'failed' || info.status === 'cancelled') throw new Error(`raw migration ${info.status}: ${info['error-desc'] ?? ''}`);
      if (Date.now() > deadline) throw new Error(`raw migration not complete within ${MIGRATION_TIMEOUT_MS} ms`);
      await delay(PROGRESS_POLL_MS);
    }
    const tc = performance.now();
    // As vmlet's target does before `cont`: the incoming side must have loaded everything.
    const incoming = await dst.q.execute<QueryMigrate>('query-migrate');
    if (incoming.status !== 'completed') {
      const e = await incomingDone;
      if (e.data.status !== 'completed') throw new Error('raw incoming migration failed on the target');
    }
    await dst.q.execute('cont');
    const t1 = performance.now();

    const { status } = await dst.q.execute<{ status: string }>('query-status');
    if (status !== 'running') throw new Error(`raw target is ${status} after cont`);
    return {
      wallMs: t1 - t0,
      targetLaunchMs,
      streamMs: tc - tm,
      finishMs: t1 - tc,
      totalTimeMs: info['total-time'] ?? NaN,
      downtimeMs: info.downtime ?? NaN,
      transferredBytes: info.ram?.transferred ?? NaN,
      polls,
    };
  } finally {
    for (const g of guests) {
      await g.quit();
      s.raws.delete(g);
    }
    await rm(srcPaths.runDir, { recursive: true, force: true });
    await rm(dstPaths.runDir, { recursive: true, force: true });
  }
}

async function run(ctx: BenchContext): Promise<BenchOutcome> {
  const runs = Math.min(ctx.runs, MAX_RUNS);
  const qemuBinary = await whichBinary(process.env.BENCH_QEMU ?? 'qemu-system-x86_64');
  const root = await benchDir(tmpdir(), 'vmlet-bench-g-');
  ctx.cleanup.defer('remove temp dir', () => rm(root, { recursive: true, force: true }));
  // Run dirs on a tmpfs, as /run is on a node (see runtime-dir.ts), like the core benchmark's.
  const runtime = await runtimeBase();
  const runRoot = await benchDir(runtime.dir, 'vmlet-bench-g-');
  ctx.cleanup.defer('remove run dirs', () => rm(runRoot, { recursive: true, force: true }));
  ctx.cleanup.defer('kill stray QEMUs', async () => {
    const killed = [...(await killStrayQemus(root)), ...(await killStrayQemus(runRoot))];
    if (killed.length > 0) ctx.log(`killed stray QEMU pids ${killed.join(', ')}`);
  });
  const { raws, spawner } = rawSide(ctx.cleanup);

  const daemons: Record<'a' | 'b', { daemon: BenchDaemon; address: string }> = {} as never;
  for (const name of ['a', 'b'] as const) {
    const address = `127.0.0.1:${await freePort('127.0.0.1')}`;
    const daemon = await BenchDaemon.start({
      repo: ctx.repo,
      root: join(root, name),
      runDir: join(runRoot, name),
      qemuBinary,
      // Plaintext loopback TCP (--insecure-tcp); QEMU's migration stream binds the host of the first TCP listener.
      extraArgs: ['--grpc-listen', address, '--insecure-tcp', '--node-name', `bench-${name}`],
    });
    const logCopy = join(ctx.resultsDir, `migration-daemon-${name}.log`);
    ctx.cleanup.defer(`keep daemon ${name}'s log`, () => copyFile(daemon.logFile, logCopy));
    ctx.cleanup.defer(`stop daemon ${name}`, () => daemon.stop());
    ctx.cleanup.defer(`delete VMs on ${name}`, () => daemon.deleteAllVms());
    daemons[name] = { daemon, address };
  }
  const { a, b } = { a: daemons.a.daemon, b: daemons.b.daemon };
  const info = await a.nodeInfo();
  if (info.accelerator !== 'kvm' && info.accelerator !== 'tcg') throw new Error(`unknown accelerator ${info.accelerator}`);
  const s: Setup = { ctx, a, b, bAddress: daemons.b.address, rawRoot: join(root, 'raw'), rawRunRoot: join(runRoot, 'raw'), qemuBinary, accelerator: info.accelerator, raws, spawner };
  ctx.log(`migration: ${runs} runs + 1 warm-up each side (runs capped at ${MAX_RUNS}), ${MEMORY_MIB} MiB guest, QEMU ${info.qemuVersion}, ${info.accelerator}; A ${daemons.a.address}, B ${daemons.b.address}`);

  const loadBefore = loadavg();
  const vmlet: VmletSample[] = [];
  const raw: RawSample[] = [];
  for (let i = 0; i <= runs; i++) {
    const label = i === 0 ? 'warm-up' : `${i}/${runs}`;
    const order = i % 2 === 0 ? (['vmlet', 'raw'] as const) : (['raw', 'vmlet'] as const);
    let v: VmletSample | undefined;
    let r: RawSample | undefined;
    for (const side of order) {
      ctx.cleanup.checkOpen();
      if (side === 'vmlet') v = await vmletRun(s, `bench-mig-v-${String(i).padStart(2, '0')}`);
      else r = await rawRun(s, `bench-mig-r-${String(i).padStart(2, '0')}`);
      await delay(SETTLE_MS);
    }
    if (i > 0) {
      vmlet.push(v!);
      raw.push(r!);
    }
    ctx.log(
      `migration ${label}: vmlet wall ${ms(v!.wallMs)} (total ${v!.qemuTotalTimeMs ?? '-'} ms, downtime ${v!.downtimeMs} ms), raw wall ${ms(r!.wallMs)} (total ${r!.totalTimeMs} ms, downtime ${r!.downtimeMs} ms)`,
    );
  }
  const loadAfter = loadavg();
  await a.deleteAllVms();
  await b.deleteAllVms();
  await a.stop();
  await b.stop();
  const breakdown = migrationBreakdown(await a.logText(), await b.logText(), vmlet.map((x) => x.id));

  const vWall = summarise(vmlet.map((x) => x.wallMs));
  const rWall = summarise(raw.map((x) => x.wallMs));
  const ratio = Math.round((vWall.median / rWall.median) * 1000) / 1000;
  const rWallPlusLaunch = summarise(raw.map((x) => x.wallMs + x.targetLaunchMs));
  const ratioWithLaunch = Math.round((vWall.median / rWallPlusLaunch.median) * 1000) / 1000;
  const targetRunning = vmlet.flatMap((x) => (x.targetRunningMs === undefined ? [] : [x.targetRunningMs]));
  const qemuTotals = vmlet.flatMap((x) => (x.qemuTotalTimeMs === undefined ? [] : [x.qemuTotalTimeMs]));
  const argvDiffs = [...new Set(vmlet.flatMap((x) => (x.argvDiff ? [x.argvDiff] : [])))];

  const result = {
    benchmark: 'migration',
    timestamp: new Date().toISOString(),
    node: process.version,
    qemuVersion: info.qemuVersion,
    qemuBinary,
    accelerator: info.accelerator,
    runs,
    requestedRuns: ctx.runs,
    runsNote: `runs = min(--runs, ${MAX_RUNS}): each run boots two guests (one per side) under ${info.accelerator} and migrates 256 MiB twice`,
    warmupRuns: 1,
    hostLoad: { before: loadBefore, after: loadAfter },
    method: {
      guest: `demo guest: 1 vCPU, ${MEMORY_MIB} MiB, .guest/vmlinuz + initrd.img, no disks (no NBD mirroring), no NICs; migrated once it printed ${READY_LINE}`,
      nodes: 'two vmlet daemons on this host, own state/run dirs, each also on --grpc-listen 127.0.0.1:<free port> (loopback: plaintext with --insecure-tcp, no TLS); QEMU migrates over tcp:127.0.0.1',
      vmlet: 'CreateVm{start} on A, wait for the ready line; timed: MigrationService.MigrateVm{id, target: B} then WatchMigration until SUCCEEDED (client-side wall); then DeleteVm on B (not timed)',
      raw: `same binary, buildQemuArgv argv (source startPaused + cont, target startPaused + incoming); target spawned and QMP-connected before the clock starts; timed: target migrate-set-capabilities [events] + migrate-incoming tcp:127.0.0.1:<free port>, source migrate-set-capabilities [events] + migrate, query-migrate every ${PROGRESS_POLL_MS} ms until completed, target query-migrate (completed) + cont`,
      pollMs: `${PROGRESS_POLL_MS} (PROGRESS_POLL_MS of src/migration/source.ts, used on both sides)`,
      order: 'vmlet and raw runs alternate, who goes first alternating per round; warm-up round not recorded',
      settleMs: SETTLE_MS,
      runDirs: runtime,
    },
    vmlet: {
      wallMs: vWall,
      migrateCallMs: summarise(vmlet.map((x) => x.migrateCallMs)),
      targetRunningMs: targetRunning.length ? summarise(targetRunning) : null,
      totalTimeMs: summarise(vmlet.map((x) => x.totalTimeMs)),
      qemuTotalTimeMs: qemuTotals.length ? summarise(qemuTotals) : null,
      downtimeMs: summarise(vmlet.map((x) => x.downtimeMs)),
      dataTotalBytes: vmlet[0]?.dataTotalBytes,
      dataProcessedBytes: summarise(vmlet.map((x) => x.dataProcessedBytes)),
      targetArgvMatchesRaw: argvDiffs.length === 0,
      ...(argvDiffs.length ? { targetArgvDifferences: argvDiffs } : {}),
      serverBreakdownMs: breakdown ?? null,
      runs: vmlet.map(({ id, wallMs, stream }) => ({ id, wallMs: Math.round(wallMs * 10) / 10, stream })),
      /** Stream segment of the breakdown minus QEMU's total-time: the poll granularity, the reply to A, the migrate command, the commit write. */
      streamOverQemuTotalMs: breakdown && qemuTotals.length ? Math.round((breakdown.streamMs.median - median(qemuTotals)) * 10) / 10 : null,
    },
    raw: {
      wallMs: rWall,
      targetLaunchMs: summarise(raw.map((x) => x.targetLaunchMs)),
      wallPlusTargetLaunchMs: rWallPlusLaunch,
      streamMs: summarise(raw.map((x) => x.streamMs)),
      finishMs: summarise(raw.map((x) => x.finishMs)),
      totalTimeMs: summarise(raw.map((x) => x.totalTimeMs)),
      downtimeMs: summarise(raw.map((x) => x.downtimeMs)),
      transferredBytes: summarise(raw.map((x) => x.transferredBytes)),
      polls: summarise(raw.map((x) => x.polls)),
      /** migrate → completed seen minus QEMU's total-time: the poll granularity. */
      streamOverQemuTotalMs: Math.round((median(raw.map((x) => x.streamMs)) - median(raw.map((x) => x.totalTimeMs))) * 10) / 10,
    },
    ratio,
    target: TARGET_RATIO,
    meetsTarget: ratio <= TARGET_RATIO,
    ratioAgainstRawWithTargetLaunch: ratioWithLaunch,
    notes: [
      'ratio = vmlet.wallMs.median / raw.wallMs.median',
      "vmlet's wall ends at SUCCEEDED, which comes after FinishIncoming (target cont) and after the source QEMU quit and its files were removed; the raw wall ends at the target's cont reply",
      "vmlet's wall includes preparing the target (PrepareIncoming spawns the target QEMU); the raw wall starts with the target already spawned: ratioAgainstRawWithTargetLaunch adds raw.targetLaunchMs to be like for like",
      "vmlet.totalTimeMs is the final message's total_time_ms: MigrationRegistry.update overwrites QEMU's total-time with Date.now() - startedAt on the SUCCEEDED update; vmlet.qemuTotalTimeMs is the value QEMU reported (the message before SUCCEEDED)",
    ],
    daemonLogs: ['bench/results/migration-daemon-a.log', 'bench/results/migration-daemon-b.log'],
  };
  const summary = [
    `wall (median of ${runs}): vmlet ${ms(vWall.median)} (p90 ${ms(vWall.p90)}), raw QMP ${ms(rWall.median)} (p90 ${ms(rWall.p90)})`,
    `ratio ${ratio.toFixed(3)} (target ≤ ${TARGET_RATIO}): ${ratio <= TARGET_RATIO ? 'met' : 'NOT met'}; against raw + target launch (${ms(result.raw.targetLaunchMs.median)}): ${ratioWithLaunch.toFixed(3)}`,
    `QEMU total-time: vmlet ${qemuTotals.length ? ms(result.vmlet.qemuTotalTimeMs!.median) : '-'} (final message total_time_ms ${ms(result.vmlet.totalTimeMs.median)}), raw ${ms(result.raw.totalTimeMs.median)}`,
    `downtime: vmlet ${ms(result.vmlet.downtimeMs.median)}, raw ${ms(result.raw.downtimeMs.median)}`,
    ...(breakdown ? [`vmlet breakdown (medians): ${Object.entries(breakdown).map(([k, v]) => `${k} ${ms(v.median)}`).join(', ')}`] : []),
    ...(argvDiffs.length ? [`WARNING: vmlet's target QEMU argv differs from the raw one: ${argvDiffs.join('; ')}`] : []),
  ];
  return { result, summary };
}

export const migrationBenchmark: Benchmark = {
  name: 'migration',
  description: `live migration of a ${MEMORY_MIB} MiB guest between two vmlet daemons vs the same QEMU pair over raw QMP (wall, total, downtime)`,
  run,
};
