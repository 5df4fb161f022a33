import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readdir, readlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { once } from 'node:events';
import { freeUnixSocketPath, lockDir } from '../../src/host/single-instance.js';
import { waitForExit } from '../../src/host/process.js';
import { until } from '../support/poll.js';

let dir: string;
const children: ChildProcess[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'vmlet-single-'));
});
afterEach(async () => {
  for (const c of children.splice(0)) {
    c.kill('SIGKILL');
    if (c.pid) await waitForExit(c.pid, 5000);
  }
  rmSync(dir, { recursive: true, force: true });
});

/** A process that holds an flock on the file, as a vmlet does, until it is killed. */
async function holder(file: string): Promise<ChildProcess> {
  const c = spawn('/bin/sh', ['-c', `exec 9>>"$1"; flock -n 9 || exit 1; echo locked; exec sleep 300`, 'sh', file]);
  children.push(c);
  const [line] = (await once(c.stdout!, 'data')) as [Buffer];
  expect(line.toString()).toBe('locked\n');
  return c;
}

describe('one vmlet per state dir', () => {
  it('refuses a dir another process holds the lock of, and takes it once that holder is killed', async () => {
    const lock = join(dir, 'vmlet.lock');
    writeFileSync(lock, '4242\n');
    const other = await holder(lock);
    await expect(lockDir(dir, 'state')).rejects.toThrow(`another vmlet (pid 4242) is using the state dir ${dir}`);
    other.kill('SIGKILL');
    await waitForExit(other.pid!, 5000);
    // kill -9 leaves the file, not the lock.
    const release = await lockDir(dir, 'state');
    expect(readFileSync(lock, 'utf8')).toBe(`${process.pid}\n`);
    release();
  });

  it('is exclusive within one process too, and released by its release function', async () => {
    const release = await lockDir(dir, 'run');
    await expect(lockDir(dir, 'run')).rejects.toThrow(`another vmlet (pid ${process.pid}) is using the run dir`);
    release();
    release();
    (await lockDir(dir, 'run'))();
  });

  it('is not inherited by the commands vmlet runs (a QEMU must not keep the dir locked after vmlet dies)', async () => {
    const release = await lockDir(dir, 'state');
    const c = spawn('/bin/sleep', ['30']);
    children.push(c);
    await once(c, 'spawn');
    const fds = await readdir(`/proc/${c.pid}/fd`);
    const targets = await Promise.all(fds.map((fd) => readlink(`/proc/${c.pid}/fd/${fd}`).catch(() => '')));
    expect(targets).not.toContain(join(dir, 'vmlet.lock'));
    release();
  });
});

describe('the unix socket path', () => {
  it('is free when nothing is there', async () => {
    await freeUnixSocketPath(join(dir, 'none.sock'));
  });

  it('is never taken from a regular file', async () => {
    const file = join(dir, 'important.txt');
    writeFileSync(file, 'precious');
    await expect(freeUnixSocketPath(file)).rejects.toThrow('is not a socket');
    expect(readFileSync(file, 'utf8')).toBe('precious');
  });

  it('is refused while something serves on it, and a stale socket is removed', async () => {
    const path = join(dir, 'vmlet.sock');
    const server = net.createServer().listen(path);
    await new Promise((r) => server.once('listening', r));
    await expect(freeUnixSocketPath(path)).rejects.toThrow('is serving on');
    // A listener killed with SIGKILL leaves its socket file behind.
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(join(dir, 'stale.sock'))})`]);
    children.push(child);
    await until('the stale socket', async () => existsSync(join(dir, 'stale.sock')) || undefined, 10_000);
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
    await freeUnixSocketPath(join(dir, 'stale.sock'));
    expect(existsSync(join(dir, 'stale.sock'))).toBe(false);
    await new Promise((r) => server.close(r));
  });
});
