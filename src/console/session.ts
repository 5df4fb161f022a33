import type { VmletError } from '../model/errors.js';
import { boundExceeded } from '../model/bounds.js';
import type { Logger } from '../host/log.js';
import type { ConsoleClient } from './client.js';
import { Batcher } from './batcher.js';
import { joinHistory } from './history.js';
import { DEFAULT_MAX_CONSOLE_CLIENTS, type ConsoleLimits } from './limits.js';
import { ByteRing } from './ring.js';
import { RotatingLog } from './rotating-log.js';
import { SerialLink } from './serial-link.js';
import { ConsoleTape } from './tape.js';

export interface ConsolePaths {
  serialSocket: string;
  /** Where vmlet writes the console log (rotated to `<consoleLog>.1`). */
  consoleLog: string;
}

/** How long a closing console waits for QEMU's end of the serial stream, so the last output is not cut. */
const FINAL_OUTPUT_WAIT_MS = 1000;

/**
 * The console of one running QEMU, from Running until the VM stops.
 *
 * Everything vmlet reads from the serial socket is appended to console.log (RotatingLog) as it
 * arrives: QEMU keeps no log of its own. Output printed while vmlet is not connected (the daemon
 * is down) is lost, as with any serial socket nobody reads.
 *
 * Interactive clients get the guest's output as it arrives on the serial socket. Their history is
 * the same stream: a ring of the last `historyBytes` received since this session connected,
 * preceded when that is short by the end of console.log as an earlier session (an earlier start
 * of the VM, an earlier vmlet) left it. A client joins the live stream and takes its ring
 * snapshot in one synchronous step, so no byte is sent twice or skipped.
 *
 * Output is batched (Batcher) before it goes into the ring and to clients, in one step.
 *
 * Log followers (`vmlet logs -f`) read console.log itself, as `tail -f` would: see ConsoleTape.
 */
export class ConsoleSession {
  readonly log: RotatingLog;
  private readonly link: SerialLink;
  private readonly ring: ByteRing;
  private readonly live = new Set<ConsoleClient>();
  private readonly tape: ConsoleTape;
  private readonly batcher: Batcher;
  private closing?: Promise<void>;
  private closeError?: VmletError;

  constructor(
    readonly pid: number,
    paths: ConsolePaths,
    private readonly limits: ConsoleLimits,
    private readonly logger: Logger,
  ) {
    // Opened at the first write or read, not here: this runs while QEMU initialises.
    this.log = new RotatingLog(paths.consoleLog, {
      maxBytes: limits.logMaxBytes,
      bufferBytes: limits.logBufferBytes,
      logger,
      onWritten: () => {
        if (this.tape.clientCount > 0) this.pumpTape();
      },
    });
    this.ring = new ByteRing(limits.historyBytes);
    this.tape = new ConsoleTape(this.log, limits, logger);
    this.link = new SerialLink(paths.serialSocket, limits, logger);
    this.batcher = new Batcher(limits.batchMs, limits.batchBytes, (data) => this.deliver(data));
    this.link.on('data', (chunk) => {
      this.log.append(chunk);
      this.batcher.push(chunk);
    });
    // Once connected (QEMU is up), console.log exists even before the guest says anything.
    this.link.once('connected', () => void this.log.initialEnd());
    this.link.connect();
  }

  get clientCount(): number {
    return this.live.size + this.tape.clientCount;
  }

  /** Clients between the check of the bound and their registration. */
  private joining = 0;

  /** Holds a place for one more client (attached or following), or throws RESOURCE_EXHAUSTED. */
  private join(): () => void {
    const max = this.limits.maxClients ?? DEFAULT_MAX_CONSOLE_CLIENTS;
    if (this.clientCount + this.joining >= max) {
      throw boundExceeded('console_clients', 'RESOURCE_EXHAUSTED', `this VM's console has ${max} clients, the most it allows; detach one and try again`);
    }
    this.joining++;
    let held = true;
    return () => {
      if (held) this.joining--;
      held = false;
    };
  }

  get ended(): boolean {
    return this.closing !== undefined;
  }

  /** An interactive client: the history tail, then live output until the VM stops. */
  async attach(client: ConsoleClient): Promise<void> {
    const joined = this.join();
    try {
      await this.attachJoined(client, joined);
    } finally {
      joined();
    }
  }

  private async attachJoined(client: ConsoleClient, joined: () => void): Promise<void> {
    await this.link.connected();
    // Bytes before `boundary` were logged before this session: the ring has everything after.
    const { end: boundary, whole } = await this.log.initialEnd();
    if (this.closing) {
      if (this.closeError) client.fail(this.closeError);
      else client.end();
    }
    if (client.closed) return;
    // One synchronous step: the snapshot and the subscription see the same stream position.
    const recent = this.ring.snapshot();
    client.hold();
    this.live.add(client);
    joined();
    client.whenClosed(() => this.live.delete(client));
    const need = this.ring.wrapped ? 0 : this.limits.historyBytes - recent.length;
    // One byte more than needed tells whether the history starts at a line start.
    const from = Math.max(0, boundary - need - 1);
    const before = need > 0 ? await this.log.readFrom(from, boundary) : { at: from, data: Buffer.alloc(0) };
    // Complete: it starts at the first byte the log ever had (nothing was rotated out).
    const complete = whole && before.at === 0 && !this.ring.wrapped;
    client.release(joinHistory(before.data, recent, this.limits.historyBytes, complete));
  }

  /** A log follower: console.log from `from`, then what is appended to it, until the VM stops. */
  async follow(client: ConsoleClient, from: number): Promise<void> {
    const joined = this.join();
    try {
      await this.tape.attach(client, from);
    } finally {
      joined();
    }
  }

  input(data: Buffer): void {
    this.link.write(data);
  }

  /**
   * Ends every client: cleanly when the VM stopped (after the last output QEMU sent), or with
   * `error` (daemon shutdown). The log is written to its end and closed.
   */
  close(error?: VmletError): Promise<void> {
    this.closeError ??= error;
    this.closing ??= (async () => {
      if (!error) await this.link.disconnected(FINAL_OUTPUT_WAIT_MS);
      this.link.close();
      this.batcher.flush();
      for (const client of [...this.live]) {
        if (error) client.fail(error);
        else client.end();
      }
      this.live.clear();
      await this.log.flushed();
      await this.tape.finish(error);
      await this.log.close();
    })();
    return this.closing;
  }

  /** The VM is being deleted, its log with it: nothing more is written to it. */
  discardLog(): void {
    void this.log.discard();
  }

  /** Resolves once everything read from the serial socket so far is in console.log. */
  logWritten(): Promise<void> {
    return this.log.flushed();
  }

  /** A batch of output: into the ring and to every live client in one step (attach relies on it). */
  private deliver(chunk: Buffer): void {
    this.ring.push(chunk);
    for (const client of this.live) client.send(chunk);
  }

  private pumpTape(): void {
    void this.tape.pump().catch((err: unknown) => this.logger.warn({ err }, 'could not read console.log'));
  }
}
