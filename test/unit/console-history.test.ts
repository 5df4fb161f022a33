import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ByteRing } from '../../src/console/ring.js';
import { joinHistory } from '../../src/console/history.js';
import { LogFile } from '../../src/console/log-file.js';

const b = (s: string): Buffer => Buffer.from(s);

describe('ByteRing', () => {
  it('keeps everything until full, then the last `capacity` bytes in order', () => {
    const ring = new ByteRing(8);
    ring.push(b('abc'));
    expect(ring.snapshot().toString()).toBe('abc');
    expect(ring.wrapped).toBe(false);
    ring.push(b('defgh'));
    expect(ring.snapshot().toString()).toBe('abcdefgh');
    expect(ring.wrapped).toBe(false);
    ring.push(b('ij'));
    expect(ring.snapshot().toString()).toBe('cdefghij');
    expect(ring.wrapped).toBe(true);
    ring.push(b('0123456789xyz'));
    expect(ring.snapshot().toString()).toBe('6789xyz'.padStart(8, '5'));
    expect(ring.length).toBe(8);
  });

  it('matches a plain tail for any sequence of pushes', () => {
    const ring = new ByteRing(13);
    let all = '';
    for (let i = 0; i < 200; i++) {
      const piece = 'x'.repeat(i % 17) + String(i);
      ring.push(b(piece));
      all += piece;
      expect(ring.snapshot().toString()).toBe(all.slice(-13));
    }
  });
});

describe('joinHistory', () => {
  it('returns all of it when it is complete and fits', () => {
    expect(joinHistory(b('a\nb'), b('c\n'), 10, true).toString()).toBe('a\nbc\n');
  });

  it('starts a cut window after its first line break', () => {
    // "x" is the byte before the window: the window "yz\nnew\n" starts mid-line.
    expect(joinHistory(b('xyz\n'), b('new\n'), 7, false).toString()).toBe('new\n');
  });

  it('keeps a window that starts right after a line break whole', () => {
    expect(joinHistory(b('\nab\n'), b('cd\n'), 6, false).toString()).toBe('ab\ncd\n');
  });

  it('keeps the last maxBytes when the window has no usable line break', () => {
    expect(joinHistory(b(''), b('abcdefgh'), 4, false).toString()).toBe('efgh');
    expect(joinHistory(b('abc'), b('def\n'), 4, false).toString()).toBe('def\n');
  });
});

describe('LogFile', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'vmlet-logfile-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads a missing file as empty', async () => {
    const log = new LogFile(path.join(dir, 'missing.log'));
    expect(await log.size()).toBe(0);
    expect((await log.read(0, 10)).length).toBe(0);
  });

  it('finds where the last N lines start', async () => {
    const file = path.join(dir, 'lines.log');
    await writeFile(file, 'one\ntwo\nthree\n# ');
    const log = new LogFile(file);
    const size = await log.size();
    const tail = async (n: number) => (await log.read(await log.tailLinesStart(size, n), size)).toString();
    expect(await tail(1)).toBe('# ');
    expect(await tail(2)).toBe('three\n# ');
    expect(await tail(4)).toBe('one\ntwo\nthree\n# ');
    expect(await tail(10)).toBe('one\ntwo\nthree\n# ');
    // A final line break ends the last line; it does not start an empty one.
    expect((await log.read(await log.tailLinesStart(size - 2, 1), size - 2)).toString()).toBe('three\n');
    await log.close();
  });

  it('counts lines across read blocks', async () => {
    const file = path.join(dir, 'big.log');
    const lines = Array.from({ length: 30_000 }, (_, i) => `line ${i}\n`);
    await writeFile(file, lines.join(''));
    const log = new LogFile(file);
    const size = await log.size();
    expect((await log.read(await log.tailLinesStart(size, 20_000), size)).toString()).toBe(lines.slice(-20_000).join(''));
    await log.close();
  });
});
