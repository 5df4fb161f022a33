import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitForExit } from '../../src/host/process.js';
import { lockDir, lockWithFlockCommand } from '../../src/host/single-instance.js';

// As on a host where native/flock was not built (an image without native/): flock(1).
const byCommand = vi.fn(lockWithFlockCommand);

let dir: string;
let holder: ChildProcess | undefined;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'vmlet-single-'));
});
afterEach(async () => {
  holder?.kill('SIGKILL');
  if (holder?.pid) await waitForExit(holder.pid, 5000);
  holder = undefined;
  rmSync(dir, { recursive: true, force: true });
});

describe('the dir lock without the addon', () => {
  it('refuses a dir another process holds, and takes it once that holder is killed', async () => {
    const lock = join(dir, 'vmlet.lock');
    writeFileSync(lock, '4242\n');
    holder = spawn('/bin/sh', ['-c', `exec 9>>"$1"; flock -n 9 || exit 1; echo locked; exec sleep 300`, 'sh', lock]);
    const [line] = (await once(holder.stdout!, 'data')) as [Buffer];
    expect(line.toString()).toBe('locked\n');
    await expect(lockDir(dir, 'state', byCommand)).rejects.toThrow(`another vmlet (pid 4242) is using the state dir ${dir}`);
    holder.kill('SIGKILL');
    await waitForExit(holder.pid!, 5000);
    const release = await lockDir(dir, 'state', byCommand);
    expect(readFileSync(lock, 'utf8')).toBe(`${process.pid}\n`);
    await expect(lockDir(dir, 'state', byCommand)).rejects.toThrow(`another vmlet (pid ${process.pid}) is using the state dir`);
    release();
    expect(byCommand).toHaveBeenCalledTimes(3);
  });
});
