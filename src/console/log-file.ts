import { open, type FileHandle } from 'node:fs/promises';

const NEWLINE = 0x0a;
const SCAN_BLOCK = 64 * 1024;

/**
 * Positional reads of a VM's console.log, the file QEMU appends every byte of guest serial output
 * to (chardev `logfile=…,logappend=on`). Append-only, so a byte range once read never changes.
 * A missing file reads as empty.
 */
export class LogFile {
  private handle?: FileHandle;

  constructor(readonly path: string) {}

  private async file(): Promise<FileHandle | undefined> {
    if (!this.handle) {
      try {
        this.handle = await open(this.path, 'r');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
    }
    return this.handle;
  }

  async size(): Promise<number> {
    const file = await this.file();
    return file ? (await file.stat()).size : 0;
  }

  /** Bytes [start, end); shorter when the file is. */
  async read(start: number, end: number): Promise<Buffer> {
    const file = await this.file();
    if (!file || end <= start) return Buffer.alloc(0);
    const buf = Buffer.alloc(end - start);
    let got = 0;
    while (got < buf.length) {
      const { bytesRead } = await file.read(buf, got, buf.length - got, start + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return got === buf.length ? buf : buf.subarray(0, got);
  }

  /**
   * Where the last `lines` lines before `end` start. A final line without a line break counts as
   * a line; a line break at `end - 1` ends the last line rather than starting an empty one.
   */
  async tailLinesStart(end: number, lines: number): Promise<number> {
    if (lines <= 0) return end;
    let pos = end;
    let seen = 0;
    // The line break that ends the last line is not a line of its own.
    let skipLast = end > 0 && (await this.read(end - 1, end))[0] === NEWLINE;
    while (pos > 0) {
      const from = Math.max(0, pos - SCAN_BLOCK);
      const block = await this.read(from, pos);
      for (let i = block.length - 1; i >= 0; i--) {
        if (block[i] !== NEWLINE) continue;
        if (skipLast) {
          skipLast = false;
          continue;
        }
        if (++seen === lines) return from + i + 1;
      }
      pos = from;
    }
    return 0;
  }

  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    await handle?.close().catch(() => undefined);
  }
}
