import type { VmletError } from '../model/errors.js';
import type { Logger } from '../host/log.js';
import type { ConsoleClient } from './client.js';
import type { ConsoleLimits } from './limits.js';
import type { LogFile } from './log-file.js';

/**
 * console.log followed as `tail -f` would, for log followers (`vmlet logs -f`). vmlet appends
 * the guest's output to it (RotatingLog), so the log is one ordered tape and a follower's
 * position is a plain offset (offsets go on across rotations): an attaching follower gets
 * [from, end) from the files and then every byte after `end`, with `end` taken while no read is
 * in progress, so no byte of the log is sent twice or skipped. A follower so far behind that its
 * bytes were rotated out goes on from the oldest byte left. Reads are serialised; `pump` (rung
 * after each write to the log) reads what the log gained and fans it out.
 */
export class ConsoleTape {
  /**
   * Next byte to fan out. Everything before it was sent to the clients attached at the time; with
   * none attached, catchUp skips it to the end of the log, so it needs no start value.
   */
  private offset = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private pumping?: Promise<void>;
  private readonly clients = new Set<ConsoleClient>();
  private finished = false;
  private finishError?: VmletError;

  constructor(
    private readonly log: LogFile,
    private readonly limits: ConsoleLimits,
    private readonly logger: Logger,
  ) {}

  get clientCount(): number {
    return this.clients.size;
  }

  get isFinished(): boolean {
    return this.finished;
  }

  /** Reads what the log gained and fans it out. Calls made while one is queued share it. */
  pump(): Promise<void> {
    this.pumping ??= this.exclusive(async () => {
      this.pumping = undefined;
      await this.catchUp();
    });
    return this.pumping;
  }

  /**
   * Sends the client the log from offset `from` up to now, then what is appended until `finish`.
   * A large backlog is sent chunk by chunk at the pace the client takes it.
   */
  async attach(client: ConsoleClient, from: number): Promise<void> {
    let cursor: number | undefined;
    for (;;) {
      const joined = await this.exclusive(async () => {
        await this.catchUp();
        const end = this.offset;
        cursor = Math.min(cursor ?? from, end);
        if (end - cursor > this.limits.readChunkBytes) return false;
        client.send(await this.log.read(cursor, end));
        if (this.finished && this.finishError) client.fail(this.finishError);
        else if (this.finished) client.end();
        else if (!client.closed) {
          this.clients.add(client);
          client.whenClosed(() => this.clients.delete(client));
        }
        return true;
      });
      if (joined) {
        // What was written while this client was joining rang `pump` before the client counted.
        void this.pump().catch((err: unknown) => this.logger.warn({ err }, 'could not read console.log'));
        return;
      }
      if (client.closed || cursor === undefined) return;
      // Far behind: one chunk outside the lock, at the client's pace, then look again.
      const chunk = await this.log.readFrom(cursor, Infinity, this.limits.readChunkBytes);
      cursor = chunk.at + chunk.data.length;
      client.send(chunk.data);
      await client.drained();
      if (client.closed) return;
    }
  }

  /** The VM stopped: sends what is left of the log, then ends every client cleanly (or with `error`). */
  finish(error?: VmletError): Promise<void> {
    return this.exclusive(async () => {
      if (this.finished) return;
      await this.catchUp().catch((err: unknown) => this.logger.warn({ err }, 'could not read the end of console.log'));
      this.finished = true;
      this.finishError = error;
      for (const client of [...this.clients]) {
        if (error) client.fail(error);
        else client.end();
      }
      this.clients.clear();
    });
  }

  /** Runs `fn` with no read in progress. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Inside `exclusive`: fans out [offset, size of the log). */
  private async catchUp(): Promise<void> {
    if (this.finished) return;
    const size = await this.log.size();
    if (this.clients.size === 0) {
      // Nobody to send to: skip ahead; an attaching client reads its history from the file.
      this.offset = size;
      return;
    }
    while (this.offset < size) {
      const { at, data } = await this.log.readFrom(this.offset, size, this.limits.readChunkBytes);
      this.offset = Math.max(this.offset, at + data.length);
      if (data.length === 0) break;
      for (const client of this.clients) client.send(data);
    }
  }
}
