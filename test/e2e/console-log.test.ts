import { execFile } from 'node:child_process';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, TestDaemon } from '../support/daemon.js';
import { guestSpec } from '../support/guest.js';
import { rpc } from '../support/rpc.js';
import { until } from '../support/poll.js';
import { grpcConsole, Received } from '../support/console-clients.js';

const run = promisify(execFile);
const ID = 'flood-1';
/** --console-log-max-bytes: the two files may hold twice this. */
const MAX = 64 * 1024;
/** Numbered lines, as fast as the guest can print them, from the ready line until the VM stops. */
const FLOOD = 'i=0; while true; do i=$((i+1)); echo flood-$i; done';
const FLOOD_LINE = /^flood-(\d+)\r?$/;

const sizeOf = async (path: string): Promise<number> => (await stat(path).catch(() => undefined))?.size ?? 0;

/** Bytes of the regular files under `dir`, recursively, but for those `skip` names. */
async function bytesUnder(dir: string, skip: (name: string) => boolean = () => false): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += await bytesUnder(path, skip);
    else if (entry.isFile() && !skip(entry.name)) total += await sizeOf(path);
  }
  return total;
}

/** The numbers of the whole flood lines in `text` (other lines, and a partial first or last one, are skipped). */
function floodNumbers(text: string): number[] {
  const numbers: number[] = [];
  for (const l of text.split('\n').slice(1, -1)) {
    const m = FLOOD_LINE.exec(l);
    if (m) numbers.push(Number(m[1]));
  }
  return numbers;
}

describe('console log: a guest that prints without end', () => {
  let d: TestDaemon;
  let api: ReturnType<typeof rpc>;
  let log: string;
  let vmState: string;
  let vmRun: string;
  const logs = (...args: string[]) => run(process.execPath, [CLI, '--endpoint', d.socket, 'logs', ID, ...args], { maxBuffer: 16 * 1024 * 1024 });

  beforeAll(async () => {
    d = await TestDaemon.start({ extraArgs: ['--console-log-max-bytes', String(MAX)] });
    api = rpc(d.clients);
    vmState = join(d.stateDir, 'vms', ID);
    vmRun = join(d.runDir, 'vms', ID);
    log = join(vmState, 'console.log');
    const spec = guestSpec(ID);
    await api.create({ ...spec, kernel: { ...spec.kernel!, cmdline: `${spec.kernel!.cmdline} vmlet.run="${FLOOD}"` } }, true);
  });
  afterAll(async () => {
    await api?.delete(ID, true).catch(() => undefined);
    await d?.cleanup();
  });

  it('keeps console.log and console.log.1 within 2 × --console-log-max-bytes while output goes on; the run dir holds no log', async () => {
    const samples: { ms: number; log: number; rotated: number; otherState: number; runDir: number; newest: number }[] = [];
    const started = Date.now();
    let first: number | undefined;
    let runDirLog = false;
    // Until the output that went through the log is 5 times what it may hold.
    await until(
      'the guest floods the console through 5 × the bound',
      async () => {
        const [current, rotated, otherState, runDir, runFiles] = await Promise.all([
          sizeOf(log),
          sizeOf(`${log}.1`),
          bytesUnder(vmState, (name) => name.startsWith('console.log')),
          bytesUnder(vmRun),
          readdir(vmRun).catch(() => []),
        ]);
        runDirLog ||= runFiles.some((f) => f.startsWith('console.log'));
        const end = (await readFile(log, 'latin1').catch(() => '')).slice(-200);
        const newest = floodNumbers(end).at(-1) ?? 0;
        samples.push({ ms: Date.now() - started, log: current, rotated, otherState, runDir, newest });
        if (newest === 0) return undefined;
        first ??= newest;
        // A line is "flood-N\r\n": 10 bytes and more.
        return (newest - first) * 10 > 5 * 2 * MAX ? true : undefined;
      },
      120_000,
      100,
    );
    // Kept for a look with VMLET_KEEP_TEST_DIRS=1.
    await writeFile(join(d.root, 'console-log-samples.json'), JSON.stringify(samples));
    expect(runDirLog).toBe(false);
    const most = Math.max(...samples.map((s) => s.log + s.rotated));
    expect(most).toBeLessThanOrEqual(2 * MAX);
    expect(Math.max(...samples.map((s) => s.log))).toBeLessThanOrEqual(MAX);
    // The log did turn over while sampled; nothing else in the state dir or the run dir grew with the output.
    expect(samples.at(-1)!.rotated).toBeGreaterThan(0);
    const spread = (values: number[]): number => Math.max(...values) - Math.min(...values);
    expect(spread(samples.map((s) => s.otherState))).toBeLessThan(16 * 1024);
    expect(spread(samples.map((s) => s.runDir))).toBeLessThan(16 * 1024);
    expect((await readdir(vmState)).filter((f) => f.startsWith('console.log')).sort()).toEqual(['console.log', 'console.log.1']);
  }, 150_000);

  it('vmlet logs --tail gives the latest lines, across the two files; -f follows the flood', async () => {
    const before = floodNumbers((await readFile(log, 'latin1')).slice(-200)).at(-1)!;
    // More lines than console.log alone holds (64 KiB is under 5000 of them): the end of console.log.1 comes first.
    const tail = await logs('--tail', '6000');
    expect(tail.stdout.length).toBeGreaterThanOrEqual(MAX);
    const numbers = floodNumbers(tail.stdout);
    expect(numbers.length).toBeGreaterThan(4500);
    expect(numbers.every((n, i) => i === 0 || n === numbers[i - 1]! + 1)).toBe(true);
    expect(numbers.at(-1)!).toBeGreaterThanOrEqual(before);

    const follow = new Received();
    const child = execFile(process.execPath, [CLI, '--endpoint', d.socket, 'logs', ID, '-f', '--tail', '1']);
    child.stdout!.on('data', (b: Buffer) => follow.add(b));
    try {
      // It starts with the last line when it asked (later than the tail above), then goes on live.
      await follow.until(/^flood-\d+\r\n/, 30_000);
      const first = Number(/^flood-(\d+)/.exec(follow.text)![1]);
      expect(first).toBeGreaterThanOrEqual(numbers.at(-1)!);
      await follow.until(new RegExp(`\\nflood-${first + 5000}\\r\\n`), 60_000);
      const followed = floodNumbers(follow.text);
      expect(followed.every((n, i) => i === 0 || n > followed[i - 1]!)).toBe(true);
    } finally {
      child.kill();
    }
  }, 90_000);

  it('a console attached during the flood gets whole lines of history, then live output', async () => {
    const c = grpcConsole(d.clients, ID);
    await c.out.until(/^flood-\d+\r\n(flood-\d+\r\n){10}/, 30_000);
    // The history starts at a line start (the window was cut after a line break).
    expect(c.out.text).toMatch(/^flood-\d+\r\n/);
    const firstLive = floodNumbers(c.out.text).at(-1)! + 2000;
    await c.out.until(`\nflood-${firstLive}\r\n`, 60_000);
    c.call.end();
    expect((await c.status).code).toBe(status.OK);
  }, 90_000);

  it('the log outlives a stop (vmlet logs reads it) and goes with the VM', async () => {
    expect((await api.stop(ID, 0, true)).status?.phase).toBe('PHASE_STOPPED');
    const tail = await logs('--tail', '2000');
    // The guest was cut off mid-flood: its last lines are flood lines, in order.
    const numbers = floodNumbers(tail.stdout);
    expect(numbers.length).toBeGreaterThan(1900);
    expect(numbers.every((n, i) => i === 0 || n === numbers[i - 1]! + 1)).toBe(true);
    expect(await sizeOf(log)).toBeGreaterThan(0);

    await api.delete(ID);
    await expect(stat(vmState)).rejects.toMatchObject({ code: 'ENOENT' });
  }, 90_000);
});
