import { statSync } from 'node:fs';
import { mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConsoleHub } from '../../src/console/hub.js';
import { DEFAULT_CONSOLE_LIMITS, type ConsoleLimits } from '../../src/console/limits.js';
import { LogFile, NODE_LOG_FS, type LogFs, type LogHandle } from '../../src/console/log-file.js';
import { droppedMarker, RotatingLog, type RotatingLogOptions } from '../../src/console/rotating-log.js';
import { silentLogger } from '../../src/host/log.js';
import { FakeVms, isRun, line, lineNumbers, RecordingSink } from '../support/console-fakes.js';
import { FakeSerial } from '../support/fake-serial.js';

let dir: string;
let file: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'vmlet-console-log-'));
  file = path.join(dir, 'console.log');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const sizeOf = (p: string): number => {
  try {
    return statSync(p).size;
  } catch {
    return 0;
  }
};
const onDisk = (): number => sizeOf(file) + sizeOf(`${file}.1`);
const logText = async (): Promise<string> => (await readFile(`${file}.1`, 'latin1').catch(() => '')) + (await readFile(file, 'latin1').catch(() => ''));
const lines = (from: number, to: number): string => Array.from({ length: to - from }, (_, i) => line(from + i)).join('');
const rotating = (options: Partial<RotatingLogOptions> = {}): RotatingLog =>
  new RotatingLog(file, { maxBytes: 4096, bufferBytes: 1024 * 1024, logger: silentLogger(), ...options });

/** A disk whose writes wait until `release` (or fail while `failing`). */
class SlowDisk implements LogFs {
  writes = 0;
  failing = false;
  private gate?: Promise<void>;
  private open_ = (): void => undefined;

  hold(): void {
    this.gate = new Promise((resolve) => (this.open_ = resolve));
  }
  release(): void {
    this.gate = undefined;
    this.open_();
  }
  rename = NODE_LOG_FS.rename;
  async open(p: string, flags: 'r' | 'a+' | 'w+', mode?: number): Promise<LogHandle> {
    const handle = await open(p, flags, mode);
    return {
      read: (buffer, offset, length, position) => handle.read(buffer, offset, length, position),
      stat: () => handle.stat(),
      close: () => handle.close(),
      write: async (buffer, offset, length) => {
        this.writes++;
        await this.gate;
        if (this.failing) throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
        return handle.write(buffer, offset, length);
      },
    };
  }
}

describe('RotatingLog', () => {
  it('never holds more than two files of maxBytes under a flood, and keeps the newest output', async () => {
    let most = 0;
    const log = rotating({ onWritten: () => (most = Math.max(most, onDisk())) });
    let all = '';
    for (let n = 0; n < 40_000; n++) {
      // Chunks of 1 to 3 lines, as a serial socket delivers them.
      const chunk = lines(n, n + 1 + (n % 3));
      n += n % 3;
      all += chunk;
      log.append(Buffer.from(chunk));
      if (n % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await log.flushed();
    expect(all.length).toBeGreaterThan(50 * 4096);
    expect(most).toBeLessThanOrEqual(2 * 4096);
    expect(sizeOf(file)).toBeLessThanOrEqual(4096);
    expect(sizeOf(`${file}.1`)).toBe(4096);
    // Two files, nothing else; together the end of what was appended, nothing dropped.
    expect((await readdir(dir)).sort()).toEqual(['console.log', 'console.log.1']);
    expect(all.endsWith(await logText())).toBe(true);
    expect(log.droppedBytes).toBe(0);
    // Offsets count every byte ever written.
    expect(await log.size()).toBe(all.length);
    await log.close();
  });

  it('reads across the two files, and the last lines across a rotation', async () => {
    const log = rotating();
    // 512 lines of 8 bytes fill a file: 1100 lines leave 76 in console.log and 512 in console.log.1.
    log.append(Buffer.from(lines(0, 1100)));
    await log.flushed();
    expect(sizeOf(file)).toBe(76 * 8);
    const end = await log.size();
    expect(end).toBe(1100 * 8);
    const tail = await log.read(await log.tailLinesStart(end, 100), end);
    expect(tail.toString()).toBe(lines(1000, 1100));
    // More lines than are left: from the oldest byte left.
    expect(lineNumbers((await log.read(await log.tailLinesStart(end, 5000), end)).toString())[0]).toBe(1100 - 76 - 512);
    // A read from before the oldest byte starts at it.
    const chunk = await log.readFrom(0, end, 16);
    expect(chunk).toEqual({ at: (1100 - 76 - 512) * 8, data: Buffer.from(lines(512, 514)) });
    await log.close();

    // The same files read without a writer (a stopped VM).
    const reader = new LogFile(file);
    const size = await reader.size();
    expect(size).toBe((76 + 512) * 8);
    expect((await reader.read(await reader.tailLinesStart(size, 100), size)).toString()).toBe(lines(1000, 1100));
    expect((await reader.read(0, size)).toString()).toBe(lines(512, 1100));
    await reader.close();
  });

  it('appends to what an earlier vmlet wrote, rotated files included', async () => {
    await writeFile(`${file}.1`, lines(0, 10));
    await writeFile(file, lines(10, 20));
    const log = rotating();
    expect(await log.initialEnd()).toEqual({ end: 20 * 8, whole: false });
    log.append(Buffer.from(lines(20, 30)));
    await log.close();
    expect(await logText()).toBe(lines(0, 30));

    const fresh = new RotatingLog(path.join(dir, 'new.log'), { maxBytes: 4096, bufferBytes: 4096, logger: silentLogger() });
    expect(await fresh.initialEnd()).toEqual({ end: 0, whole: true });
    await fresh.close();
  });

  it('holds at most bufferBytes while the disk is slow, then marks how much it dropped', async () => {
    const disk = new SlowDisk();
    const log = rotating({ bufferBytes: 1000, maxBytes: 64 * 1024, fs: disk });
    log.append(Buffer.from('first\r\n'));
    await log.flushed();
    disk.hold();
    log.append(Buffer.from('x'.repeat(100)));
    // Its write has started and is held up.
    while (disk.writes < 2) await new Promise((resolve) => setImmediate(resolve));
    let accepted = 'x'.repeat(100);
    let offered = 0;
    for (let i = 0; i < 50; i++) {
      const chunk = `y${i}`.padEnd(99, '.') + '\n';
      offered += chunk.length;
      log.append(Buffer.from(chunk));
      expect(log.bufferedBytes).toBeLessThanOrEqual(1000);
      if (offered <= 1000) accepted += chunk;
    }
    expect(log.droppedBytes).toBe(offered - 1000);
    disk.release();
    await log.flushed();
    log.append(Buffer.from('after\r\n'));
    await log.close();
    expect(await readFile(file, 'latin1')).toBe(`first\r\n${accepted}${droppedMarker(offered - 1000)}\r\nafter\r\n`);
  });

  it('counts and marks output lost in a failed write, and writes again once it can', async () => {
    const disk = new SlowDisk();
    const log = rotating({ fs: disk });
    log.append(Buffer.from('one\r\n'));
    await log.flushed();
    disk.failing = true;
    log.append(Buffer.from('lost'));
    await log.flushed();
    expect(log.droppedBytes).toBe(4);
    disk.failing = false;
    log.append(Buffer.from('two\r\n'));
    await log.close();
    expect(await readFile(file, 'latin1')).toBe(`one\r\n${droppedMarker(4)}\r\ntwo\r\n`);
  });

  it('never creates a directory that is gone (a deleted VM), and writes nothing after discard', async () => {
    const log = rotating();
    log.append(Buffer.from('a\n'));
    await log.flushed();
    await rm(dir, { recursive: true });
    log.append(Buffer.from('x'.repeat(5000))); // would rotate
    await log.flushed();
    await expect(readdir(dir)).rejects.toMatchObject({ code: 'ENOENT' });
    await log.close();

    const other = path.join(os.tmpdir(), `vmlet-discard-${process.pid}.log`);
    const discarded = new RotatingLog(other, { maxBytes: 4096, bufferBytes: 4096, logger: silentLogger() });
    try {
      discarded.append(Buffer.from('kept\n'));
      await discarded.flushed();
      discarded.append(Buffer.from('dropped\n'));
      await discarded.discard();
      discarded.append(Buffer.from('after\n'));
      await discarded.flushed();
      expect(await readFile(other, 'latin1')).toBe('kept\n');
    } finally {
      await rm(other, { force: true });
    }
  });
});

describe('ConsoleHub with a rotating console log', () => {
  const LIMITS: ConsoleLimits = { ...DEFAULT_CONSOLE_LIMITS, historyBytes: 1000, connectRetryMs: 10, logMaxBytes: 4096 };
  const ID = 'rot-1';
  let fake: FakeSerial;
  let vms: FakeVms;
  let hub: ConsoleHub;

  beforeEach(async () => {
    fake = await FakeSerial.create();
    vms = new FakeVms();
    hub = new ConsoleHub(vms, silentLogger(), LIMITS).start();
  });
  afterEach(async () => {
    await hub.close();
    await fake.remove();
  });

  /** Emits lines [from, to), yielding now and then, as a guest printing fast would; every 100 lines, `pace(n)` may hold it up. */
  const emit = async (from: number, to: number, pace: (n: number) => Promise<void> = async () => undefined): Promise<void> => {
    for (let n = from; n < to; n++) {
      fake.emit(line(n));
      if (n % 7 === 0) await new Promise((resolve) => setImmediate(resolve));
      if (n % 100 === 99) await pace(n);
    }
  };

  it('a follower gets every line across rotations; the last lines span both files; the log stays bounded', async () => {
    vms.set(ID, fake.paths, 'Running');
    await fake.connected();
    const follower = new RecordingSink();
    const following = hub.streamLog({ id: ID, tailLines: 0, follow: true }, hub.client(follower));
    // 2000 lines of 8 bytes: three rotations at 4096 bytes; 464 lines stay in console.log. The
    // guest waits for the follower now and then: one further behind than the two files hold
    // (8 KiB here) would go on from the oldest line left.
    await emit(0, 2000, (n) => follower.until(line(n)));
    await follower.until(line(1999));
    expect(onDiskOf(fake.logPath)).toBeLessThanOrEqual(2 * 4096);
    await fake.stop();
    vms.set(ID, fake.paths, 'Stopped', 0);
    await following;
    expect(await follower.ended).toEqual({ kind: 'end' });
    expect(isRun(lineNumbers(follower.text), 0, 1999)).toBe(true);

    expect(sizeOf(fake.logPath)).toBe(464 * 8);
    const tail = new RecordingSink();
    await hub.streamLog({ id: ID, tailLines: 600, follow: false }, hub.client(tail));
    expect(await tail.ended).toEqual({ kind: 'end' });
    expect(tail.text).toBe(lines(1400, 2000));
  });

  it('history on attach after a restart comes from both files', async () => {
    vms.set(ID, fake.paths, 'Running');
    await fake.connected();
    // 3 × 512 + 40 lines: 40 lines (320 bytes) in console.log, less than the history (1000 bytes).
    await emit(0, 3 * 512 + 40);
    await fake.logged(line(3 * 512 + 39));
    expect(sizeOf(fake.logPath)).toBe(40 * 8);
    await hub.close();
    hub = new ConsoleHub(vms, silentLogger(), LIMITS).start();
    const sink = new RecordingSink();
    await hub.attachable(ID).attach(hub.client(sink));
    fake.emit(line(3 * 512 + 40));
    await sink.until(line(3 * 512 + 40));
    // 1000 bytes cut to whole lines: 125 lines.
    expect(isRun(lineNumbers(sink.text), 3 * 512 + 40 - 125, 3 * 512 + 40)).toBe(true);
  });
});

function onDiskOf(p: string): number {
  return sizeOf(p) + sizeOf(`${p}.1`);
}
