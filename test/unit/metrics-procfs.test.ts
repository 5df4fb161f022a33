import { describe, expect, it } from 'vitest';
import { threadId } from 'node:worker_threads';
import {
  CLOCK_TICKS_PER_SECOND,
  parseProcStat,
  parseSchedstat,
  parseVmRssBytes,
  readProcStat,
  readResidentBytes,
  readThreadCpu,
} from '../../src/metrics/procfs.js';

// A real line of a QEMU process (utime 2, stime 3).
const QEMU_STAT =
  '18572 (qemu-system-x86) S 1 18564 16285 0 -1 138412416 5261 0 8 0 2 3 0 0 20 0 6 0 184032 1664479232 9821 18446744073709551615 94896421662720 94896427523157 140734689051440 0 0 0 268444224 4100 16451 0 0 0 17 1 0 0 0 0 0 94896430635256 94896435839408 94897492328448 140734689052939 140734689053395 140734689053395 140734689054684 0\n';

describe('parseProcStat', () => {
  it('reads state, utime and stime', () => {
    expect(parseProcStat(QEMU_STAT)).toEqual({ state: 'S', utimeTicks: 2, stimeTicks: 3 });
  });

  it('counts fields from the last ")": a thread name with spaces and parentheses', () => {
    const line = QEMU_STAT.replace('(qemu-system-x86)', '(CPU 0/TCG) (x) y)').replace(' S ', ' R ');
    expect(parseProcStat(line)).toEqual({ state: 'R', utimeTicks: 2, stimeTicks: 3 });
  });

  it.each(['', 'garbage', '1 (x) S 1 2'])('rejects %j', (text) => {
    expect(() => parseProcStat(text)).toThrow(/not a \/proc stat line/);
  });
});

describe('parseSchedstat', () => {
  it('reads run time, wait time and timeslices', () => {
    expect(parseSchedstat('585069 611460 6\n')).toEqual({ runNs: 585069, waitNs: 611460, timeslices: 6 });
  });
  it.each(['', '1 2', 'a b c'])('rejects %j', (text) => {
    expect(() => parseSchedstat(text)).toThrow(/not a schedstat line/);
  });
});

describe('parseVmRssBytes', () => {
  it('reads VmRSS in kB as bytes', () => {
    expect(parseVmRssBytes('Name:\tqemu\nVmPeak:\t  100 kB\nVmRSS:\t   39356 kB\nRssAnon:\t 1 kB\n')).toBe(39356 * 1024);
  });
  it('a zombie has no VmRSS', () => {
    expect(parseVmRssBytes('Name:\tqemu\nState:\tZ (zombie)\n')).toBeUndefined();
  });
});

describe('readers against this process', () => {
  it('read /proc/self figures that make sense', async () => {
    // Burn some CPU so the figures cannot be zero.
    const until = process.cpuUsage().user + 50_000;
    while (process.cpuUsage().user < until) Math.sqrt(Math.random());
    const stat = await readProcStat(process.pid);
    const used = process.cpuUsage();
    expect(stat.utimeTicks / CLOCK_TICKS_PER_SECOND).toBeGreaterThan(0);
    expect(stat.utimeTicks / CLOCK_TICKS_PER_SECOND).toBeLessThanOrEqual(used.user / 1e6 + 0.05);
    const rss = await readResidentBytes(process.pid);
    expect(rss).toBeGreaterThan(1024 * 1024);
    expect(Math.abs(rss - process.memoryUsage.rss())).toBeLessThan(64 * 1024 * 1024);
    expect(threadId).toBe(0); // the main thread: its tid is the pid
    const main = await readThreadCpu(process.pid, process.pid);
    expect(main.runNs).toBeGreaterThan(0);
  });

  it('a pid that does not exist is an error, not a zero', async () => {
    await expect(readProcStat(2 ** 22 + 1)).rejects.toThrow(/ENOENT/);
    await expect(readResidentBytes(2 ** 22 + 1)).rejects.toThrow(/ENOENT/);
  });
});
