/**
 * Benchmark "agent-priority" (issue 16, point 3): does vmlet keep answering while every vCPU of
 * every guest is busy? N one-vCPU TCG guests (default 40; $AGENT_PRIORITY_VMS) spin
 * `while :; do :; done` once booted, each QEMU in its own cell under a --cgroup-parent of the
 * benchmark's own, and the daemon in a top-level cgroup of its own beside it (as systemd runs
 * vmlet.service beside vmlet.slice). Measured: ListVms, GetVm and GET /metrics (client side, paced), the daemon's
 * own timing of each call and the QMP round trips a scrape costs; then a kill -9 of the daemon
 * and a restart on the same dirs: time to the first ListVms answer and until every VM is reported
 * RUNNING with the pid it had. The issue's targets are printed next to the figures, never asserted.
 */
import * as grpc from '@grpc/grpc-js';
import { copyFile, readdir, readFile, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { unary } from '../src/api/grpc/client.js';
import type { GetVmRequest } from '../src/api/grpc/generated/vmlet/v1/GetVmRequest.js';
import type { ListVmsRequest } from '../src/api/grpc/generated/vmlet/v1/ListVmsRequest.js';
import type { ListVmsResponse__Output } from '../src/api/grpc/generated/vmlet/v1/ListVmsResponse.js';
import type { Vm__Output } from '../src/api/grpc/generated/vmlet/v1/Vm.js';
import type { VmServiceClient } from '../src/api/grpc/generated/vmlet/v1/VmService.js';
import { vmletV1 } from '../src/api/grpc/proto.js';
import { isAlive, processCmdline } from '../src/host/process.js';
import { mapBounded } from '../src/metrics/bounded.js';
import { DEFAULT_SCRAPE_CONCURRENCY } from '../src/metrics/vmi-collector.js';
import { CLOCK_TICKS_PER_SECOND, readProcStat, readResidentBytes, readThreadCpu } from '../src/metrics/procfs.js';
import { vmPaths } from '../src/state/paths.js';
import type { BenchContext, BenchOutcome, Benchmark } from './benchmark.js';
import { BenchDaemon, type DaemonOptions } from './daemon.js';
import { demoGuestSpec } from './guest.js';
import { loggedAt, parseLogLines, type LogLine } from './log-lines.js';
import { killStrayQemus, threadTimes, whichBinary } from './procs.js';
import { runtimeBase } from './runtime-dir.js';
import { ms, summarise, type Stats } from './stats.js';
import { benchDir, errorText } from './util.js';
import { cgroupMounts, leaveTopCgroup, removeCgroupTree } from './cgroups.js';
import { createRunning, deleteGone } from './vmlet-ops.js';

/** Guests when $AGENT_PRIORITY_VMS does not say: the issue's figure. */
const DEFAULT_VMS = 40;
/** CreateVm{start: true} calls in flight: 40 TCG starts at once on 2 cores can time a start out. */
const CREATE_CONCURRENCY = 4;
/** The last guests boot on a sliver of CPU, the others already spinning. */
const BOOT_TIMEOUT_MS = 30 * 60_000;
/** A booting guest whose console is silent this long is taken as stalled. */
const SILENT_CONSOLE_MS = 3 * 60_000;
const MAX_REPLACED = 3;
/**
 * A guest still booting this long after the last other guest got ready is taken as crawling:
 * one was seen printing RCU stall reports for good, its console growing, never ready.
 */
const LAGGARD_MS = 10 * 60_000;
/** Between two measured calls, so each call finds the daemon idle, as a controller's would. */
const PACE_MS = 20;
/** ListVms polls after the restart: interval and how long to keep going. */
const PROBE_INTERVAL_MS = 10;
const RESTART_DEADLINE_MS = 120_000;
const READY_LINE = 'VMLET-GUEST-READY';
const SPIN = 'while :; do :; done';
const TARGETS = { listVmsP50Ms: 5, metricsMs: 250, restartAllAdoptedMs: 1000 } as const;

/** Which series each QMP query of the metrics poll feeds (src/metrics/vmi-collector.ts, qmp-poll.ts: every 10 s per QEMU, not per scrape). */
const QMP_SERIES: Record<string, string> = {
  'query-cpus-fast': 'kubevirt_vmi_vcpu_seconds_total, kubevirt_vmi_vcpu_delay_seconds_total (vCPU thread ids)',
  'query-blockstats': 'kubevirt_vmi_storage_* (drives)',
  'qom-get': 'kubevirt_vmi_memory_{available,usable,unused,cached}_bytes, swap, page faults (balloon guest-stats)',
};

function vmCount(): number {
  const raw = process.env.AGENT_PRIORITY_VMS;
  const n = raw === undefined ? DEFAULT_VMS : Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`AGENT_PRIORITY_VMS: must be an integer >= 1, got "${raw}"`);
  return n;
}

// --- cgroups -------------------------------------------------------------------------------------

/** CPU time the parent cgroup (all guests) used so far, ns; undefined where it cannot be read. */
async function parentCpuNs(parent: string): Promise<number | undefined> {
  for (const m of await cgroupMounts()) {
    if (m.type === 'cgroup' && m.options.includes('cpuacct')) {
      const v = Number(await readFile(join(m.dir, parent, 'cpuacct.usage'), 'utf8').catch(() => NaN));
      if (Number.isFinite(v)) return v;
    }
    if (m.type === 'cgroup2') {
      const s = /^usage_usec (\d+)$/m.exec(await readFile(join(m.dir, parent, 'cpu.stat'), 'utf8').catch(() => ''));
      if (s) return Number(s[1]) * 1000;
    }
  }
  return undefined;
}

async function parentCpuShares(parent: string): Promise<string | undefined> {
  for (const m of await cgroupMounts()) {
    const file = m.type === 'cgroup' && m.options.includes('cpu') ? 'cpu.shares' : m.type === 'cgroup2' ? 'cpu.weight' : undefined;
    const text = file && (await readFile(join(m.dir, parent, file), 'utf8').catch(() => undefined));
    if (text) return `${file} ${text.trim()}`;
  }
  return undefined;
}

// --- processes -----------------------------------------------------------------------------------

/** Guest QEMUs on this host that are not the benchmark's (other jobs compete for the same CPUs). */
async function otherQemus(mine: readonly string[]): Promise<number> {
  let n = 0;
  for (const entry of await readdir('/proc')) {
    const cmdline = /^\d+$/.test(entry) ? await processCmdline(Number(entry)) : undefined;
    if (cmdline?.[0]?.includes('qemu-system') && !cmdline.some((a) => mine.some((m) => a.includes(m)))) n++;
  }
  return n;
}

async function qemuCpuSeconds(pid: number): Promise<number> {
  const s = await readProcStat(pid);
  return (s.utimeTicks + s.stimeTicks) / CLOCK_TICKS_PER_SECOND;
}

/** The vCPU threads of a QEMU (named "CPU n/TCG" or "CPU n/KVM"). */
async function vcpuThreads(pid: number): Promise<number[]> {
  const tids: number[] = [];
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    const comm = await readFile(`/proc/${pid}/task/${tid}/comm`, 'utf8').catch(() => '');
    if (comm.startsWith('CPU ')) tids.push(Number(tid));
  }
  return tids;
}

// --- calls ---------------------------------------------------------------------------------------

/** One warm-up call, then `runs` timed calls, PACE_MS apart. */
async function timeCalls(runs: number, call: (i: number) => Promise<unknown>): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i <= runs; i++) {
    const t0 = performance.now();
    await call(i);
    if (i > 0) samples.push(performance.now() - t0);
    await delay(PACE_MS);
  }
  return samples;
}

function listVms(vms: VmServiceClient, timeoutMs = 30_000): Promise<ListVmsResponse__Output> {
  return unary<ListVmsRequest, ListVmsResponse__Output>(vms.listVms.bind(vms), {}, { deadline: Date.now() + timeoutMs });
}

async function scrape(url: string): Promise<string> {
  const res = await fetch(url);
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET ${url}: HTTP ${res.status}`);
  return text;
}

/** Label value → sample value of one series of an exposition (e.g. the _sum of a histogram by command). */
function byLabel(text: string, series: string, label: string, extra = ''): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of text.matchAll(new RegExp(`^${series}\\{([^}]*)\\} (\\S+)$`, 'gm'))) {
    const labels = m[1]!;
    if (extra && !labels.includes(extra)) continue;
    const v = new RegExp(`${label}="([^"]*)"`).exec(labels)?.[1];
    if (v !== undefined) out.set(v, Number(m[2]));
  }
  return out;
}

const scrapeErrors = (text: string): number => Number(/^vmlet_scrape_errors_total (\S+)$/m.exec(text)?.[1] ?? NaN);

interface QmpCost {
  commands: number;
  meanMs: number;
  /** Round trips at or below each bucket bound (seconds), over the measured scrapes. */
  cumulative: Record<string, number>;
  feeds: string;
}

/** QMP round trips between two expositions, by command, from vmlet_qmp_command_duration_seconds. */
function qmpCosts(before: string, after: string): Record<string, QmpCost> {
  const h = 'vmlet_qmp_command_duration_seconds';
  const [sum0, sum1, n0, n1] = [byLabel(before, `${h}_sum`, 'command'), byLabel(after, `${h}_sum`, 'command'), byLabel(before, `${h}_count`, 'command'), byLabel(after, `${h}_count`, 'command')];
  const costs: Record<string, QmpCost> = {};
  for (const [command, count] of n1) {
    const commands = count - (n0.get(command) ?? 0);
    if (commands <= 0) continue;
    const extra = `command="${command}"`;
    const [b0, b1] = [byLabel(before, `${h}_bucket`, 'le', extra), byLabel(after, `${h}_bucket`, 'le', extra)];
    const cumulative = Object.fromEntries([...b1].map(([le, c]) => [le, c - (b0.get(le) ?? 0)]));
    const meanMs = ((sum1.get(command)! - (sum0.get(command) ?? 0)) / commands) * 1000;
    costs[command] = { commands, meanMs: Math.round(meanMs * 1000) / 1000, cumulative, feeds: QMP_SERIES[command] ?? '' };
  }
  return costs;
}

/** Server-side durations the daemon logged for one gRPC method (lines of the log past `from`). */
function serverMs(log: LogLine[], method: string): Stats | undefined {
  const xs = log.filter((l) => l.method === method && typeof l.durationMs === 'number').map((l) => l.durationMs!);
  return xs.length > 0 ? summarise(xs) : undefined;
}

// --- the steps -----------------------------------------------------------------------------------

interface Guest {
  id: string;
  pid: number;
}

/** CreateVm{start: true} for every id, CREATE_CONCURRENCY at a time; each must come back RUNNING. */
async function createAll(ctx: BenchContext, daemon: BenchDaemon, ids: string[]): Promise<{ guests: Guest[]; createMs: number[] }> {
  const createMs: number[] = [];
  const failures: string[] = [];
  const results = await mapBounded(ids, CREATE_CONCURRENCY, async (id): Promise<Guest | undefined> => {
    if (ctx.cleanup.closing) return undefined;
    try {
      const { ms: t, pid } = await createRunning(daemon.clients, guestSpec(ctx, id));
      createMs.push(t);
      if (createMs.length % 10 === 0) ctx.log(`${createMs.length}/${ids.length} RUNNING (last CreateVm ${ms(t)})`);
      return { id, pid };
    } catch (err) {
      failures.push(`${id}: ${errorText(err)}`);
      return undefined;
    }
  });
  ctx.cleanup.checkOpen();
  if (failures.length > 0) throw new Error(`${failures.length} CreateVm failed: ${failures.join('; ')}`);
  return { guests: results.filter((g) => g !== undefined), createMs };
}

/** A guest that stalled (silent console) or crawled while it booted, and what became of it. */
interface StalledGuest {
  id: string;
  oldPid: number;
  newPid?: number;
  consoleBytes: number;
  lastLine: string;
}

function guestSpec(ctx: BenchContext, id: string): ReturnType<typeof demoGuestSpec> {
  const spec = demoGuestSpec(ctx.repo, id);
  spec.kernel!.cmdline = `console=ttyS0 panic=-1 vmlet.run="${SPIN}"`;
  return spec;
}

/**
 * Waits for the ready line on every console (the spin starts right after it). A guest whose
 * console has not grown for SILENT_CONSOLE_MS, or that is still not ready LAGGARD_MS after the
 * last other guest got ready, is deleted and created again, at most MAX_REPLACED times, and
 * reported: with every other guest spinning the last ones boot on a sliver of CPU, but their
 * consoles still grow; some QEMUs' serial ports have been seen to go silent for good at this
 * point (docs/benchmarks.md), which a reset does not cure, and one guest to crawl on RCU stalls.
 */
async function waitAllReady(ctx: BenchContext, daemon: BenchDaemon, guests: Guest[]): Promise<{ seconds: number; stalled: StalledGuest[] }> {
  const t0 = performance.now();
  const pending = new Map(guests.map((g) => [g.id, { length: -1, since: Date.now() }]));
  const stalled: StalledGuest[] = [];
  const deadline = Date.now() + BOOT_TIMEOUT_MS;
  let lastReadyAt = Date.now();
  const replace = async (id: string, text: string, why: string): Promise<void> => {
    const guest = guests.find((g) => g.id === id)!;
    const entry: StalledGuest = { id, oldPid: guest.pid, consoleBytes: text.length, lastLine: text.trimEnd().split('\n').at(-1)?.trim() ?? '' };
    stalled.push(entry);
    if (stalled.length > MAX_REPLACED) throw new Error(`guests stalled or crawling while booting: ${stalled.map((g) => `${g.id} ("${g.lastLine}")`).join(', ')}`);
    ctx.log(`${id}: ${why} after ${text.length} bytes ("${entry.lastLine}"); deleting and creating it again`);
    await deleteGone(daemon.clients, id, guest.pid, true);
    guest.pid = entry.newPid = (await createRunning(daemon.clients, guestSpec(ctx, id))).pid;
    pending.set(id, { length: -1, since: Date.now() });
  };
  while (pending.size > 0) {
    ctx.cleanup.checkOpen();
    const laggards = Date.now() - lastReadyAt > LAGGARD_MS;
    for (const [id, seen] of [...pending]) {
      const text = await readFile(vmPaths(daemon.stateDir, daemon.runDir, id).consoleLog, 'utf8').catch(() => '');
      if (text.includes(READY_LINE)) {
        pending.delete(id);
        lastReadyAt = Date.now();
      } else if (laggards) await replace(id, text, `not ready ${LAGGARD_MS / 1000} s after the last other guest`);
      else if (text.length !== seen.length) pending.set(id, { length: text.length, since: Date.now() });
      else if (Date.now() - seen.since > SILENT_CONSOLE_MS) await replace(id, text, `console silent for ${SILENT_CONSOLE_MS / 1000} s`);
    }
    if (laggards) lastReadyAt = Date.now();
    if (pending.size === 0) break;
    if (Date.now() > deadline) throw new Error(`guests not booted within ${BOOT_TIMEOUT_MS} ms: ${[...pending.keys()].join(', ')}`);
    await delay(500);
  }
  return { seconds: (performance.now() - t0) / 1000, stalled };
}

interface RestartFigures {
  firstAnswerMs?: number;
  allAdoptedMs?: number;
  /** VMs reported RUNNING with their old pid in the first answer. */
  adoptedAtFirstAnswer?: number;
  /** ListVms attempts until all were adopted (failed ones included). */
  polls: number;
  /** Milliseconds after the spawn at which the new daemon logged these lines (its clock, whole ms). */
  log: Record<string, number | undefined>;
  adoptedLines: number;
  error?: string;
}

/**
 * A client that reconnects every PROBE_INTERVAL_MS and shares no subchannel with other clients:
 * grpc-js's default backoff (1 s and growing) would otherwise decide when the restarted daemon is seen.
 */
function probeClient(socket: string): VmServiceClient {
  return new vmletV1.VmService(socket, grpc.credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1,
    'grpc.initial_reconnect_backoff_ms': PROBE_INTERVAL_MS,
    'grpc.max_reconnect_backoff_ms': PROBE_INTERVAL_MS,
  });
}

/** Starts the daemon again on the same dirs and polls ListVms until every guest is back with its pid. */
async function restart(options: DaemonOptions, socket: string, before: readonly Guest[], logFrom: number, logFile: () => Promise<string>): Promise<{ daemon?: BenchDaemon; figures: RestartFigures }> {
  const pids = new Map(before.map((g) => [g.id, g.pid]));
  const spawnedAt = Date.now();
  const t0 = performance.now();
  let startError: unknown;
  const starting = BenchDaemon.start(options).catch((err: unknown) => void (startError = err));
  const probe = probeClient(socket);
  const figures: RestartFigures = { polls: 0, log: {}, adoptedLines: 0 };
  try {
    while (performance.now() - t0 < RESTART_DEADLINE_MS && startError === undefined) {
      figures.polls++;
      try {
        const { vms } = await listVms(probe, 1000);
        const t = performance.now() - t0;
        const adopted = vms.filter((v) => v.status?.phase === 'PHASE_RUNNING' && pids.get(v.spec?.id ?? '') === Number(v.status.pid)).length;
        figures.firstAnswerMs ??= t;
        figures.adoptedAtFirstAnswer ??= adopted;
        if (adopted === pids.size) {
          figures.allAdoptedMs = t;
          break;
        }
      } catch {
        // not serving yet
      }
      await delay(PROBE_INTERVAL_MS);
    }
  } finally {
    probe.close();
  }
  const daemon = (await starting) ?? undefined;
  if (startError !== undefined) figures.error = errorText(startError);
  else if (figures.allAdoptedMs === undefined) figures.error = `not every VM was back within ${RESTART_DEADLINE_MS} ms`;
  const lines = parseLogLines((await logFile()).slice(logFrom));
  const after = (pick: (l: LogLine) => boolean, last = false): number | undefined => {
    const found = last ? lines.findLast(pick) : lines.find(pick);
    const at = loggedAt(found);
    return at === undefined ? undefined : at - spawnedAt;
  };
  const adopted = (l: LogLine): boolean => l.msg === 'adopted running QEMU';
  figures.adoptedLines = lines.filter(adopted).length;
  figures.log = {
    firstLine: after(() => true),
    accelerator: after((l) => l.msg?.startsWith('accelerator') ?? false),
    cells: after((l) => l.msg === 'each VM gets a cgroup of its own'),
    firstAdopted: after(adopted),
    lastAdopted: after(adopted, true),
    stateLoaded: after((l) => l.msg === 'state loaded'),
    grpcServing: after((l) => l.msg === 'gRPC serving'),
    httpServing: after((l) => l.msg?.startsWith('HTTP serving') ?? false),
    firstListVmsAnswered: after((l) => l.method === 'ListVms'),
  };
  return { ...(daemon ? { daemon } : {}), figures };
}

// --- the benchmark -------------------------------------------------------------------------------

async function run(ctx: BenchContext): Promise<BenchOutcome> {
  const { cleanup, log, runs } = ctx;
  const n = vmCount();
  const qemuBinary = await whichBinary(process.env.BENCH_QEMU ?? 'qemu-system-x86_64');
  const cgroupParent = `vmlet-bench-${process.pid}.slice`;
  const root = await benchDir(tmpdir(), 'vmlet-bench-p-');
  cleanup.defer('remove temp dir', () => rm(root, { recursive: true, force: true }));
  const runtime = await runtimeBase();
  const runRoot = await benchDir(runtime.dir, 'vmlet-bench-p-');
  cleanup.defer('remove run dir', () => rm(runRoot, { recursive: true, force: true }));
  cleanup.defer('remove the cgroup tree', () => removeCgroupTree(cgroupParent));
  // The daemon in a cgroup of its own beside the guests' parent, as systemd runs vmlet.service.
  const agentCgroup = `vmlet-bench-${process.pid}-agent`;
  cleanup.defer("remove the daemon's cgroup", () => leaveTopCgroup(agentCgroup));
  cleanup.defer('kill stray QEMUs', async () => {
    const killed = [...(await killStrayQemus(root)), ...(await killStrayQemus(runRoot))];
    if (killed.length > 0) log(`killed stray QEMU pids ${killed.join(', ')}`);
  });

  const options: DaemonOptions = {
    repo: ctx.repo,
    root: join(root, 'vmlet'),
    runDir: join(runRoot, 'vmlet'),
    qemuBinary,
    http: true,
    ownCgroup: agentCgroup,
    extraArgs: ['--cgroup-parent', cgroupParent, '--cpu-overcommit', String(Math.max(10, Math.ceil(n / cpus().length)))],
  };
  let daemon: BenchDaemon | undefined = await BenchDaemon.start(options);
  const logFile = daemon.logFile;
  const socket = daemon.socket;
  const readLog = (): Promise<string> => readFile(logFile, 'utf8').catch(() => '');
  cleanup.defer('keep the daemon log', () => copyFile(logFile, join(ctx.resultsDir, 'agent-priority-daemon.log')));
  cleanup.defer('stop the daemon', async () => daemon?.stop());
  cleanup.defer('delete VMs', async () => daemon?.deleteAllVms());
  const url = `${await daemon.httpAddress()}/metrics`;
  const info = await daemon.nodeInfo();
  const others = await otherQemus([root, runRoot]);
  log(`agent-priority: ${n} spinning guests, ${runs} calls per measure, cgroup parent ${cgroupParent}; QEMU ${info.qemuVersion}, ${info.accelerator}; ${others} other QEMUs on the host`);

  // With no VM: the floor of each call on this host.
  const idleList = summarise(await timeCalls(runs, () => listVms(daemon!.clients.vms)));
  const idleMetrics = summarise(await timeCalls(Math.min(runs, 15), () => scrape(url)));
  log(`0 VMs: ListVms p50 ${ms(idleList.median)}, /metrics p50 ${ms(idleMetrics.median)}`);

  const ids = Array.from({ length: n }, (_, i) => `prio-${String(i).padStart(3, '0')}`);
  const tCreate = performance.now();
  const { guests, createMs } = await createAll(ctx, daemon, ids);
  const createSeconds = (performance.now() - tCreate) / 1000;
  log(`${n} VMs RUNNING in ${createSeconds.toFixed(1)} s; waiting for every guest to boot and spin`);
  const { seconds: bootSeconds, stalled } = await waitAllReady(ctx, daemon, guests);
  log(`all ${n} guests booted ${bootSeconds.toFixed(1)} s after the last start${stalled.length > 0 ? ` (${stalled.length} created again after they stalled or crawled)` : ''}`);

  const listed = (await listVms(daemon.clients.vms)).vms;
  const confinement = {
    withCgroup: listed.filter((v) => v.status?.cgroup?.startsWith(`${cgroupParent}/`)).length,
    unprivileged: listed.filter((v) => (v.status?.uid ?? 0) !== 0).length,
    parentCpu: await parentCpuShares(cgroupParent),
  };

  // The measuring window: how much CPU the guests, their parent and the daemon got meanwhile.
  const loadBefore = loadavg();
  const w0 = performance.now();
  const guestCpu0 = await Promise.all(guests.map((g) => qemuCpuSeconds(g.pid)));
  const parent0 = await parentCpuNs(cgroupParent);
  const daemon0 = await threadTimes(daemon.pid!);
  let logFrom = (await readLog()).length;

  const d = daemon;
  const listMs = await timeCalls(runs, () => listVms(d.clients.vms));
  log(`ListVms: p50 ${ms(summarise(listMs).median)}`);
  const getMs = await timeCalls(runs, (i) => unary<GetVmRequest, Vm__Output>(d.clients.vms.getVm.bind(d.clients.vms), { id: ids[i % n]! }, { deadline: Date.now() + 30_000 }));
  const grpcLog = parseLogLines((await readLog()).slice(logFrom));

  const first = await scrape(url); // the warm-up; its text is the registry before its own VM reads
  const metricsMs: number[] = [];
  let last = first;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    last = await scrape(url);
    metricsMs.push(performance.now() - t0);
  }
  const closing = await scrape(url); // holds the QMP histograms of every scrape before it
  log(`/metrics: p50 ${ms(summarise(metricsMs).median)}`);
  const qmp = qmpCosts(first, closing);

  // The /proc part of a scrape, read from here with the collector's functions and concurrency.
  const tids = await Promise.all(guests.map((g) => vcpuThreads(g.pid)));
  const procfsMs = await timeCalls(runs, () =>
    mapBounded(guests, DEFAULT_SCRAPE_CONCURRENCY, (g, i) => Promise.all([readProcStat(g.pid), readResidentBytes(g.pid), ...tids[i]!.map((t) => readThreadCpu(g.pid, t))])),
  );

  const windowS = (performance.now() - w0) / 1000;
  const guestCpu1 = await Promise.all(guests.map((g) => qemuCpuSeconds(g.pid)));
  const parent1 = await parentCpuNs(cgroupParent);
  const daemon1 = await threadTimes(daemon.pid!);
  const loadAfter = loadavg();
  const perGuestCores = guestCpu1.map((c, i) => (c - guestCpu0[i]!) / windowS);
  const busy = {
    windowSeconds: Math.round(windowS * 10) / 10,
    guestsCores: Math.round(perGuestCores.reduce((a, b) => a + b, 0) * 1000) / 1000,
    perGuestCores: summarise(perGuestCores),
    parentCgroupCores: parent0 === undefined || parent1 === undefined ? undefined : Math.round(((parent1 - parent0) / 1e9 / windowS) * 1000) / 1000,
    daemonCores: Math.round(((daemon1.cpuMs - daemon0.cpuMs) / 1000 / windowS) * 1000) / 1000,
    hostCpus: cpus().length,
    load: { before: loadBefore, after: loadAfter },
  };

  // kill -9, QEMUs keep running; then the same daemon again on the same dirs.
  log('kill -9 of the daemon; restarting it on the same dirs');
  const killed = daemon;
  daemon = undefined;
  killed.child.kill('SIGKILL');
  await killed.exited;
  await killed.stop(); // closes its clients
  const aliveAfterKill = (await Promise.all(guests.map((g) => isAlive(g.pid)))).filter(Boolean).length;
  logFrom = (await readLog()).length;
  const restarted = await restart(options, socket, guests, logFrom, readLog);
  daemon = restarted.daemon;
  const r = restarted.figures;
  log(`restart: first ListVms answer ${r.firstAnswerMs === undefined ? '-' : ms(r.firstAnswerMs)}, all adopted ${r.allAdoptedMs === undefined ? '-' : ms(r.allAdoptedMs)}`);

  if (daemon) {
    await daemon.deleteAllVms();
    await daemon.stop();
  }
  const leftover = [...(await killStrayQemus(root)), ...(await killStrayQemus(runRoot))];

  const listStats = summarise(listMs);
  const getStats = summarise(getMs);
  const metricsStats = summarise(metricsMs);
  const procfsStats = summarise(procfsMs);
  const rounds = Math.ceil(n / DEFAULT_SCRAPE_CONCURRENCY);
  const errors = scrapeErrors(last) - scrapeErrors(first);
  const vcpuSeries = last.split('\n').filter((l) => l.startsWith('kubevirt_vmi_vcpu_seconds_total{')).length;
  const met = {
    listVmsP50: listStats.median <= TARGETS.listVmsP50Ms,
    metricsP50: metricsStats.median <= TARGETS.metricsMs,
    restartAllAdopted: r.allAdoptedMs !== undefined && r.allAdoptedMs <= TARGETS.restartAllAdoptedMs,
  };
  const result = {
    benchmark: 'agent-priority',
    vms: n,
    runs,
    paceMs: PACE_MS,
    createConcurrency: CREATE_CONCURRENCY,
    qemuVersion: info.qemuVersion,
    accelerator: info.accelerator,
    cgroupParent,
    agentCgroup,
    otherQemusOnHost: others,
    confinement,
    start: { createSeconds, bootSeconds, createVmMs: summarise(createMs), stalledAndReplaced: stalled },
    busy,
    idle: { listVmsMs: idleList, metricsMs: idleMetrics },
    listVms: { clientMs: listStats, serverMs: serverMs(grpcLog, 'ListVms') },
    getVm: { clientMs: getStats, serverMs: serverMs(grpcLog, 'GetVm') },
    metrics: {
      latencyMs: metricsStats,
      bytes: Buffer.byteLength(last),
      vcpuSeries,
      scrapeErrors: errors,
      qmpPerScrape: { scrapes: runs + 1, byCommand: qmp },
      collector: { concurrency: DEFAULT_SCRAPE_CONCURRENCY, rounds, procfsPartMs: procfsStats },
    },
    restart: { qemusAliveAfterKill: aliveAfterKill, ...r },
    leftoverQemusKilled: leftover.length,
    targets: { ...TARGETS, met },
    runDirs: runtime,
  };
  const verdict = (ok: boolean): string => (ok ? 'met' : 'NOT met');
  const qmpLines = Object.entries(qmp).map(([c, q]) => `  ${c}: ${(q.commands / (runs + 1)).toFixed(0)} per scrape, mean ${ms(q.meanMs)} (feeds ${q.feeds || '-'})`);
  const summary = [
    `${n} one-vCPU TCG guests spinning in cells under ${cgroupParent} (${confinement.parentCpu ?? 'weight unknown'}; ${confinement.withCgroup} in a cell, ${confinement.unprivileged} unprivileged), the daemon in ${agentCgroup} (default weight); ${others} other QEMUs on the host`,
    `CPU while measuring (${busy.windowSeconds} s): guests ${busy.guestsCores} of ${busy.hostCpus} cores (per guest p50 ${busy.perGuestCores.median.toFixed(3)}, min ${busy.perGuestCores.min.toFixed(3)}), daemon ${busy.daemonCores}; load ${loadBefore[0]?.toFixed(1)} → ${loadAfter[0]?.toFixed(1)}`,
    `ListVms: p50 ${ms(listStats.median)}, p90 ${ms(listStats.p90)}, max ${ms(listStats.max)} (0 VMs: p50 ${ms(idleList.median)}) — target p50 ≤ ${TARGETS.listVmsP50Ms} ms: ${verdict(met.listVmsP50)}`,
    `GetVm: p50 ${ms(getStats.median)}, p90 ${ms(getStats.p90)}, max ${ms(getStats.max)}`,
    `GET /metrics: p50 ${ms(metricsStats.median)}, p90 ${ms(metricsStats.p90)}, max ${ms(metricsStats.max)} (0 VMs: p50 ${ms(idleMetrics.median)}), ${errors} scrape errors, ${vcpuSeries}/${n} VMs with vCPU series — target ≤ ${TARGETS.metricsMs} ms: ${verdict(met.metricsP50)}`,
    `  per-VM reads: ${rounds} rounds of ${DEFAULT_SCRAPE_CONCURRENCY}; the /proc part alone p50 ${ms(procfsStats.median)}; QMP round trips:`,
    ...qmpLines,
    `restart after kill -9 (${aliveAfterKill}/${n} QEMUs alive): first ListVms ${r.firstAnswerMs === undefined ? 'never' : ms(r.firstAnswerMs)} (${r.adoptedAtFirstAnswer ?? 0} adopted in it), all adopted ${r.allAdoptedMs === undefined ? 'never' : ms(r.allAdoptedMs)} — target ≤ ${TARGETS.restartAllAdoptedMs} ms: ${verdict(met.restartAllAdopted)}`,
    `  daemon log, ms after spawn: first line ${r.log.firstLine ?? '-'}, adoption ${r.log.firstAdopted ?? '-'}–${r.log.lastAdopted ?? '-'} (${r.adoptedLines} lines), state loaded ${r.log.stateLoaded ?? '-'}, gRPC serving ${r.log.grpcServing ?? '-'}, HTTP serving ${r.log.httpServing ?? '-'}, first ListVms answered ${r.log.firstListVmsAnswered ?? '-'}${r.error ? `; ${r.error}` : ''}`,
  ];
  if (stalled.length > 0) summary.push(`created again after they stalled or crawled while booting: ${stalled.map((g) => `${g.id} (pid ${g.oldPid} → ${g.newPid ?? '-'}, ${g.consoleBytes} bytes, last line "${g.lastLine}")`).join(', ')}`);
  if (leftover.length > 0) summary.push(`QEMUs killed at the end (${daemon ? 'left after DeleteVm' : 'no daemon to delete them'}): ${leftover.length}`);
  return { result, summary };
}

export const agentPriorityBenchmark: Benchmark = {
  name: 'agent-priority',
  description: `ListVms, GetVm, /metrics and restart-to-adopted with ${DEFAULT_VMS} spinning TCG guests ($AGENT_PRIORITY_VMS) in cells`,
  defaultRuns: 50,
  run,
};
