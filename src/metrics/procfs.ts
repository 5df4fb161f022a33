/** CPU and memory figures of a QEMU process from /proc. Parsers are pure; readers are thin. */
import { readFile } from 'node:fs/promises';

/** USER_HZ: the unit of utime/stime in /proc/<pid>/stat; 100 on every Linux ABI vmlet runs on. */
export const CLOCK_TICKS_PER_SECOND = 100;

export interface ProcStat {
  /** R, S, D, Z, T, … */
  state: string;
  /** Clock ticks; for a process (/proc/<pid>/stat), the sum over all its threads, dead ones included. */
  utimeTicks: number;
  stimeTicks: number;
}

/**
 * /proc/<pid>/stat or /proc/<pid>/task/<tid>/stat. The command name (field 2) sits in
 * parentheses and may itself contain spaces and parentheses, so fields are counted from the
 * last `)`: state is field 3, utime 14, stime 15.
 */
export function parseProcStat(text: string): ProcStat {
  const close = text.lastIndexOf(')');
  if (close === -1) throw new Error(`not a /proc stat line: ${JSON.stringify(text.slice(0, 80))}`);
  const fields = text.slice(close + 1).trim().split(/\s+/);
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (fields.length < 13 || !Number.isFinite(utime) || !Number.isFinite(stime)) {
    throw new Error(`not a /proc stat line: ${JSON.stringify(text.slice(0, 80))}`);
  }
  return { state: fields[0]!, utimeTicks: utime, stimeTicks: stime };
}

export interface SchedStat {
  /** Time spent on a CPU, ns. */
  runNs: number;
  /** Time spent runnable, waiting for a CPU, ns. */
  waitNs: number;
  timeslices: number;
}

/** /proc/<pid>/task/<tid>/schedstat: `run_ns wait_ns timeslices`. */
export function parseSchedstat(text: string): SchedStat {
  const [run, wait, slices] = text.trim().split(/\s+/).map(Number);
  if (run === undefined || wait === undefined || slices === undefined || [run, wait, slices].some((n) => !Number.isFinite(n))) {
    throw new Error(`not a schedstat line: ${JSON.stringify(text.slice(0, 80))}`);
  }
  return { runNs: run, waitNs: wait, timeslices: slices };
}

/** VmRSS of /proc/<pid>/status in bytes; undefined for a process without memory (a zombie). */
export function parseVmRssBytes(status: string): number | undefined {
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  return m ? Number(m[1]) * 1024 : undefined;
}

export async function readProcStat(pid: number): Promise<ProcStat> {
  return parseProcStat(await readFile(`/proc/${pid}/stat`, 'utf8'));
}

export async function readThreadSchedstat(pid: number, tid: number): Promise<SchedStat> {
  return parseSchedstat(await readFile(`/proc/${pid}/task/${tid}/schedstat`, 'utf8'));
}

/** A vCPU thread's CPU time, ns: schedstat when the kernel has it, else utime+stime of the thread's stat. */
export async function readThreadCpu(pid: number, tid: number): Promise<{ runNs: number; waitNs?: number }> {
  try {
    const s = await readThreadSchedstat(pid, tid);
    return { runNs: s.runNs, waitNs: s.waitNs };
  } catch {
    const s = parseProcStat(await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8'));
    return { runNs: ((s.utimeTicks + s.stimeTicks) / CLOCK_TICKS_PER_SECOND) * 1e9 };
  }
}

export async function readResidentBytes(pid: number): Promise<number> {
  const rss = parseVmRssBytes(await readFile(`/proc/${pid}/status`, 'utf8'));
  if (rss === undefined) throw new Error(`/proc/${pid}/status has no VmRSS (process exiting?)`);
  return rss;
}

/**
 * `wait_sum` of /proc/<pid>/task/<tid>/sched in seconds: time the thread was runnable but not
 * running, what libvirt reports as `vcpu.N.wait`. The kernel keeps it only with schedstats on
 * (`kernel.sched_schedstats`); without, the line is missing and this gives 0, as libvirt does.
 */
export function parseSchedWaitSeconds(text: string): number {
  const m = /^(?:se\.statistics\.|se\.)?wait_sum\s*:\s*([\d.]+)$/m.exec(text);
  return m ? Number(m[1]) / 1000 : 0;
}

export async function readThreadWaitSeconds(pid: number, tid: number): Promise<number> {
  return parseSchedWaitSeconds(await readFile(`/proc/${pid}/task/${tid}/sched`, 'utf8'));
}
