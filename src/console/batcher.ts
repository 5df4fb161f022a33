import { performance } from 'node:perf_hooks';

/**
 * Coalesces chunks into fewer, larger ones: the first chunk after a quiet spell goes out at once
 * (a keystroke's echo is not delayed), later ones at most once per `intervalMs`, or as soon as
 * `maxBytes` have gathered. Order is kept.
 */
export class Batcher {
  private chunks: Buffer[] = [];
  private bytes = 0;
  private timer?: NodeJS.Timeout;
  private lastFlush = -Infinity;

  constructor(
    private readonly intervalMs: number,
    private readonly maxBytes: number,
    private readonly out: (data: Buffer) => void,
  ) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    if (this.bytes >= this.maxBytes) {
      this.flush();
      return;
    }
    if (this.timer) return;
    const wait = this.lastFlush + this.intervalMs - performance.now();
    if (wait <= 0) this.flush();
    else this.timer = setTimeout(() => this.flush(), wait);
  }

  /** Sends what has gathered now. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.bytes === 0) return;
    const data = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.bytes);
    this.chunks = [];
    this.bytes = 0;
    this.lastFlush = performance.now();
    this.out(data);
  }
}
