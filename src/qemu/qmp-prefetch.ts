/**
 * QMP connections to the QEMUs a restarted daemon will adopt, opened (and each QEMU asked its run
 * state) before the daemon has read in the rest of itself. On a node whose guests keep every CPU
 * busy, a QEMU's main loop answers only when its turn among the guests comes; asked first, the
 * QEMUs answer while the daemon loads, and adoption finds the replies waiting.
 */
import type { RunState } from '../model/machine.js';
import { QmpClient, type QmpConnectOptions } from './qmp.js';

type CommandDone = NonNullable<QmpConnectOptions['onCommandDone']>;

interface Entry {
  client: Promise<QmpClient>;
  runState: Promise<RunState | undefined>;
  /** An event came before the connection was taken: the run state asked for may be out of date. */
  eventSeen: boolean;
  forget?: () => void;
}

/** A connection handed over: the run state QEMU answered, unless it may have changed since. */
export interface PrefetchedQmp {
  client: QmpClient;
  runState?: RunState;
}

export class QmpPrefetch {
  private readonly entries = new Map<string, Entry>();
  /** Commands that finished before anyone observed them; handed to the observer when it comes. */
  private done: Parameters<CommandDone>[] = [];
  private observer: CommandDone | undefined;
  /** Settles once every socket is connected or has failed (QmpClient.open's own deadline bounds it). */
  readonly connected: Promise<void>;

  /** Connects to each socket at once (missing or refused sockets only leave no entry to take). */
  constructor(sockets: readonly string[], connectTimeoutMs: number) {
    const options: QmpConnectOptions = {
      connectTimeoutMs,
      onCommandDone: (...done) => (this.observer ? this.observer(...done) : this.done.push(done)),
    };
    for (const socket of sockets) {
      const client = QmpClient.open(socket, options);
      const entry: Entry = {
        client,
        runState: client.then((c) => c.execute<{ status: RunState }>('query-status')).then(
          (s) => s.status,
          () => undefined,
        ),
        eventSeen: false,
      };
      const onEvent = (): void => void (entry.eventSeen = true);
      client.then(
        (c) => c.on('event', onEvent),
        () => this.entries.delete(socket),
      );
      entry.forget = () => void client.then((c) => c.off('event', onEvent), () => undefined);
      this.entries.set(socket, entry);
    }
    this.connected = Promise.allSettled([...this.entries.values()].map((e) => e.client)).then(() => undefined);
  }

  /** Where QMP command durations go from now on, those already finished first. */
  observe(onCommandDone: CommandDone | undefined): void {
    this.observer = onCommandDone;
    const done = this.done;
    this.done = [];
    if (onCommandDone) for (const d of done) onCommandDone(...d);
  }

  /**
   * The connection to `socket`, once, when QEMU has answered on it or it has closed (a failed
   * handshake rejects the client's `ready` with why, after the wait a new connection would have
   * had too); undefined if no connection was made, and the caller connects itself.
   */
  async take(socket: string): Promise<PrefetchedQmp | undefined> {
    const entry = this.entries.get(socket);
    if (!entry) return undefined;
    this.entries.delete(socket);
    const client = await entry.client.catch(() => undefined);
    const runState = await entry.runState;
    entry.forget?.();
    if (!client) return undefined;
    return { client, ...(runState && !entry.eventSeen ? { runState } : {}) };
  }

  /** Closes the connections nobody took (QEMUs that were not adopted). */
  close(): void {
    for (const entry of this.entries.values()) void entry.client.then((c) => c.close(), () => undefined);
    this.entries.clear();
  }
}
