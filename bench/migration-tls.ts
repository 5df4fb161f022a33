/**
 * Benchmark "migration-tls": the same live migration (an idle 256 MiB demo guest with a mirrored
 * overlay disk) between two vmlet daemons whose QEMU streams use TLS, and between two daemons
 * that differ only by --insecure-migration. All four daemons have TLS on their gRPC listeners.
 * TLS and plaintext runs alternate.
 */
import { copyFile, mkdir, rm, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { setTimeout as delay } from 'node:timers/promises';
import type { ClientReadableStream } from '@grpc/grpc-js';
import { unary } from '../src/api/grpc/client.js';
import type { MigrateVmRequest } from '../src/api/grpc/generated/vmlet/v1/MigrateVmRequest.js';
import type { Migration__Output } from '../src/api/grpc/generated/vmlet/v1/Migration.js';
import type { Vm__Output } from '../src/api/grpc/generated/vmlet/v1/Vm.js';
import { freePort } from '../src/host/free-port.js';
import { vmPaths } from '../src/state/paths.js';
import type { VmSpec } from '../src/model/vm.js';
import { makeTestCerts } from '../test/support/certs.js';
import type { BenchContext, BenchOutcome, Benchmark } from './benchmark.js';
import { BenchDaemon } from './daemon.js';
import { demoGuestSpec } from './guest.js';
import { killStrayQemus, whichBinary } from './procs.js';
import { runtimeBase } from './runtime-dir.js';
import { ms, summarise } from './stats.js';
import { createRunning, deleteGone } from './vmlet-ops.js';
import { benchDir, waitForText } from './util.js';

/** Issue 20's bounds: TLS may take at most this many times the plaintext wall time... */
export const TARGET_RATIO = 1.3;
/** ...and keep the guest's downtime within this. */
export const TARGET_DOWNTIME_MS = 50;
const MAX_RUNS = 5;
const MEMORY_MIB = 256;
const DISK_MIB = 64;
const READY_LINE = 'VMLET-GUEST-READY';
const BOOT_TIMEOUT_MS = 180_000;
const MIGRATION_TIMEOUT_MS = 300_000;
const CALL_TIMEOUT_MS = 60_000;
const SETTLE_MS = 500;

type Mode = 'tls' | 'plain';
interface Pair {
  a: BenchDaemon;
  b: BenchDaemon;
  bAddress: string;
}
interface Sample {
  wallMs: number;
  downtimeMs: number;
  qemuTotalTimeMs: number | undefined;
  diskBytes: number;
}

function watchToEnd(daemon: BenchDaemon, id: string): Promise<Migration__Output[]> {
  const m = daemon.clients.migrations;
  return new Promise((resolve, reject) => {
    const seen: Migration__Output[] = [];
    const stream = m.watchMigration({ id }, { deadline: Date.now() + MIGRATION_TIMEOUT_MS }) as ClientReadableStream<Migration__Output>;
    stream.on('data', (x: Migration__Output) => seen.push(x));
    stream.on('end', () => resolve(seen));
    stream.on('error', reject);
  });
}

async function migrateOnce(ctx: BenchContext, pair: Pair, base: string, id: string): Promise<Sample> {
  const spec: VmSpec = { ...demoGuestSpec(ctx.repo, id), memoryMib: MEMORY_MIB, disks: [{ name: 'data', imagePath: base, overlay: true, readonly: false }] };
  await createRunning(pair.a.clients, spec);
  await waitForText(vmPaths(pair.a.stateDir, pair.a.runDir, id).consoleLog, READY_LINE, BOOT_TIMEOUT_MS);
  const migrations = pair.a.clients.migrations;
  const t0 = performance.now();
  await unary<MigrateVmRequest, Migration__Output>(migrations.migrateVm.bind(migrations), { id, target: pair.bAddress }, { deadline: Date.now() + CALL_TIMEOUT_MS });
  const messages = await watchToEnd(pair.a, id);
  const wallMs = performance.now() - t0;
  const final = messages.at(-1);
  if (final?.phase !== 'MIGRATION_PHASE_SUCCEEDED') throw new Error(`migration of ${id} ended ${final?.phase}: ${final?.reason}`);
  const before = messages.at(-2);
  const vms = pair.b.clients.vms;
  const moved = await unary<{ id: string }, Vm__Output>(vms.getVm.bind(vms), { id }, { deadline: Date.now() + CALL_TIMEOUT_MS });
  await deleteGone(pair.b.clients, id, Number(moved.status?.pid ?? 0), true);
  return {
    wallMs,
    downtimeMs: Number(final.downtimeMs),
    qemuTotalTimeMs: before?.phase === 'MIGRATION_PHASE_RUNNING' ? Number(before.totalTimeMs) : undefined,
    diskBytes: Number(final.diskTotalBytes),
  };
}

async function run(ctx: BenchContext): Promise<BenchOutcome> {
  const runs = Math.min(ctx.runs, MAX_RUNS);
  const qemuBinary = await whichBinary(process.env.BENCH_QEMU ?? 'qemu-system-x86_64');
  const root = await benchDir(tmpdir(), 'vmlet-bench-t-');
  ctx.cleanup.defer('remove temp dir', () => rm(root, { recursive: true, force: true }));
  const runtime = await runtimeBase();
  const runRoot = await benchDir(runtime.dir, 'vmlet-bench-t-');
  ctx.cleanup.defer('remove run dirs', () => rm(runRoot, { recursive: true, force: true }));
  ctx.cleanup.defer('kill stray QEMUs', async () => {
    const killed = [...(await killStrayQemus(root)), ...(await killStrayQemus(runRoot))];
    if (killed.length > 0) ctx.log(`killed stray QEMU pids ${killed.join(', ')}`);
  });
  const certDir = join(root, 'certs');
  const images = join(root, 'images');
  await mkdir(certDir, { recursive: true });
  await mkdir(images, { recursive: true });
  const certs = await makeTestCerts(certDir);
  const base = join(images, 'data-base.raw');
  await promisify(execFile)('truncate', ['-s', `${DISK_MIB}M`, base]);
  // The nodes call each other with the node certificate (CN=server): peers.
  const policy = join(certDir, 'authz.yaml');
  await writeFile(policy, 'rules:\n  - role: peer\n    match: { cn: server }\n');
  const tls = ['--tls-cert', certs.serverCert, '--tls-key', certs.serverKey, '--tls-ca', certs.ca, '--authz', policy];

  const pairs = {} as Record<Mode, Pair>;
  for (const mode of ['tls', 'plain'] as const) {
    const daemons: BenchDaemon[] = [];
    const addresses: string[] = [];
    for (const side of ['a', 'b']) {
      const name = `${mode}-${side}`;
      const address = `127.0.0.1:${await freePort('127.0.0.1')}`;
      const daemon = await BenchDaemon.start({
        repo: ctx.repo,
        root: join(root, name),
        runDir: join(runRoot, name),
        qemuBinary,
        imageRoots: [images],
        extraArgs: ['--grpc-listen', address, '--node-name', `bench-${name}`, ...tls, ...(mode === 'plain' ? ['--insecure-migration'] : [])],
      });
      ctx.cleanup.defer(`keep daemon ${name}'s log`, () => copyFile(daemon.logFile, join(ctx.resultsDir, `migration-tls-daemon-${name}.log`)));
      ctx.cleanup.defer(`stop daemon ${name}`, () => daemon.stop());
      ctx.cleanup.defer(`delete VMs on ${name}`, () => daemon.deleteAllVms());
      daemons.push(daemon);
      addresses.push(address);
    }
    pairs[mode] = { a: daemons[0]!, b: daemons[1]!, bAddress: addresses[1]! };
  }
  const info = await pairs.tls.a.nodeInfo();
  ctx.log(`migration-tls: ${runs} runs + 1 warm-up per mode, ${MEMORY_MIB} MiB guest + ${DISK_MIB} MiB mirrored overlay, QEMU ${info.qemuVersion}, ${info.accelerator}`);

  const loadBefore = loadavg();
  const samples: Record<Mode, Sample[]> = { tls: [], plain: [] };
  for (let i = 0; i <= runs; i++) {
    const order: Mode[] = i % 2 === 0 ? ['tls', 'plain'] : ['plain', 'tls'];
    const line: string[] = [];
    for (const mode of order) {
      ctx.cleanup.checkOpen();
      const s = await migrateOnce(ctx, pairs[mode], base, `bench-mt-${mode}-${String(i).padStart(2, '0')}`);
      if (i > 0) samples[mode].push(s);
      line.push(`${mode} ${ms(s.wallMs)} (downtime ${s.downtimeMs} ms)`);
      await delay(SETTLE_MS);
    }
    ctx.log(`migration-tls ${i === 0 ? 'warm-up' : `${i}/${runs}`}: ${line.join(', ')}`);
  }
  const loadAfter = loadavg();

  const tlsWall = summarise(samples.tls.map((x) => x.wallMs));
  const plainWall = summarise(samples.plain.map((x) => x.wallMs));
  const tlsDowntime = summarise(samples.tls.map((x) => x.downtimeMs));
  const plainDowntime = summarise(samples.plain.map((x) => x.downtimeMs));
  const ratio = Math.round((tlsWall.median / plainWall.median) * 1000) / 1000;
  const meetsTarget = ratio <= TARGET_RATIO && tlsDowntime.median <= TARGET_DOWNTIME_MS;
  const result = {
    benchmark: 'migration-tls',
    timestamp: new Date().toISOString(),
    node: process.version,
    qemuVersion: info.qemuVersion,
    accelerator: info.accelerator,
    runs,
    warmupRuns: 1,
    hostLoad: { before: loadBefore, after: loadAfter },
    method: {
      guest: `demo guest: 1 vCPU, ${MEMORY_MIB} MiB, a ${DISK_MIB} MiB raw base with a per-VM overlay (mirrored over NBD), no NICs; migrated once idle (${READY_LINE} printed)`,
      nodes: 'four vmlet daemons on this host with TLS gRPC listeners on 127.0.0.1; the plain pair adds --insecure-migration, so only the QEMU streams differ',
      timed: 'MigrateVm{id, target} until WatchMigration says SUCCEEDED (client-side wall); DeleteVm on the target afterwards, not timed',
      order: 'TLS and plaintext runs alternate, who goes first alternating per round; warm-up round not recorded',
    },
    tls: { wallMs: tlsWall, downtimeMs: tlsDowntime, qemuTotalTimeMs: summarise(samples.tls.flatMap((x) => (x.qemuTotalTimeMs === undefined ? [] : [x.qemuTotalTimeMs]))), diskBytes: samples.tls[0]?.diskBytes },
    plain: { wallMs: plainWall, downtimeMs: plainDowntime, qemuTotalTimeMs: summarise(samples.plain.flatMap((x) => (x.qemuTotalTimeMs === undefined ? [] : [x.qemuTotalTimeMs]))), diskBytes: samples.plain[0]?.diskBytes },
    ratio,
    target: { ratio: TARGET_RATIO, downtimeMs: TARGET_DOWNTIME_MS },
    meetsTarget,
  };
  const summary = [
    `wall (median of ${runs}): TLS ${ms(tlsWall.median)}, plaintext ${ms(plainWall.median)}: ratio ${ratio.toFixed(3)} (target ≤ ${TARGET_RATIO})`,
    `downtime (median): TLS ${ms(tlsDowntime.median)}, plaintext ${ms(plainDowntime.median)} (target ≤ ${TARGET_DOWNTIME_MS} ms): ${meetsTarget ? 'met' : 'NOT met'}`,
  ];
  return { result, summary };
}

export const migrationTlsBenchmark: Benchmark = {
  name: 'migration-tls',
  description: `live migration of a ${MEMORY_MIB} MiB guest with a mirrored overlay, QEMU streams over TLS vs --insecure-migration`,
  run,
};
