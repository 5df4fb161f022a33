/**
 * The balloon's `guest-stats` of each QEMU, read at most once per QEMU polling interval. QEMU
 * itself refreshes them only that often (BALLOON_STATS_INTERVAL_SECONDS), so reading them on
 * every scrape would cost a busy QEMU one more monitor round trip for nothing new. A scrape shows
 * the last answer; when that is older than the interval, the scrape asks again once its own
 * query is answered, without waiting for it (the next scrape shows it). Only a QEMU with nothing
 * read yet makes the scrape wait.
 */
export type StatsReader = () => Promise<unknown>;

interface Entry {
  answer: unknown;
  readAt: number;
  refreshing: boolean;
}

export class GuestStatsCache {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly maxAgeMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The answer to show for `key`; `read` runs (and is waited for) only when nothing is cached. */
  async get(key: string, read: StatsReader): Promise<unknown> {
    const entry = this.entries.get(key);
    if (entry) return entry.answer;
    const answer = await read();
    this.entries.set(key, { answer, readAt: this.now(), refreshing: false });
    return answer;
  }

  /**
   * Reads `key` again in the background when its answer is older than the interval. A failed
   * read forgets the answer: the next scrape reads it itself and tells the failure.
   */
  refreshIfStale(key: string, read: StatsReader): void {
    const entry = this.entries.get(key);
    if (!entry || entry.refreshing || this.now() - entry.readAt < this.maxAgeMs) return;
    entry.refreshing = true;
    read().then(
      (answer) => {
        if (this.entries.get(key) === entry) this.entries.set(key, { answer, readAt: this.now(), refreshing: false });
      },
      () => {
        if (this.entries.get(key) === entry) this.entries.delete(key);
      },
    );
  }

  /** Forgets QEMUs that are gone. */
  keepOnly(keys: ReadonlySet<string>): void {
    for (const key of this.entries.keys()) if (!keys.has(key)) this.entries.delete(key);
  }
}
