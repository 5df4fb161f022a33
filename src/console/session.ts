import { statSync } from 'node:fs';
import type { VmletError } from '../model/errors.js';
import type { Logger } from '../host/log.js';
import type { ConsoleClient } from './client.js';
import { Batcher } from './batcher.js';
import { joinHistory } from './history.js';
import type { ConsoleLimits } from './limits.js';
import { LogFile } from './log-file.js';
import { ByteRing } from './ring.js';
import { SerialLink } from './serial-link.js';
import { ConsoleTape } from './tape.js';

export interface ConsolePaths {
  serialSocket: string;
  consoleLog: string;
}

/** How long a closing console waits for QEMU's end of the serial stream, so the last output is not cut. */
const FINAL_OUTPUT_WAIT_MS = 1000;

/**
 * The console of one running QEMU, from Running until the VM stops.
 *
 * Interactive clients get the guest's output as it arrives on the serial socket. Their history is
 * the same stream: a ring of the last `historyBytes` received since vmlet connected, preceded when
 * that is short by the end of console.log up to the size it had when vmlet connected (what the
 * guest printed before). A client joins the live stream and takes its ring snapshot in one
 * synchronous step, so no byte is sent twice or skipped. (Live bytes come from the socket, not
 * the log: QEMU 7.2 logs a byte twice when a socket write would block and it retries.) The one
 * instant not pinned down is vmlet's connection itself (QEMU accepts on its own schedule): output
 * printed in that very instant may be missing from, or doubled in, a history.
 *
 * Output is batched (Batcher) before it goes into the ring and to clients, in one step.
 *
 * Log followers (`vmlet logs -f`) read console.log itself, as `tail -f` would: see ConsoleTape.
 */
export class ConsoleSession {
  readonly log: LogFile;
  private readonly link: SerialLink;
  private readonly ring: ByteRing;
  private readonly live = new Set<ConsoleClient>();
  private readonly tape: ConsoleTape;
  private readonly batcher: Batcher;
  /** Size of console.log when vmlet first connected: bytes before it are from before the connection. */
  private boundary?: number;
  private settleTimer?: NodeJS.Timeout;
  private readonly pollTimer: NodeJS.Timeout;
  private closing?: Promise<void>;
  private closeError?: VmletError;

  constructor(
    readonly pid: number,
    paths: ConsolePaths,
    private readonly limits: ConsoleLimits,
    private readonly logger: Logger,
  ) {
    this.log = new LogFile(paths.consoleLog);
    this.ring = new ByteRing(limits.historyBytes);
    this.tape = new ConsoleTape(this.log, limits, logger);
    this.link = new SerialLink(paths.serialSocket, limits, logger);
    this.link.on('connected', () => {
      // Synchronously, before the first byte of this connection is read.
      this.boundary ??= logSize(paths.consoleLog);
      if (this.tape.clientCount > 0) this.pumpTape();
    });
    this.batcher = new Batcher(limits.batchMs, limits.batchBytes, (data) => this.deliver(data));
    this.link.on('data', (chunk) => this.batcher.push(chunk));
    // Log followers: output logged while the socket was down comes with no data event.
    this.pollTimer = setInterval(() => {
      if (this.tape.clientCount > 0) this.pumpTape();
    }, limits.pollMs).unref();
    // console.log is opened when a client needs it, not here: this runs while QEMU initialises.
    this.link.connect();
  }

  get clientCount(): number {
    return this.live.size + this.tape.clientCount;
  }

  get ended(): boolean {
    return this.closing !== undefined;
  }

  /** An interactive client: the history tail, then live output until the VM stops. */
  async attach(client: ConsoleClient): Promise<void> {
    await this.link.connected();
    if (this.closing) {
      if (this.closeError) client.fail(this.closeError);
      else client.end();
    }
    if (client.closed) return;
    // One synchronous step: the snapshot and the subscription see the same stream position.
    const recent = this.ring.snapshot();
    client.hold();
    this.live.add(client);
    client.whenClosed(() => this.live.delete(client));
    const need = this.ring.wrapped ? 0 : this.limits.historyBytes - recent.length;
    const boundary = this.boundary ?? 0;
    // One byte more than needed tells whether the history starts at a line start.
    const from = Math.max(0, boundary - need - 1);
    const before = need > 0 ? await this.log.read(from, boundary) : Buffer.alloc(0);
    client.release(joinHistory(before, recent, this.limits.historyBytes, from === 0 && !this.ring.wrapped));
  }

  /** A log follower: console.log from `from`, then what is appended to it, until the VM stops. */
  follow(client: ConsoleClient, from: number): Promise<void> {
    return this.tape.attach(client, from);
  }

  input(data: Buffer): void {
    this.link.write(data);
  }

  /**
   * Ends every client: cleanly when the VM stopped (after the last output QEMU sent), or with
   * `error` (daemon shutdown).
   */
  close(error?: VmletError): Promise<void> {
    this.closeError ??= error;
    this.closing ??= (async () => {
      clearInterval(this.pollTimer);
      clearTimeout(this.settleTimer);
      if (!error) await this.link.disconnected(FINAL_OUTPUT_WAIT_MS);
      this.link.close();
      this.batcher.flush();
      for (const client of [...this.live]) {
        if (error) client.fail(error);
        else client.end();
      }
      this.live.clear();
      await this.tape.finish(error);
      await this.log.close();
    })();
    return this.closing;
  }

  /** A batch of output: into the ring and to every live client in one step (attach relies on it). */
  private deliver(chunk: Buffer): void {
    this.ring.push(chunk);
    for (const client of this.live) client.send(chunk);
    if (this.tape.clientCount === 0) return;
    this.pumpTape();
    // QEMU logs a chunk just after sending it: look once more when the burst is over.
    clearTimeout(this.settleTimer);
    this.settleTimer = setTimeout(() => this.pumpTape(), this.limits.settleMs).unref();
  }

  private pumpTape(): void {
    void this.tape.pump().catch((err: unknown) => this.logger.warn({ err }, 'could not read console.log'));
  }
}

function logSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
