/**
 * Benchmark "guest-agent" (issue 18): the Debian cloud image booted from its disk until its QEMU
 * guest agent answers. vmlet: CreateVm{start} until a WatchVms event says status.guest.agent_connected.
 * Raw: the overlay made with the same qemu-img call, QEMU started by hand with the same argv
 * (through the same spawn helper and QMP handshake as the core benchmark), then the agent's
 * socket polled with guest-sync-delimited. Interleaved, with a warm-up round.
 */
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { ClientReadableStream } from '@grpc/grpc-js';
import { processCmdline } from '../src/host/process.js';
import { buildQemuArgv } from '../src/qemu/argv.js';
import { RETRY_MS as VMLET_AGENT_RETRY_MS, SYNC_TIMEOUT_MS as VMLET_AGENT_SYNC_TIMEOUT_MS } from '../src/qemu/guest-agent-watch.js';
import type { Spawner } from '../src/qemu/spawner.js';
import { createOverlay } from '../src/storage/qemu-img.js';
import { vmPaths } from '../src/state/paths.js';
import type { VmEvent__Output } from '../src/api/grpc/generated/vmlet/v1/VmEvent.js';
import type { DiskStatus, VmPaths, VmSpec } from '../src/model/vm.js';
import type { BenchContext, BenchOutcome, Benchmark } from './benchmark.js';
import { waitForAgentSync } from './agent-poll.js';
import { argvDifference, normaliseArgv } from './argv-check.js';
import { BenchDaemon } from './daemon.js';
import { debianGuestSpec, requireDebianImage } from './debian-guest.js';
import { guestAgentReport, type GuestAgentSamples, type RawAgentRun, type VmletAgentRun } from './guest-agent-report.js';
import { killStrayQemus, whichBinary } from './procs.js';
import { rawSide, RawQemu } from './raw-qemu.js';
import { runtimeBase } from './runtime-dir.js';
import { benchDir, settlesWithin } from './util.js';
import { createRunning, deleteGone } from './vmlet-ops.js';

/** One boot under TCG takes about 35 s on a quiet host; a shared one may take several times that. */
const BOOT_TIMEOUT_MS = 300_000;
/** The raw poller's pause between attempts: far finer than vmlet's, so the baseline sees the agent as it comes up. */
const RAW_RETRY_MS = 100;

type Accelerator = 'kvm' | 'tcg';

interface Setup {
  ctx: BenchContext;
  daemon: BenchDaemon;
  rawStateRoot: string;
  rawRunRoot: string;
  qemuBinary: string;
  qemuImg: string;
  image: string;
  accelerator: Accelerator;
  raws: Set<RawQemu>;
  spawner: Spawner;
}

/** The disk as vmlet's prepareDisks makes it: `<disks dir>/<name>.qcow2` on the image. */
const overlayDisks = (spec: VmSpec, paths: VmPaths): DiskStatus[] => spec.disks.map((d) => ({ name: d.name, path: join(paths.disksDir, `${d.name}.qcow2`), format: 'qcow2' }));

const plan = (spec: VmSpec, paths: VmPaths, accelerator: Accelerator): string[] =>
  buildQemuArgv({ spec, paths, accelerator, disks: overlayDisks(spec, paths), nics: [], vhostNet: false, startPaused: true });

/** The argv with what differs by construction (the VM's dirs, its id) replaced by placeholders. */
const normalised = (argv: string[], paths: VmPaths, id: string): string[] =>
  normaliseArgv(
    argv.map((a) => a.replaceAll(paths.stateDir, '<vm-state-dir>')),
    paths.runDir,
    id,
  );

const runId = (kind: string, i: number): string => `bench-ga-${kind}-${String(i).padStart(2, '0')}`;

/** WatchVms{id}: the client-side time of the first event whose status says the agent is connected. */
function agentConnectedEvent(daemon: BenchDaemon, id: string): { at: Promise<number>; cancel(): void } {
  const vms = daemon.clients.vms;
  const stream = vms.watchVms({ id }) as ClientReadableStream<VmEvent__Output>;
  const at = new Promise<number>((resolve, reject) => {
    stream.on('data', (e: VmEvent__Output) => {
      if (e.vm?.status?.guest?.agentConnected === true) resolve(performance.now());
    });
    stream.on('error', (err: Error) => reject(err));
    stream.on('end', () => reject(new Error(`WatchVms of ${id} ended before its agent connected`)));
  });
  at.catch(() => undefined);
  return { at, cancel: () => stream.cancel() };
}

async function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  if (!(await settlesWithin(p, ms))) throw new Error(`${what}: not within ${ms} ms`);
  return p;
}

/** One vmlet boot; checks that its QEMU runs exactly buildQemuArgv's argv; deletes the VM whatever happens. */
async function vmletRun(s: Setup, id: string): Promise<{ run: VmletAgentRun; argv: string[] }> {
  const spec = debianGuestSpec(s.ctx.repo, id);
  const paths = vmPaths(s.daemon.stateDir, s.daemon.runDir, id);
  const watch = agentConnectedEvent(s.daemon, id);
  let pid: number | undefined;
  try {
    const t0 = performance.now();
    const created = await createRunning(s.daemon.clients, spec);
    pid = created.pid;
    const expected = plan(spec, paths, s.accelerator);
    const actual = (await processCmdline(pid)) ?? [];
    if (actual[0] !== s.qemuBinary) throw new Error(`vmlet ran ${actual[0]}, the raw side runs ${s.qemuBinary}: unfair comparison`);
    const diff = argvDifference(actual.slice(1), expected);
    if (diff) throw new Error(`vmlet's QEMU argv is not buildQemuArgv's (${diff}): the raw side would not be comparable; update bench/guest-agent.ts`);
    const at = await withDeadline(watch.at, BOOT_TIMEOUT_MS, `agent_connected of ${id}`);
    return { run: { id, totalMs: at - t0, createMs: created.ms }, argv: normalised(expected, paths, id) };
  } finally {
    watch.cancel();
    if (pid !== undefined) await deleteGone(s.daemon.clients, id, pid, true);
  }
}

/** One raw boot: overlay, QEMU with the same argv, agent polled; QEMU quit and its files removed whatever happens. */
async function rawRun(s: Setup, id: string): Promise<{ run: RawAgentRun; argv: string[] }> {
  const spec = debianGuestSpec(s.ctx.repo, id);
  const paths = vmPaths(s.rawStateRoot, s.rawRunRoot, id);
  const argv = plan(spec, paths, s.accelerator);
  let qemu: RawQemu | undefined;
  let exited = false;
  try {
    const t0 = performance.now();
    await mkdir(paths.disksDir, { recursive: true, mode: 0o750 });
    await createOverlay(s.qemuImg, overlayDisks(spec, paths)[0]!.path, s.image, 'qcow2');
    const tOverlay = performance.now();
    const launched = await RawQemu.launch({ binary: s.qemuBinary, argv, paths, spawner: s.spawner }, (q) => {
      s.raws.add((qemu = q));
      void q.exited.then(() => (exited = true));
    });
    const agent = await waitForAgentSync(paths.guestAgentSocket, {
      syncTimeoutMs: VMLET_AGENT_SYNC_TIMEOUT_MS,
      retryMs: RAW_RETRY_MS,
      timeoutMs: BOOT_TIMEOUT_MS,
      stopIf: () => (exited ? 'QEMU exited' : undefined),
    });
    const run: RawAgentRun = { totalMs: agent.at - t0, overlayMs: tOverlay - t0, launchMs: launched.timings.totalMs, attempts: agent.attempts };
    return { run, argv: normalised(argv, paths, id) };
  } finally {
    await qemu?.quit();
    if (qemu) s.raws.delete(qemu);
    await rm(paths.runDir, { recursive: true, force: true });
    await rm(paths.stateDir, { recursive: true, force: true });
  }
}

async function measure(s: Setup): Promise<GuestAgentSamples> {
  const samples: GuestAgentSamples = { vmlet: [], raw: [], argv: [] };
  const { runs } = s.ctx;
  // Round 0 is the warm-up (page cache of the image, JIT, gRPC channel); it is not recorded.
  for (let i = 0; i <= runs; i++) {
    const label = i === 0 ? 'warm-up' : `${i}/${runs}`;
    // Alternate who goes first, so neither side always boots right after the other's teardown.
    const order = i % 2 === 0 ? (['vmlet', 'raw'] as const) : (['raw', 'vmlet'] as const);
    const argv: Partial<Record<'vmlet' | 'raw', string[]>> = {};
    for (const side of order) {
      s.ctx.cleanup.checkOpen();
      if (side === 'vmlet') {
        const r = await vmletRun(s, runId('v', i));
        argv.vmlet = r.argv;
        if (i > 0) samples.vmlet.push(r.run);
      } else {
        const r = await rawRun(s, runId('r', i));
        argv.raw = r.argv;
        if (i > 0) samples.raw.push(r.run);
      }
    }
    const diff = argvDifference(argv.vmlet ?? [], argv.raw ?? []);
    if (diff) throw new Error(`the raw QEMU's argv is not vmlet's, paths and id aside (${diff})`);
    samples.argv = argv.vmlet ?? [];
    const ms = (x: number | undefined): string => (x === undefined ? '-' : `${(x / 1000).toFixed(2)} s`);
    s.ctx.log(`boot→agent ${label}: vmlet ${ms(samples.vmlet.at(-1)?.totalMs)}, raw ${ms(samples.raw.at(-1)?.totalMs)}`);
  }
  return samples;
}

async function run(ctx: BenchContext): Promise<BenchOutcome> {
  const image = await requireDebianImage(ctx.repo);
  const qemuBinary = await whichBinary(process.env.BENCH_QEMU ?? 'qemu-system-x86_64');
  const qemuImg = await whichBinary('qemu-img');
  const root = await benchDir(tmpdir(), 'vmlet-bench-ga-');
  ctx.cleanup.defer('remove temp dir', () => rm(root, { recursive: true, force: true }));
  const runtime = await runtimeBase();
  const runRoot = await benchDir(runtime.dir, 'vmlet-bench-ga-');
  ctx.cleanup.defer('remove run dirs', () => rm(runRoot, { recursive: true, force: true }));
  ctx.cleanup.defer('kill stray QEMUs', async () => {
    const killed = [...(await killStrayQemus(root)), ...(await killStrayQemus(runRoot))];
    if (killed.length > 0) ctx.log(`killed stray QEMU pids ${killed.join(', ')}`);
  });
  const { raws, spawner } = rawSide(ctx.cleanup);
  const daemon = await BenchDaemon.start({ repo: ctx.repo, root: join(root, 'vmlet'), runDir: join(runRoot, 'vmlet'), qemuBinary, extraArgs: ['--qemu-img', qemuImg] });
  ctx.cleanup.defer('keep the daemon log', () => copyFile(daemon.logFile, join(ctx.resultsDir, 'guest-agent-daemon.log')));
  ctx.cleanup.defer('stop the daemon', () => daemon.stop());
  ctx.cleanup.defer('delete VMs', () => daemon.deleteAllVms());

  const info = await daemon.nodeInfo();
  if (info.accelerator !== 'kvm' && info.accelerator !== 'tcg') throw new Error(`unknown accelerator ${info.accelerator}`);
  const setup: Setup = {
    ctx,
    daemon,
    rawStateRoot: join(root, 'raw'),
    rawRunRoot: join(runRoot, 'raw'),
    qemuBinary,
    qemuImg,
    image,
    accelerator: info.accelerator,
    raws,
    spawner,
  };
  ctx.log(`guest-agent: ${ctx.runs} runs + 1 warm-up of each side, QEMU ${info.qemuVersion}, ${info.accelerator}; one boot takes about 35 s under TCG`);
  const loadBefore = loadavg();
  const samples = await measure(setup);
  const loadAfter = loadavg();
  return guestAgentReport({
    info,
    qemuBinary,
    runs: ctx.runs,
    samples,
    cadence: { vmletRetryMs: VMLET_AGENT_RETRY_MS, vmletSyncTimeoutMs: VMLET_AGENT_SYNC_TIMEOUT_MS, rawRetryMs: RAW_RETRY_MS, rawSyncTimeoutMs: VMLET_AGENT_SYNC_TIMEOUT_MS },
    runDirs: runtime,
    load: { before: loadBefore, after: loadAfter },
  });
}

export const guestAgentBenchmark: Benchmark = {
  name: 'guest-agent',
  description: 'Debian cloud image: CreateVm{start} → status.guest.agent_connected through vmlet vs the same argv by hand, agent socket polled',
  defaultRuns: 3,
  run,
};
