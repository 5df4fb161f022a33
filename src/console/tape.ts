import type { VmletError } from '../model/errors.js';
import type { Logger } from '../host/log.js';
import type { ConsoleClient } from './client.js';
import type { ConsoleLimits } from './limits.js';
import type { LogFile } from './log-file.js';

/**
 * console.log followed as `tail -f` would, for log followers (`vmlet logs -f`). QEMU appends
 * every byte the guest sends to it, so the log is one ordered tape and a follower's position is a
 * plain offset: an attaching follower gets [from, end) from the file and then every byte after
 * `end`, with `end` taken while no read is in progress, so no byte of the file is sent twice or
 * skipped. Reads are serialised; `pump` (rung when the serial socket delivers output, and by a
 * slow poll) reads what the log gained and fans it out.
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
      if (joined || client.closed || cursor === undefined) return;
      // Far behind: one chunk outside the lock, at the client's pace, then look again.
      const chunk = await this.log.read(cursor, cursor + this.limits.readChunkBytes);
      cursor += chunk.length;
      client.send(chunk);
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
    if (size < this.offset) {
      this.logger.warn({ size, offset: this.offset }, 'console.log shrank (truncated by hand?); following it from its start');
      this.offset = 0;
    }
    if (this.clients.size === 0) {
      // Nobody to send to: skip ahead; an attaching client reads its history from the file.
      this.offset = size;
      return;
    }
    while (this.offset < size) {
      const data = await this.log.read(this.offset, Math.min(size, this.offset + this.limits.readChunkBytes));
      if (data.length === 0) break;
      this.offset += data.length;
      for (const client of this.clients) client.send(data);
    }
  }
}
