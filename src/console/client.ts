import { VmletError } from '../model/errors.js';
import { formatBytes } from './limits.js';

/** A transport's side of one attached console client (a gRPC stream, a websocket). */
export interface ConsoleSink {
  /** Hands one chunk to the transport; `flushed` once the transport has taken it (or failed to). */
  write(chunk: Buffer, flushed: () => void): void;
  /** Output is over (the VM stopped, or the log was read to its end): close cleanly. */
  end(): void;
  /** The client fell too far behind: tell it why, then close. */
  fail(error: VmletError): void;
}

function tooSlowError(maxPendingBytes: number): VmletError {
  return new VmletError(
    'RESOURCE_EXHAUSTED',
    `console client too slow: more than ${formatBytes(maxPendingBytes)} of output not taken; dropped, attach again`,
  );
}

/**
 * One attached client with a bounded backlog: output its transport has not taken yet counts
 * against `maxPendingBytes`; a client beyond it is told (RESOURCE_EXHAUSTED) and dropped, so a
 * stuck client costs at most that much memory and never holds up the guest or other clients.
 */
export class ConsoleClient {
  private pending = 0;
  private done = false;
  /** While held, output waits here (it counts as pending). */
  private held?: Buffer[];
  private readonly drainWaiters: (() => void)[] = [];
  private readonly closeListeners: (() => void)[] = [];

  constructor(
    private readonly sink: ConsoleSink,
    private readonly maxPendingBytes: number,
  ) {}

  get closed(): boolean {
    return this.done;
  }

  /** Bytes sent but not yet taken by the transport. */
  get pendingBytes(): number {
    return this.pending;
  }

  send(chunk: Buffer): void {
    if (this.done || chunk.length === 0) return;
    if (this.pending + chunk.length > this.maxPendingBytes) {
      this.fail(tooSlowError(this.maxPendingBytes));
      return;
    }
    this.pending += chunk.length;
    if (this.held) this.held.push(chunk);
    else this.write(chunk);
  }

  /** Output sent from now on waits until `release`: the client joins the live stream before its history is read. */
  hold(): void {
    this.held ??= [];
  }

  /** Sends `first` (the history), then what waited, then goes on live. */
  release(first: Buffer): void {
    const waiting = this.held ?? [];
    this.held = undefined;
    if (this.done) return;
    if (this.pending + first.length > this.maxPendingBytes) {
      this.fail(tooSlowError(this.maxPendingBytes));
      return;
    }
    if (first.length > 0) {
      this.pending += first.length;
      this.write(first);
    }
    for (const chunk of waiting) this.write(chunk);
  }

  private write(chunk: Buffer): void {
    this.sink.write(chunk, () => {
      this.pending -= chunk.length;
      if (this.pending === 0) this.wakeDrainWaiters();
    });
  }

  /** Resolves once the transport has taken everything sent so far (or the client is closed). */
  drained(): Promise<void> {
    if (this.pending === 0 || this.done) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Calls `listener` once when the client closes for any reason. */
  whenClosed(listener: () => void): void {
    if (this.done) listener();
    else this.closeListeners.push(listener);
  }

  /** Output is over: the transport closes cleanly after what it holds. */
  end(): void {
    if (this.close()) this.sink.end();
  }

  fail(error: VmletError): void {
    if (this.close()) this.sink.fail(error);
  }

  /** The transport went away (client left): nothing more to send. */
  detach(): void {
    this.close();
  }

  private close(): boolean {
    if (this.done) return false;
    this.done = true;
    this.held = undefined;
    this.wakeDrainWaiters();
    for (const listener of this.closeListeners.splice(0)) listener();
    return true;
  }

  private wakeDrainWaiters(): void {
    for (const wake of this.drainWaiters.splice(0)) wake();
  }
}
