/**
 * Where vmlet's time goes inside the daemon, from its own JSON log: the CreateVm call line
 * (server-side duration) and the lines in between, per VM. pino stamps lines in whole
 * milliseconds, so single segments are ±1 ms; medians over the runs are what to read.
 */
import { summarise, type Stats } from './stats.js';
import { loggedAt, parseLogLines, type LogLine } from './log-lines.js';

export interface ServerBreakdown {
  /** Server-side CreateVm duration as the daemon logs it. */
  createVmServerMs: Stats;
  /** Request in → "VM created": validation, image-root checks, overlays, state files (fsync). */
  createMs: Stats;
  /** "VM created" → Pending→Starting: the VM's queue, capacity check. */
  queueMs: Stats;
  /** Starting → Running: boot files re-checked, NICs, argv, spawn, QMP socket poll, QMP handshake, cont. */
  launchMs: Stats;
  /** Running → call logged: status persisted asynchronously, reply built. */
  replyMs: Stats;
}

const at = loggedAt;

/** undefined when the log lacks the lines (e.g. another log format); the benchmark result then omits the breakdown. */
export function serverBreakdown(logText: string, ids: readonly string[]): ServerBreakdown | undefined {
  const byVm = new Map<string, LogLine[]>();
  for (const line of parseLogLines(logText)) {
    if (line.vm) byVm.set(line.vm, [...(byVm.get(line.vm) ?? []), line]);
  }
  const cols = { createVmServerMs: [] as number[], createMs: [] as number[], queueMs: [] as number[], launchMs: [] as number[], replyMs: [] as number[] };
  for (const id of ids) {
    const lines = byVm.get(id) ?? [];
    const call = lines.find((l) => l.method === 'CreateVm' && typeof l.durationMs === 'number');
    const end = at(call);
    const created = at(lines.find((l) => l.msg === 'VM created'));
    const starting = at(lines.find((l) => l.msg === 'phase Pending -> Starting'));
    const running = at(lines.find((l) => l.msg === 'phase Starting -> Running'));
    if (!call || end === undefined || created === undefined || starting === undefined || running === undefined) return undefined;
    const start = end - call.durationMs!;
    cols.createVmServerMs.push(call.durationMs!);
    cols.createMs.push(created - start);
    cols.queueMs.push(starting - created);
    cols.launchMs.push(running - starting);
    cols.replyMs.push(end - running);
  }
  if (ids.length === 0) return undefined;
  return {
    createVmServerMs: summarise(cols.createVmServerMs),
    createMs: summarise(cols.createMs),
    queueMs: summarise(cols.queueMs),
    launchMs: summarise(cols.launchMs),
    replyMs: summarise(cols.replyMs),
  };
}
