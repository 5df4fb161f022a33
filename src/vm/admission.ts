/**
 * At most `limit` QEMU initialisations at a time (starts and incoming migrations). A start
 * beyond that waits its turn instead of failing on a timeout meant for one QEMU, and learns
 * how many are ahead of it. First come, first served.
 */
export class Admission {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new Error(`admission limit must be a positive integer, got ${limit}`);
  }

  /** Waits for a slot; `queued` is told how many are ahead when the caller has to wait. Returns the release. */
  async enter(queued?: (ahead: number) => void): Promise<() => void> {
    if (this.running < this.limit && this.waiting.length === 0) {
      this.running++;
      return this.releaser();
    }
    queued?.(this.waiting.length + this.running - this.limit + 1);
    await new Promise<void>((resolve) => this.waiting.push(resolve));
    return this.releaser();
  }

  /** Starts in progress and waiting, for logs and metrics. */
  get load(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.waiting.length };
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      // The slot passes straight to the next waiter: `running` stays the same.
      if (next) next();
      else this.running--;
    };
  }
}
