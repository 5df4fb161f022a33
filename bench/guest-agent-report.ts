import { cpus, hostname, release } from 'node:os';
import type { NodeInfo__Output } from '../src/api/grpc/generated/vmlet/v1/NodeInfo.js';
import type { BenchOutcome } from './benchmark.js';
import { compareToRaw, summarise } from './stats.js';

/** Issue 18: vmlet may take at most this many times the raw boot to a connected agent. */
export const TARGET_RATIO = 1.05;

export interface VmletAgentRun {
  id: string;
  /** Client side: CreateVm{start} sent → the WatchVms event with agent_connected received. */
  totalMs: number;
  /** Of which CreateVm until its RUNNING reply. */
  createMs: number;
}

export interface RawAgentRun {
  /** Overlay, QEMU start, until the agent answered a sync. */
  totalMs: number;
  overlayMs: number;
  /** mkdir of the run dir → `cont` answered (RawTimings.totalMs). */
  launchMs: number;
  /** Connections until the sync was answered. */
  attempts: number;
}

export interface GuestAgentSamples {
  vmlet: VmletAgentRun[];
  raw: RawAgentRun[];
  /** vmlet's QEMU argv, dirs and id as placeholders; the raw side ran the same. */
  argv: string[];
}

export interface GuestAgentReportInput {
  info: NodeInfo__Output;
  qemuBinary: string;
  runs: number;
  samples: GuestAgentSamples;
  /** How often each side asks the agent socket (ms). */
  cadence: { vmletRetryMs: number; vmletSyncTimeoutMs: number; rawRetryMs: number; rawSyncTimeoutMs: number };
  runDirs: { dir: string; tmpfs: boolean };
  load: { before: number[]; after: number[] };
}

const s = (x: number): string => `${(x / 1000).toFixed(2)} s`;

export function guestAgentReport(input: GuestAgentReportInput): BenchOutcome {
  const { info, samples, cadence } = input;
  const vmletTotals = samples.vmlet.map((r) => r.totalMs);
  const rawTotals = samples.raw.map((r) => r.totalMs);
  const comparison = compareToRaw(vmletTotals, rawTotals, TARGET_RATIO);
  const { ratio, ratioInterval95: ratioInterval, vmletMs: vmlet, rawQemuMs: raw } = comparison;
  const bootToAgent = {
    ...comparison,
    vmletBreakdownMs: {
      createToRunningMs: summarise(samples.vmlet.map((r) => r.createMs)),
      runningToAgentEventMs: summarise(samples.vmlet.map((r) => r.totalMs - r.createMs)),
    },
    rawBreakdownMs: {
      overlayMs: summarise(samples.raw.map((r) => r.overlayMs)),
      launchMs: summarise(samples.raw.map((r) => r.launchMs)),
      runningToAgentMs: summarise(samples.raw.map((r) => r.totalMs - r.overlayMs - r.launchMs)),
      attempts: samples.raw.map((r) => r.attempts),
    },
  };
  const result = {
    benchmark: 'guest-agent',
    timestamp: new Date().toISOString(),
    node: process.version,
    host: { hostname: hostname(), cpus: cpus().length, cpuModel: cpus()[0]?.model ?? '', kernel: release(), loadavg: input.load },
    vmletVersion: info.vmletVersion,
    qemuVersion: info.qemuVersion,
    qemuBinary: input.qemuBinary,
    accelerator: info.accelerator,
    runs: input.runs,
    warmupRuns: 1,
    method: {
      guest: '.guest/debian-12.qcow2 (scripts/build-debian-image.sh) through a per-VM qcow2 overlay; 1 vCPU, 512 MiB, SeaBIOS, no kernel, no NICs, no cloud-init seed',
      vmlet: 'real vmlet daemon; WatchVms{id} opened first, then CreateVm{spec, start: true}; timed client-side until the first event whose status.guest.agent_connected is true; then DeleteVm{force}',
      raw: 'qemu-img create -f qcow2 -F qcow2 -b <image> (vmlet\'s createOverlay), then the same binary and argv (buildQemuArgv of the same plan) started through the same spawn helper, QMP handshake and cont as the core benchmark; then the agent socket: connect, guest-sync-delimited, on no answer close and try again, until the agent answers; timed from before the overlay; then quit',
      cadence: {
        ...cadence,
        why: 'vmlet tries the agent 3 s after QEMU starts and 3 s after every failed attempt, each attempt a sync waiting up to 2 s; an agent that opens its port while a sync waits answers at once, one that opens during the 3 s pause waits for the next attempt. The raw poller pauses 100 ms, so it sees the agent as it comes up. vmlet also reads osinfo, hostname and interfaces before it reports the agent connected.',
      },
      runDirs: input.runDirs,
      order: 'vmlet and raw boots alternate, who goes first alternating per round; every VM is gone before the next starts',
      argvChecked: 'every vmlet run: /proc/<pid>/cmdline equals buildQemuArgv of the plan; every round: vmlet\'s and the raw argv are equal with the VM\'s dirs and id as placeholders',
    },
    bootToAgent,
    argv: samples.argv,
    vmletIds: samples.vmlet.map((r) => r.id),
  };
  const summary = [
    `boot → guest agent (median of ${input.runs}): vmlet ${s(vmlet.median)} (p90 ${s(vmlet.p90)}), raw QEMU ${s(raw.median)} (p90 ${s(raw.p90)})`,
    `ratio ${ratio.toFixed(3)}, 95 % interval ${ratioInterval[0].toFixed(3)}–${ratioInterval[1].toFixed(3)} (target ≤ ${TARGET_RATIO.toFixed(2)}): ${bootToAgent.meetsTarget ? 'met' : 'NOT met'}; vmlet overhead ${s(bootToAgent.overheadMs)}`,
    `vmlet (medians): CreateVm → RUNNING ${s(bootToAgent.vmletBreakdownMs.createToRunningMs.median)}, then → agent event ${s(bootToAgent.vmletBreakdownMs.runningToAgentEventMs.median)}`,
    `raw (medians): overlay ${s(bootToAgent.rawBreakdownMs.overlayMs.median)}, launch ${s(bootToAgent.rawBreakdownMs.launchMs.median)}, then → agent sync ${s(bootToAgent.rawBreakdownMs.runningToAgentMs.median)} (attempts ${bootToAgent.rawBreakdownMs.attempts.join(', ')})`,
  ];
  return { result, summary };
}
