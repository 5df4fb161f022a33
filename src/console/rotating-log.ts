import type { Logger } from '../host/log.js';
import { LogFile, NODE_LOG_FS, openIfThere, rotatedPath, type LogFs } from './log-file.js';

const NEWLINE = 0x0a;
/** console.log is readable by vmlet and its group only: a console may show secrets. */
const LOG_MODE = 0o640;

export interface RotatingLogOptions {
  /** console.log is rotated to console.log.1 before it would grow past this: the log takes at most twice this on disk. */
  maxBytes: number;
  /** Output accepted but not yet written; beyond it output is dropped, and the log says how much. */
  bufferBytes: number;
  /** Called after output has been written (log followers read it then). */
  onWritten?: () => void;
  logger: Logger;
  fs?: LogFs;
}

/** The line that stands in the log where output was dropped. */
export function droppedMarker(bytes: number): string {
  return `[vmlet: ${bytes} bytes of console output dropped]`;
}

/**
 * A VM's console log as vmlet writes it, from the serial stream it reads: console.log, rotated
 * to console.log.1 (replacing it) before it would grow past `maxBytes`, so the two files never
 * hold more than twice that, whatever the guest prints. It is also the LogFile of those files,
 * with offsets that keep counting across rotations.
 *
 * `append` never blocks: output gathers in memory while a write is in progress and goes to disk
 * in one write after it (the serial stream comes in small chunks), through the same queue as the
 * reads, so no read sees a rotation half done. A disk slower than the guest fills the buffer
 * (`bufferBytes`); what comes then is dropped until the buffer is taken, and a line
 * "[vmlet: N bytes of console output dropped]" stands where it was. A failed write is counted
 * the same way. Appends to what an earlier vmlet wrote (the log outlives daemon restarts), and
 * never creates the directory: a VM deleted meanwhile has none.
 */
export class RotatingLog extends LogFile {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Dropped after what is pending (the buffer was full); its marker goes after the pending bytes. */
  private overflow = 0;
  /** Lost in failed writes, before what is pending; its marker goes first. */
  private lost = 0;
  private scheduled = false;
  /** Appends are ignored. */
  private closed = false;
  /** Closed and written: the files are only read (reopened for reading when need be). */
  private readOnly = false;
  private failing = false;
  /** Bytes in console.log (it is only written here). */
  private currentSize = 0;
  /** The last byte written: a marker starts on a line of its own. */
  private lastByte = NEWLINE;
  /** Offset of the end of the log when it was first opened: what came before this log was written. */
  private initial?: number;
  private dropped = 0;
  private readonly maxBytes: number;
  private readonly bufferBytes: number;
  private readonly onWritten: () => void;
  private readonly logger: Logger;

  constructor(path: string, options: RotatingLogOptions) {
    super(path, options.fs ?? NODE_LOG_FS);
    this.maxBytes = options.maxBytes;
    this.bufferBytes = options.bufferBytes;
    this.onWritten = options.onWritten ?? (() => undefined);
    this.logger = options.logger;
  }

  /** Bytes of output dropped so far (the disk could not keep up, or a write failed). */
  get droppedBytes(): number {
    return this.dropped;
  }

  /** Bytes accepted and not yet written. */
  get bufferedBytes(): number {
    return this.pendingBytes;
  }

  /** Takes guest output; it is written soon, in order, or counted as dropped. */
  append(chunk: Buffer): void {
    if (this.closed || chunk.length === 0) return;
    // The first chunk is always taken, so a chunk larger than the buffer is not dropped for its size alone.
    if (this.overflow > 0 || (this.pendingBytes > 0 && this.pendingBytes + chunk.length > this.bufferBytes)) {
      this.overflow += chunk.length;
      this.dropped += chunk.length;
    } else {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
    }
    if (this.scheduled) return;
    this.scheduled = true;
    void this.exclusive(() => {
      this.scheduled = false;
      return this.writePending();
    });
  }

  /** Resolves once everything appended so far is written (or counted as dropped). */
  flushed(): Promise<void> {
    return this.exclusive(async () => undefined);
  }

  /** The end of the log as it was before this log first opened it: bytes before it were written by an earlier one. */
  initialEnd(): Promise<{ end: number; whole: boolean }> {
    return this.exclusive(async () => {
      await this.ensureOpen().catch((err: unknown) => this.logger.warn({ err, path: this.path }, 'could not open the console log'));
      return { end: this.initial ?? this.base + this.currentSize, whole: this.whole ?? true };
    });
  }

  /** Writes what is appended so far, then closes the files; later appends are ignored. */
  override async close(): Promise<void> {
    this.closed = true;
    await this.exclusive(async () => {
      await this.writePending();
      this.readOnly = true;
      await this.closeFiles();
    });
  }

  /** Drops what is not written yet and writes nothing more (the VM and its log are being deleted). */
  async discard(): Promise<void> {
    this.closed = true;
    this.pending = [];
    this.pendingBytes = 0;
    this.overflow = 0;
    this.lost = 0;
    await this.close();
  }

  protected override async currentBytes(): Promise<number> {
    return this.currentSize;
  }

  /**
   * Inside `exclusive`: opens console.log for appending, and console.log.1 for reading. After a
   * failure (the file was removed, a write failed) it opens console.log again; offsets go on from
   * where they were. Once closed, it only reads.
   */
  protected override async ensureOpen(): Promise<void> {
    if (this.current) return;
    if (this.readOnly) {
      this.current = await openIfThere(this.fs, this.path, 'r');
      return;
    }
    const first = this.whole === undefined;
    if (first) {
      this.previous = await openIfThere(this.fs, rotatedPath(this.path), 'r');
      this.previousBytes = this.previous ? (await this.previous.stat()).size : 0;
      this.base = this.previousBytes;
      this.whole = this.previous === undefined;
    }
    const current = await this.fs.open(this.path, 'a+', LOG_MODE);
    const size = (await current.stat()).size;
    if (!first) {
      // Again after a failure: the file ends where the log ends (a new, empty one starts there).
      const end = this.base + this.currentSize;
      const base = Math.max(0, end - size);
      if (base !== this.base) await this.dropPrevious();
      this.base = base;
    }
    this.currentSize = size;
    this.current = current;
    this.initial ??= this.base + this.currentSize;
  }

  /** Inside `exclusive`: writes what is pending, rotating as it goes. Never throws. */
  private async writePending(): Promise<void> {
    if (this.pendingBytes === 0 && this.overflow === 0 && this.lost === 0) return;
    const guest = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    const { lost, overflow } = this;
    this.pending = [];
    this.pendingBytes = 0;
    this.lost = 0;
    this.overflow = 0;
    const before = lost > 0 ? this.marker(lost, this.lastByte) : Buffer.alloc(0);
    const after = overflow > 0 ? this.marker(overflow, guest.length > 0 ? guest.at(-1)! : before.length > 0 ? NEWLINE : this.lastByte) : Buffer.alloc(0);
    const batch = Buffer.concat([before, guest, after]);
    let written = 0;
    try {
      await this.ensureOpen();
      while (written < batch.length) {
        if (this.currentSize >= this.maxBytes) await this.rotate();
        const part = batch.subarray(written, written + this.maxBytes - this.currentSize);
        written += await this.writeAll(part);
      }
      this.lastByte = batch.at(-1)!;
      if (this.failing) this.logger.info({ path: this.path }, 'console log written again');
      this.failing = false;
    } catch (err) {
      if (written > 0) this.lastByte = batch[written - 1]!;
      // What was not written is lost; the markers not written are owed again (the end one was not).
      const guestWritten = Math.min(guest.length, Math.max(0, written - before.length));
      this.lost = (written < before.length ? lost : 0) + guest.length - guestWritten + overflow;
      this.dropped += guest.length - guestWritten;
      if (!this.failing) this.logger.warn({ err, path: this.path }, 'could not write the console log; output is dropped (and counted) until it can');
      this.failing = true;
      const current = this.current;
      this.current = undefined;
      await current?.close().catch(() => undefined);
    }
    this.onWritten();
  }

  /** Appends all of `data` to console.log; returns its length (throws after a partial write, with currentSize right). */
  private async writeAll(data: Buffer): Promise<number> {
    for (let done = 0; done < data.length; ) {
      const { bytesWritten } = await this.current!.write(data, done, data.length - done);
      done += bytesWritten;
      this.currentSize += bytesWritten;
    }
    return data.length;
  }

  /**
   * Inside `exclusive`: console.log becomes console.log.1 (the one before goes) and a new
   * console.log starts. Should the rename fail, console.log starts over empty: the bound holds.
   */
  private async rotate(): Promise<void> {
    const old = this.current!;
    this.current = undefined;
    await this.dropPrevious();
    let renamed = true;
    try {
      await this.fs.rename(this.path, rotatedPath(this.path));
    } catch (err) {
      renamed = false;
      this.logger.warn({ err, path: this.path }, 'could not rotate the console log; starting it over');
    }
    if (renamed) {
      // The handle stays readable: console.log.1 is the same file.
      this.previous = old;
      this.previousBytes = this.currentSize;
    } else {
      await old.close().catch(() => undefined);
    }
    this.base += this.currentSize;
    this.currentSize = 0;
    this.current = await this.fs.open(this.path, renamed ? 'a+' : 'w+', LOG_MODE);
  }

  /** Inside `exclusive`: the older half is no longer read (rotated out, or no longer in line with console.log). */
  private async dropPrevious(): Promise<void> {
    const previous = this.previous;
    this.previous = undefined;
    this.previousBytes = 0;
    await previous?.close().catch(() => undefined);
  }

  private marker(bytes: number, before: number): Buffer {
    return Buffer.from(`${before === NEWLINE ? '' : '\r\n'}${droppedMarker(bytes)}\r\n`);
  }
}
