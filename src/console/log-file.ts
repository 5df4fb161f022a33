import { open, rename } from 'node:fs/promises';

const NEWLINE = 0x0a;
const SCAN_BLOCK = 64 * 1024;

/** An open file of the log: what LogFile and RotatingLog use of node's FileHandle. */
export interface LogHandle {
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  /** Appends (the file is opened with O_APPEND). */
  write(buffer: Buffer, offset: number, length: number): Promise<{ bytesWritten: number }>;
  stat(): Promise<{ size: number }>;
  close(): Promise<void>;
}

/** The file operations of a console log, asynchronous all (tests put a slow disk here). */
export interface LogFs {
  open(path: string, flags: 'r' | 'a+' | 'w+', mode?: number): Promise<LogHandle>;
  rename(from: string, to: string): Promise<void>;
}

export const NODE_LOG_FS: LogFs = { open, rename };

/** Bytes of the log and the offset they start at: later than asked when the start was rotated out. */
export interface LogChunk {
  at: number;
  data: Buffer;
}

/** Where console.log is rotated to: the older half of the log. */
export const rotatedPath = (path: string): string => `${path}.1`;

/**
 * A VM's console log read as one stream: console.log.1 (the older half, once the log has been
 * rotated; see RotatingLog) followed by console.log. An offset is a position in that stream,
 * counted from the first byte of console.log.1 as the files were first opened, and keeps counting
 * across rotations, so an offset once handed out always means the same byte. Bytes rotated out
 * are gone: a read from before the oldest byte left starts at it. Missing files read as empty.
 *
 * This class only reads (the log of a VM without a console session: `vmlet logs` of a stopped
 * VM); the files it opened stay what it reads, whatever happens to their names meanwhile.
 */
export class LogFile {
  /** console.log. */
  protected current?: LogHandle;
  /** console.log.1. */
  protected previous?: LogHandle;
  /** Offset of the first byte of console.log. */
  protected base = 0;
  /** Bytes of console.log.1 that belong to the stream (those before `base`). */
  protected previousBytes = 0;
  /** Set once the files were first opened: false when console.log.1 was there (the start of the log is gone). */
  protected whole?: boolean;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly path: string,
    protected readonly fs: LogFs = NODE_LOG_FS,
  ) {}

  /** Offset just past the last byte of the log. */
  size(): Promise<number> {
    return this.exclusive(async () => {
      await this.ensureOpen();
      return this.base + (await this.currentBytes());
    });
  }

  /** Bytes [start, end), or fewer: from the oldest byte left when `start` was rotated out, up to the end of the log. */
  async read(start: number, end: number): Promise<Buffer> {
    return (await this.readFrom(start, end)).data;
  }

  /**
   * At most `maxBytes` of [start, end), from `start` or, when that was rotated out, from the oldest
   * byte left (`at` says which). Empty only when nothing of [start, end) is left.
   */
  readFrom(start: number, end: number, maxBytes = Infinity): Promise<LogChunk> {
    return this.exclusive(async () => {
      await this.ensureOpen();
      const oldest = this.base - this.previousBytes;
      const from = Math.max(start, oldest);
      const to = Math.min(end, this.base + (await this.currentBytes()), from + maxBytes);
      if (to <= from) return { at: from, data: Buffer.alloc(0) };
      const parts: Buffer[] = [];
      if (from < this.base && this.previous) {
        const inPrevious = this.previousBytes - (this.base - from);
        parts.push(await readAll(this.previous, inPrevious, Math.min(to, this.base) - from));
      }
      if (to > this.base && this.current) {
        const at = Math.max(from, this.base);
        parts.push(await readAll(this.current, at - this.base, to - at));
      }
      return { at: from, data: parts.length === 1 ? parts[0]! : Buffer.concat(parts) };
    });
  }

  /**
   * Where the last `lines` lines before `end` start (the oldest byte left when there are fewer). A
   * final line without a line break counts as a line; a line break at `end - 1` ends the last line
   * rather than starting an empty one.
   */
  async tailLinesStart(end: number, lines: number): Promise<number> {
    if (lines <= 0) return end;
    let seen = 0;
    for (let pos = end; pos > 0; ) {
      const from = Math.max(0, pos - SCAN_BLOCK);
      const { at, data } = await this.readFrom(from, pos);
      if (data.length === 0) return Math.min(at, end);
      for (let i = data.length - 1; i >= 0; i--) {
        if (data[i] !== NEWLINE || at + i === end - 1) continue;
        if (++seen === lines) return at + i + 1;
      }
      // The bytes before `at` were rotated out.
      if (at > from) return at;
      pos = from;
    }
    return 0;
  }

  async close(): Promise<void> {
    await this.exclusive(() => this.closeFiles());
  }

  /** Runs `fn` with no other read, write or rotation of the log in progress. */
  protected exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Inside `exclusive`: bytes in console.log. */
  protected async currentBytes(): Promise<number> {
    return this.current ? (await this.current.stat()).size : 0;
  }

  /** Inside `exclusive`: opens the files for reading; a missing console.log is looked for again next time. */
  protected async ensureOpen(): Promise<void> {
    if (this.current) return;
    if (this.whole === undefined) {
      this.previous = await openIfThere(this.fs, rotatedPath(this.path), 'r');
      this.previousBytes = this.previous ? (await this.previous.stat()).size : 0;
      this.base = this.previousBytes;
    }
    this.current = await openIfThere(this.fs, this.path, 'r');
    if (this.current || this.previous) this.whole ??= this.previous === undefined;
  }

  /** Inside `exclusive`. */
  protected async closeFiles(): Promise<void> {
    const handles = [this.current, this.previous];
    this.current = undefined;
    this.previous = undefined;
    this.previousBytes = 0;
    await Promise.all(handles.map((h) => h?.close().catch(() => undefined)));
  }
}

/** `length` bytes at `position`, or fewer when the file is shorter. */
async function readAll(handle: LogHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await handle.read(buf, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got === length ? buf : buf.subarray(0, got);
}

export async function openIfThere(fs: LogFs, path: string, flags: 'r'): Promise<LogHandle | undefined> {
  try {
    return await fs.open(path, flags);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
