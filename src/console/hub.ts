import { failedPrecondition, VmletError } from '../model/errors.js';
import type { Logger } from '../host/log.js';
import type { VmChange } from '../model/events.js';
import type { Phase, Vm } from '../model/vm.js';
import { ConsoleClient, type ConsoleSink } from './client.js';
import { DEFAULT_CONSOLE_LIMITS, type ConsoleLimits } from './limits.js';
import { LogFile } from './log-file.js';
import { ConsoleSession, type ConsolePaths } from './session.js';

/** What the hub needs of the VM manager. */
export interface ConsoleVmSource {
  /** Throws NOT_FOUND for an unknown id. */
  record(id: string): { status: { phase: Phase; pid: number }; paths: ConsolePaths };
  list(): Vm[];
  on(event: 'change', listener: (change: VmChange) => void): unknown;
  off(event: 'change', listener: (change: VmChange) => void): unknown;
}

/** Phases in which a client may attach. */
const ATTACHABLE: ReadonlySet<Phase> = new Set<Phase>(['Running', 'Paused']);
/**
 * Phases in which vmlet connects to the serial socket: from the launch of QEMU (still paused, or
 * waiting for a migration stream), so no output is missed. On a migration target that is before
 * the guest's state arrives, so the resumed guest's first output is kept, and a UART transmit that
 * was waiting on the source is re-armed on a connected chardev (QEMU re-arms it with a watch on the
 * chardev, which a socket chardev with no client does not give).
 */
const OPEN: ReadonlySet<Phase> = new Set<Phase>(['Starting', 'Incoming', 'Running', 'Paused']);
/** Phases in which QEMU still runs the guest: an open console stays open through them. */
const KEEP: ReadonlySet<Phase> = new Set<Phase>(['Starting', 'Incoming', 'Running', 'Paused', 'Stopping', 'Migrating']);

export interface ConsoleLogRequest {
  id: string;
  /** Only the last this many lines; 0: the whole log. */
  tailLines: number;
  /** Then live output until the VM stops. */
  follow: boolean;
}

/**
 * Every VM's console: a session per running QEMU, opened when a start or an incoming migration has
 * launched QEMU (before the guest runs) or when the VM becomes Running otherwise (adopted), and closed when
 * it stops, which ends its clients cleanly. Each session writes the VM's console log.
 */
export class ConsoleHub {
  private readonly sessions = new Map<string, ConsoleSession>();
  private readonly onChange = (change: VmChange): void => this.sync(change.vm, change.type === 'DELETED');
  private started = false;

  constructor(
    private readonly vms: ConsoleVmSource,
    private readonly logger: Logger,
    readonly limits: ConsoleLimits = DEFAULT_CONSOLE_LIMITS,
  ) {}

  /** Follows the manager from now on and opens consoles of the VMs already running. Idempotent. */
  start(): this {
    if (this.started) return this;
    this.started = true;
    this.vms.on('change', this.onChange);
    for (const vm of this.vms.list()) this.sync(vm, false);
    return this;
  }

  /** Daemon shutdown: ends every client with UNAVAILABLE; guests keep running. */
  async close(): Promise<void> {
    this.vms.off('change', this.onChange);
    this.started = false;
    const sessions = [...this.sessions.values()];
    this.sessions.clear();
    const shutdown = new VmletError('UNAVAILABLE', 'vmlet is shutting down; attach again once it is back (the guest keeps running)');
    await Promise.all(sessions.map((s) => s.close(shutdown)));
  }

  /** A client with the hub's per-client bound. */
  client(sink: ConsoleSink): ConsoleClient {
    return new ConsoleClient(sink, this.limits.clientMaxPendingBytes);
  }

  /** The session a client may attach to: NOT_FOUND for an unknown VM, FAILED_PRECONDITION unless Running or Paused. */
  attachable(id: string): ConsoleSession {
    const { status } = this.vms.record(id);
    const session = this.sessions.get(id);
    if (!ATTACHABLE.has(status.phase) || !session || session.ended) {
      throw failedPrecondition(`VM ${id} is ${status.phase}; its console can be attached while it is Running or Paused (vmlet logs ${id} prints what it wrote)`);
    }
    return session;
  }

  /** The console log, or its last lines; with follow, then live output while the VM runs. Ends the client when done. */
  async streamLog(request: ConsoleLogRequest, client: ConsoleClient): Promise<void> {
    const record = this.vms.record(request.id);
    const found = this.sessions.get(request.id);
    const session = found && !found.ended ? found : undefined;
    // Without a session (the VM is not running) the files are only read.
    const log = session ? session.log : new LogFile(record.paths.consoleLog);
    try {
      // What vmlet has read from the guest so far is part of the answer.
      await session?.logWritten();
      const end = await log.size();
      const start = request.tailLines > 0 ? await log.tailLinesStart(end, request.tailLines) : 0;
      if (request.follow && session) {
        await session.follow(client, start);
        return;
      }
      for (let at = start; at < end && !client.closed; ) {
        const chunk = await log.readFrom(at, end, this.limits.readChunkBytes);
        if (chunk.data.length === 0) break;
        at = chunk.at + chunk.data.length;
        client.send(chunk.data);
        await client.drained();
      }
      client.end();
    } finally {
      if (!session) await log.close();
    }
  }

  private sync(vm: Vm, deleted: boolean): void {
    const { id } = vm.spec;
    const { phase, pid } = vm.status;
    const current = this.sessions.get(id);
    if (current && (deleted || !KEEP.has(phase) || current.pid !== pid)) {
      this.sessions.delete(id);
      if (deleted || phase === 'Deleting') current.discardLog();
      void current.close();
      this.logger.debug({ vm: id, phase }, 'console closed');
    }
    if (!deleted && OPEN.has(phase) && pid > 0 && !this.sessions.has(id)) {
      const paths = this.vms.record(id).paths;
      this.sessions.set(id, new ConsoleSession(pid, paths, this.limits, this.logger.child({ vm: id })));
      this.logger.debug({ vm: id, phase }, 'console opened');
    }
  }
}
