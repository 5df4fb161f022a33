import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

/** A process whose command line looks like a vmlet's. */
function fakeVmlet(): ChildProcess {
  const c = spawn('/bin/sh', ['-c', 'sleep 30; true', 'vmlet']);
  children.push(c);
  return c;
}

describe('one vmlet per state dir', () => {
  it('refuses a state dir a live vmlet holds, takes over a dead one, and releases its own', async () => {
    const other = fakeVmlet();
    writeFileSync(join(dir, 'vmlet.lock'), `${other.pid}\n`);
    await expect(lockDir(dir, 'state')).rejects.toThrow(`another vmlet (pid ${other.pid}) is using the state dir`);
    other.kill('SIGKILL');
    await waitForExit(other.pid!, 5000);
    const release = await lockDir(dir, 'state');
    expect(readFileSync(join(dir, 'vmlet.lock'), 'utf8').trim()).toBe(String(process.pid));
    release();
    expect(existsSync(join(dir, 'vmlet.lock'))).toBe(false);
  });

  it('does not take a pid that now belongs to some other program for a vmlet', async () => {
    const unrelated = spawn('/bin/sleep', ['30']);
    children.push(unrelated);
    writeFileSync(join(dir, 'vmlet.lock'), `${unrelated.pid}\n`);
    (await lockDir(dir, 'state'))();
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
