/**
 * What a scrape shows of each QEMU's monitor (block statistics, the balloon's guest statistics),
 * read by a poll every `intervalMs` per QEMU instead of on every scrape. A QEMU answers its
 * monitor one command at a time, beside its vCPUs; a busy one answers only in its next time slice,
 * so a scrape that waited for 40 of them lasted as long as the slowest. The interval is the one at
 * which QEMU itself refreshes the guest statistics (BALLOON_STATS_INTERVAL_SECONDS). Only the first
 * scrape of a QEMU waits for its read; a QEMU that no scrape asked for during `idleMs` is polled no
 * more. A failed poll forgets the figures: the next scrape reads itself and tells the failure.
 */
export type QmpRead<T> = () => Promise<T>;

interface Entry<T> {
  figures?: T;
  first?: Promise<T>;
  wantedAt: number;
  timer?: NodeJS.Timeout;
}

export class QmpPoll<T> {
  private readonly entries = new Map<string, Entry<T>>();

  constructor(
    private readonly intervalMs: number,
    private readonly idleMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The last figures of `key`; `read` is what each poll of it runs. */
  get(key: string, read: QmpRead<T>): Promise<T> {
    const existing = this.entries.get(key);
    if (existing) {
      existing.wantedAt = this.now();
      if (existing.figures !== undefined) return Promise.resolve(existing.figures);
      if (existing.first) return existing.first;
    }
    const entry: Entry<T> = { wantedAt: this.now() };
    this.entries.set(key, entry);
    entry.first = read().then(
      (figures) => {
        if (this.entries.get(key) === entry) {
          entry.figures = figures;
          entry.first = undefined;
          this.schedule(key, entry, read);
        }
        return figures;
      },
      (err: unknown) => {
        if (this.entries.get(key) === entry) this.entries.delete(key);
        throw err;
      },
    );
    return entry.first;
  }

  /** Stops polling QEMUs that are gone. */
  keepOnly(keys: ReadonlySet<string>): void {
    for (const key of [...this.entries.keys()]) if (!keys.has(key)) this.forget(key);
  }

  /** Stops every poll. */
  stop(): void {
    for (const key of [...this.entries.keys()]) this.forget(key);
  }

  private forget(key: string): void {
    clearTimeout(this.entries.get(key)?.timer);
    this.entries.delete(key);
  }

  private schedule(key: string, entry: Entry<T>, read: QmpRead<T>): void {
    entry.timer = setTimeout(() => {
      if (this.entries.get(key) !== entry) return;
      if (this.now() - entry.wantedAt > this.idleMs) {
        this.entries.delete(key);
        return;
      }
      read().then(
        (figures) => {
          if (this.entries.get(key) !== entry) return;
          entry.figures = figures;
          this.schedule(key, entry, read);
        },
        () => {
          if (this.entries.get(key) === entry) this.entries.delete(key);
        },
      );
    }, this.intervalMs);
    entry.timer.unref();
  }
}
