import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommandError, run } from '../../src/host/run.js';
import { isAlive, signal, waitForExit } from '../../src/host/process.js';

const dirs: string[] = [];
const strays: number[] = [];
afterEach(() => {
  for (const pid of strays.splice(0)) signal(pid, 'SIGKILL');
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A file the shell script writes the pid of what it started into. */
function pidFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'vmlet-run-'));
  dirs.push(dir);
  return join(dir, 'pid');
}

const readPid = (file: string): number => Number(readFileSync(file, 'utf8').trim());

async function failure(p: Promise<unknown>): Promise<CommandError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CommandError);
  return err as CommandError;
}

describe('run', () => {
  it('answers with stdout, and fails with the exit code and stderr', async () => {
    expect((await run('sh', ['-c', 'echo out; echo err >&2'])).stdout).toBe('out\n');
    const err = await failure(run('sh', ['-c', 'echo broken >&2; exit 3']));
    expect(err.exitCode).toBe(3);
    expect(err.message).toContain('failed (exit 3): broken');
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.timedOut).toBe(false);
  });

  it('fails clearly when the command does not exist', async () => {
    expect((await failure(run('/nonexistent/tool', []))).message).toContain('could not be started');
  });

  it('kills a hung command and its process group at the deadline', async () => {
    const file = pidFile();
    const t0 = Date.now();
    const err = await failure(run('sh', ['-c', `sleep 300 & echo $! > ${file}; wait`], { timeoutMs: 300 }));
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(err.message).toContain('timed out after 300 ms');
    expect(err.timedOut).toBe(true);
    // The shell's child was in its group: it goes too.
    expect(await waitForExit(readPid(file), 2000)).toBe(true);
  });

  it('fails at the deadline when the command exited but its child still holds stdout, and kills that child', async () => {
    const file = pidFile();
    const t0 = Date.now();
    const err = await failure(run('sh', ['-c', `sleep 300 & echo $! > ${file}; exit 0`], { timeoutMs: 300 }));
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(err.message).toContain('still held its output after 300 ms');
    expect(err.timedOut).toBe(true);
    expect(await waitForExit(readPid(file), 2000)).toBe(true);
  });

  it('fails at the deadline even when the child holding stdout left the process group', async () => {
    const file = pidFile();
    const t0 = Date.now();
    const err = await failure(run('sh', ['-c', `setsid sleep 300 & echo $! > ${file}; sleep 300`], { timeoutMs: 300 }));
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(err.message).toContain('timed out after 300 ms');
    const escaped = readPid(file);
    strays.push(escaped);
    // Out of reach of a group kill, yet the call returned.
    expect(await isAlive(escaped)).toBe(true);
  });

  it('a command that finishes in time with a short-lived child is not affected', async () => {
    const { stdout } = await run('sh', ['-c', '(sleep 0.1; echo late) & echo early; wait'], { timeoutMs: 5000 });
    expect(stdout).toBe('early\nlate\n');
  });
});
