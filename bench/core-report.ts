import { cpus, hostname, release } from 'node:os';
import { relative } from 'node:path';
import type { NodeInfo__Output } from '../src/api/grpc/generated/vmlet/v1/NodeInfo.js';
import type { BenchOutcome } from './benchmark.js';
import type { ServerBreakdown } from './daemon-log.js';
import type { RawTimings } from './raw-qemu.js';
import { compareToRaw, ms, summarise } from './stats.js';

/** vmlet may take at most this many times raw QEMU's create → running. */
export const TARGET_RATIO = 1.1;

export interface CoreSamples {
  /** Client-side CreateVm{start: true} durations, and the VM ids in the same order. */
  vmletMs: number[];
  vmletIds: string[];
  raw: RawTimings[];
  cycle: { cycleMs: number; createMs: number; deleteMs: number; daemonCpuMs: number; daemonSwitches: number }[];
  /** GetNodeInfo round trips: the gRPC floor. */
  grpcRoundTripMs: number[];
  /** GetNodeInfo right after each raw `cont` (not part of the raw time). */
  grpcRoundTripBootingMs: number[];
  /** vmlet's QEMU argv with paths and id replaced by placeholders (the raw side runs the same). */
  argv: string[];
}

export interface CoreReportInput {
  info: NodeInfo__Output;
  qemuBinary: string;
  runs: number;
  samples: CoreSamples;
  breakdown: ServerBreakdown | undefined;
  settleMs: number;
  cycleDeleteForce: boolean;
  /** Where run dirs were (QEMU's sockets, pidfile, logs) and whether that is a tmpfs, as /run is on a node. */
  runDirs: { dir: string; tmpfs: boolean };
  daemonLog: string;
  repo: string;
  /** os.loadavg() before and after measuring: other work on the host makes the numbers noisy. */
  load: { before: number[]; after: number[] };
}


export function coreReport(input: CoreReportInput): BenchOutcome {
  const { info, samples, breakdown } = input;
  const comparison = compareToRaw(samples.vmletMs, samples.raw.map((r) => r.totalMs), TARGET_RATIO);
  const { ratio, ratioInterval95: ratioInterval, vmletMs: vmlet, rawQemuMs: raw } = comparison;
  const cycle = summarise(samples.cycle.map((c) => c.cycleMs));
  const server = breakdown?.createVmServerMs.samples;
  const createToRunning = {
    ...comparison,
    rawBreakdownMs: {
      socketMs: summarise(samples.raw.map((r) => r.socketMs)),
      qmpConnectMs: summarise(samples.raw.map((r) => r.qmpConnectMs)),
      contMs: summarise(samples.raw.map((r) => r.contMs)),
    },
    vmletServerBreakdownMs: breakdown ?? null,
    /** Client-side minus server-side CreateVm: gRPC over the unix socket, (de)serialisation. */
    vmletClientOverheadMs: server ? summarise(samples.vmletMs.map((v, i) => v - (server[i] ?? 0))) : null,
    /** A trivial call (GetNodeInfo), client-side: what any gRPC call costs here. */
    grpcRoundTripMs: summarise(samples.grpcRoundTripMs),
    /** The same call right after a raw QEMU's `cont`, while the booting guest takes a CPU: the floor of vmlet's gRPC hop at the instant it answers. */
    grpcRoundTripWhileGuestBootsMs: summarise(samples.grpcRoundTripBootingMs),
  };
  const result = {
    benchmark: 'core',
    timestamp: new Date().toISOString(),
    node: process.version,
    host: { hostname: hostname(), cpus: cpus().length, cpuModel: cpus()[0]?.model ?? '', kernel: release(), loadavg: input.load },
    vmletVersion: info.vmletVersion,
    qemuVersion: info.qemuVersion,
    qemuBinary: input.qemuBinary,
    accelerator: info.accelerator,
    acceleratorReason: info.acceleratorReason,
    runs: input.runs,
    warmupRuns: 1,
    method: {
      guest: '1 vCPU, 128 MiB, .guest/vmlinuz + .guest/initrd.img, cmdline "console=ttyS0 panic=-1", no disks, no NICs',
      vmlet: 'real vmlet daemon; client-side time of gRPC CreateVm{spec, start: true} until it returns PHASE_RUNNING; then DeleteVm{force: true}. vmlet writes cont right behind qmp_capabilities (one round trip less than raw)',
      raw: `same binary and argv (buildQemuArgv, startPaused), started through the same spawn helper as vmlet's (detached, output to qemu.log); QMP connected as soon as QEMU listens (connectWhenListening, vmlet's own code: woken by the socket file's creation), greeting and qmp_capabilities awaited, then cont awaited; timed from before mkdir of the run dir; then quit and wait for exit`,
      runDirs: input.runDirs,
      order: 'vmlet and raw runs alternate, who goes first alternating per round; every VM is gone before the next starts',
      settleMs: input.settleMs,
      argvChecked: 'every vmlet run: /proc/<pid>/cmdline of its QEMU equals buildQemuArgv of the same plan',
    },
    createToRunning,
    createDeleteCycleMs: {
      deleteForce: input.cycleDeleteForce,
      what: 'CreateVm{start: true} then DeleteVm{force: true} (QMP quit, no ACPI grace), client-side, until DeleteVm returns',
      ...cycle,
      createMs: summarise(samples.cycle.map((c) => c.createMs)),
      deleteMs: summarise(samples.cycle.map((c) => c.deleteMs)),
    },
    daemonCostPerStart: {
      what: 'from before CreateVm{start: true} until its reply (cycle runs): CPU time of all the daemon\'s threads (/proc schedstat) and their context switches; does not move with how fast the host runs QEMU',
      cpuMs: summarise(samples.cycle.map((c) => c.daemonCpuMs)),
      threadSwitches: summarise(samples.cycle.map((c) => c.daemonSwitches)),
    },
    argv: samples.argv,
    daemonLog: relative(input.repo, input.daemonLog),
  };
  const summary = [
    `create→RUNNING (median of ${input.runs}): vmlet ${ms(vmlet.median)} (p90 ${ms(vmlet.p90)}), raw QEMU ${ms(raw.median)} (p90 ${ms(raw.p90)})`,
    `ratio ${ratio.toFixed(3)}, 95 % interval ${ratioInterval[0].toFixed(3)}–${ratioInterval[1].toFixed(3)} (target ≤ ${TARGET_RATIO.toFixed(2)}): ${createToRunning.meetsTarget ? 'met' : 'NOT met'}; vmlet overhead ${ms(createToRunning.overheadMs)}`,
    ...(breakdown
      ? [
          `vmlet server side (medians): create ${ms(breakdown.createMs.median)}, queue ${ms(breakdown.queueMs.median)}, launch ${ms(breakdown.launchMs.median)}, reply ${ms(breakdown.replyMs.median)}; gRPC/client ${ms(createToRunning.vmletClientOverheadMs?.median ?? 0)} (GetNodeInfo round trip ${ms(createToRunning.grpcRoundTripMs.median)} idle, ${ms(createToRunning.grpcRoundTripWhileGuestBootsMs.median)} while a guest boots)`,
        ]
      : []),
    `raw QEMU (medians): socket ${ms(createToRunning.rawBreakdownMs.socketMs.median)}, QMP connect ${ms(createToRunning.rawBreakdownMs.qmpConnectMs.median)}, cont ${ms(createToRunning.rawBreakdownMs.contMs.median)}`,
    `create+delete cycle (force): median ${ms(cycle.median)}, p90 ${ms(cycle.p90)}`,
    `daemon per create→RUNNING (medians): ${ms(result.daemonCostPerStart.cpuMs.median)} of CPU, ${result.daemonCostPerStart.threadSwitches.median} thread context switches`,
  ];
  return { result, summary };
}
