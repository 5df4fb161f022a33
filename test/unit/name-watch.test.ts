import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NameWatch } from '../../src/host/name-watch.js';

let dir: string;
const watches: NameWatch[] = [];

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'vmlet-watch-'));
});

afterEach(async () => {
  for (const w of watches.splice(0)) w.close();
  await rm(dir, { recursive: true, force: true });
});

const watch = (file: string): NameWatch => {
  const w = new NameWatch(path.join(dir, file));
  watches.push(w);
  return w;
};

describe('NameWatch', () => {
  it('wakes a waiter when the file is created, long before its timeout', async () => {
    const w = watch('qmp.sock');
    const started = Date.now();
    const woken = w.next(30_000);
    await writeFile(path.join(dir, 'qmp.sock'), '');
    await woken;
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('remembers a change that happened while nobody waited', async () => {
    const w = watch('qmp.sock');
    await writeFile(path.join(dir, 'qmp.sock'), '');
    // The event arrives on the event loop; the next wait must not miss it (timeout far away).
    const started = Date.now();
    await w.next(30_000);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('ignores other names in the directory and runs to its timeout', async () => {
    const w = watch('qmp.sock');
    let woken = false;
    const waiting = w.next(200).then(() => (woken = true));
    await writeFile(path.join(dir, 'serial.sock'), '');
    const started = Date.now();
    await waiting;
    expect(woken).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(100);
  });

  it('degrades to timeouts when the directory cannot be watched', async () => {
    const w = watch('missing-dir/qmp.sock');
    const started = Date.now();
    await w.next(50);
    expect(Date.now() - started).toBeGreaterThanOrEqual(40);
  });
});
