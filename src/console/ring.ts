/** The last `capacity` bytes written, in order. */
export class ByteRing {
  private readonly buf: Buffer;
  /** Bytes ever written. */
  private written = 0;

  constructor(readonly capacity: number) {
    this.buf = Buffer.alloc(capacity);
  }

  get length(): number {
    return Math.min(this.written, this.capacity);
  }

  /** True once more was written than it holds: what it holds is not all there was. */
  get wrapped(): boolean {
    return this.written > this.capacity;
  }

  push(data: Buffer): void {
    const cap = this.capacity;
    if (cap === 0) return;
    const tail = data.length > cap ? data.subarray(data.length - cap) : data;
    const skipped = data.length - tail.length;
    const at = (this.written + skipped) % cap;
    const first = Math.min(tail.length, cap - at);
    tail.copy(this.buf, at, 0, first);
    if (first < tail.length) tail.copy(this.buf, 0, first);
    this.written += data.length;
  }

  /** A copy of what it holds, oldest byte first. */
  snapshot(): Buffer {
    const cap = this.capacity;
    if (this.written <= cap) return Buffer.from(this.buf.subarray(0, this.written));
    const at = this.written % cap;
    return Buffer.concat([this.buf.subarray(at), this.buf.subarray(0, at)]);
  }
}
