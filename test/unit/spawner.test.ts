import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import pino from 'pino';
import { VmletError } from '../../src/model/errors.js';
import { silentLogger } from '../../src/host/log.js';
import { isAlive, processCmdline, signal, waitForExit } from '../../src/host/process.js';
import { Spawner } from '../../src/qemu/spawner.js';
import { until } from '../support/poll.js';

vi.setConfig({ testTimeout: 20_000 });

let dir: string;
let spawner: Spawner;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'vmlet-spawner-'));
  spawner = new Spawner(silentLogger()).start();
});

afterEach(async () => {
  spawner.close();
  await rm(dir, { recursive: true, force: true });
});

describe('Spawner', () => {
  it('starts a process through the helper, writes its output to the log and reports its exit', async () => {
    const log = path.join(dir, 'child.log');
    const child = await spawner.spawn('/bin/sh', ['-c', 'echo out; echo err >&2; exit 3'], log);
    expect(child.pid).toBeGreaterThan(0);
    expect(child.pid).not.toBe(spawner.helperPid);
    await expect(child.exited).resolves.toEqual({ code: 3, signal: null });
    expect((await readFile(log, 'utf8')).split('\n').sort()).toEqual(['', 'err', 'out']);
  });

  it('starts the log afresh for each child: it holds the latest output only', async () => {
    const log = path.join(dir, 'child.log');
    await (await spawner.spawn('/bin/sh', ['-c', 'echo first start failed'], log)).exited;
    await (await spawner.spawn('/bin/sh', ['-c', 'echo second'], log)).exited;
    expect(await readFile(log, 'utf8')).toBe('second\n');
  });

  it('runs the child in its own session, with exactly the arguments given (no shell)', async () => {
    const child = await spawner.spawn('/bin/sleep', ['30'], path.join(dir, 'sleep.log'));
    try {
      expect(await processCmdline(child.pid)).toEqual(['/bin/sleep', '30']);
      const stat = await readFile(`/proc/${child.pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      expect(Number(fields[3])).toBe(child.pid); // session id
    } finally {
      signal(child.pid, 'SIGKILL');
      await expect(child.exited).resolves.toEqual({ code: null, signal: 'SIGKILL' });
    }
  });

  it('rejects with UNAVAILABLE and the reason when the program cannot be started', async () => {
    const err = await spawner.spawn(path.join(dir, 'no-such-qemu'), [], path.join(dir, 'x.log')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VmletError);
    expect((err as VmletError).code).toBe('UNAVAILABLE');
    expect((err as VmletError).message).toMatch(/ENOENT/);
  });

  it('children outlive a helper that dies; the next spawn starts a new helper', async () => {
    const child = await spawner.spawn('/bin/sleep', ['30'], path.join(dir, 'sleep.log'));
    const first = spawner.helperPid!;
    signal(first, 'SIGKILL');
    await expect(child.exited).rejects.toThrow(/spawn helper exited/);
    expect(await isAlive(child.pid)).toBe(true);
    signal(child.pid, 'SIGKILL');
    expect(await waitForExit(child.pid, 10_000)).toBe(true);

    const again = await spawner.spawn('/bin/true', [], path.join(dir, 'true.log'));
    expect(spawner.helperPid).not.toBe(first);
    await expect(again.exited).resolves.toEqual({ code: 0, signal: null });
  });

  it('the helper exits when the spawner is closed (the daemon going away)', async () => {
    const helper = spawner.helperPid!;
    spawner.close();
    await until('helper gone', async () => ((await isAlive(helper)) ? undefined : true), 10_000);
  });

  it('kills a process the helper starts after the request was given up on', async () => {
    const warnings: { pid?: number; msg: string }[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => warnings.push(JSON.parse(line) as { pid?: number; msg: string }) });
    // Long enough that the warm-up spawn makes it on a loaded machine; the stopped helper cannot.
    const slow = new Spawner(logger, 2000).start();
    try {
      const helper = slow.helperPid!;
      await (await slow.spawn('/bin/true', [], path.join(dir, 'warm.log'))).exited;
      signal(helper, 'SIGSTOP');
      const late = slow.spawn('/bin/sleep', ['600'], path.join(dir, 'late.log'));
      await expect(late).rejects.toThrow(/did not start \/bin\/sleep within 2000 ms/);
      signal(helper, 'SIGCONT');
      // The helper starts it now; the spawner, no longer waiting for it, kills it at once.
      const pid = await until('the late process to be reported', async () => warnings.find((w) => w.pid !== undefined)?.pid);
      expect(await waitForExit(pid, 5000)).toBe(true);
    } finally {
      slow.close();
    }
  });
});
