/**
 * QMP client: one JSON object per line over a unix socket. Reads the greeting, negotiates
 * capabilities, then matches replies to commands by id so several can be in flight at once.
 * Asynchronous events are emitted as 'event'; the connection ending is emitted once as 'close'.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { VmletError, type ErrorCode } from '../model/errors.js';

export interface QmpEvent {
  event: string;
  data: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

export interface QmpGreeting {
  QMP: { version: { qemu: { major: number; minor: number; micro: number }; package: string }; capabilities: string[] };
}

export interface QmpConnectOptions {
  /** Deadline for connect + greeting + qmp_capabilities. Default 5000. */
  connectTimeoutMs?: number;
  /** Default per-command timeout. Default 10000. */
  commandTimeoutMs?: number;
  /** Called after every command with its duration, for metrics. */
  onCommandDone?: (command: string, seconds: number, ok: boolean) => void;
  /** Called for messages that are ignored: replies with unknown ids (e.g. after a timeout), unknown shapes. */
  onProtocolWarning?: (message: string) => void;
}

/** The QMP handshake's deadline, counted from QEMU's spawn: the floor, plus a second per GiB of guest memory QEMU maps. */
export function qmpConnectTimeoutMs(floorMs: number, memoryMib: number): number {
  return floorMs + Math.ceil(memoryMib / 1024) * 1000;
}

/**
 * A failed QMP exchange. An error reply carries QEMU's class and desc; the raw client gives it
 * FAILED_PRECONDITION, and QemuMonitor the code of its class (qmpErrorCode). Connection
 * problems: UNAVAILABLE; timeouts: DEADLINE_EXCEEDED.
 */
export class QmpError extends VmletError {
  /** QEMU's error class (`GenericError`, `DeviceNotFound`, …), for error replies only. */
  readonly qmpClass?: string;
  /** QEMU's own description of the error, for error replies only. */
  readonly desc?: string;

  constructor(code: ErrorCode, message: string, options: { qmpClass?: string; desc?: string; cause?: unknown } = {}) {
    super(code, message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'QmpError';
    if (options.qmpClass !== undefined) this.qmpClass = options.qmpClass;
    if (options.desc !== undefined) this.desc = options.desc;
  }
}

/** vmlet's code for a QMP error class. */
export function qmpErrorCode(qmpClass: string): ErrorCode {
  switch (qmpClass) {
    case 'CommandNotFound':
      return 'UNIMPLEMENTED';
    case 'DeviceNotFound':
      return 'NOT_FOUND';
    default:
      // GenericError, DeviceNotActive, KVMMissingCap: QEMU cannot do it in its present state.
      return 'FAILED_PRECONDITION';
  }
}

/** The error with the code of its QMP class (qmpErrorCode); anything else (no reply, not a QmpError) as it is. */
export function classifyQmpError(err: unknown): unknown {
  if (!(err instanceof QmpError) || err.qmpClass === undefined) return err;
  const code = qmpErrorCode(err.qmpClass);
  if (code === err.code) return err;
  const classified = new QmpError(code, err.message, { qmpClass: err.qmpClass, desc: err.desc, cause: err.cause });
  classified.stack = err.stack;
  return classified;
}

/** How to wait for an event: QmpClient.waitForEvent. */
export interface WaitForEventOptions {
  /** Default: the client's commandTimeoutMs. */
  timeoutMs?: number;
  predicate?: (e: QmpEvent) => boolean;
  /** Stops waiting: the wait rejects with the signal's reason. */
  signal?: AbortSignal;
}

export type QmpClientEvents = { event: [event: QmpEvent]; close: [reason?: Error] };

interface Pending {
  command: string;
  started: number;
  timer: NodeJS.Timeout | undefined;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

interface EventWaiter {
  names: readonly string[];
  predicate: ((e: QmpEvent) => boolean) | undefined;
  timer: NodeJS.Timeout;
  resolve: (event: QmpEvent) => void;
  reject: (error: unknown) => void;
  /** Stops listening to the abort signal. */
  unlisten: () => void;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const excerpt = (text: string): string => JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);

function connectionError(path: string, err: Error): QmpError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new QmpError('UNAVAILABLE', `QMP socket ${path} does not exist (is QEMU running?)`, { cause: err });
  if (code === 'ECONNREFUSED') return new QmpError('UNAVAILABLE', `QMP socket ${path} refused the connection (is QEMU listening?)`, { cause: err });
  return new QmpError('UNAVAILABLE', `QMP connection to ${path} failed: ${err.message}`, { cause: err });
}

export class QmpClient extends EventEmitter<QmpClientEvents> {
  readonly socketPath: string;
  private readonly socket: net.Socket;
  private readonly commandTimeoutMs: number;
  private readonly options: QmpConnectOptions;
  private readonly pending = new Map<string, Pending>();
  private readonly waiters = new Set<EventWaiter>();
  /** Bytes of the current, not yet terminated line: kept as chunks and joined once, so long lines stay O(n). */
  private partial: Buffer[] = [];
  private nextId = 1;
  private isClosed = false;
  private closeReason: Error | undefined;
  private greetingValue: QmpGreeting | undefined;
  private greetingWaiter: { resolve: () => void; reject: (e: Error) => void } | undefined;

  /** Connects, reads the greeting and negotiates capabilities, all within connectTimeoutMs. */
  static async connect(socketPath: string, options: QmpConnectOptions = {}): Promise<QmpClient> {
    const client = await QmpClient.open(socketPath, options);
    await client.ready;
    return client;
  }

  /**
   * Resolves as soon as the socket is connected, with the handshake under way: `qmp_capabilities`
   * is written at once (QEMU reads it after its greeting) and `ready` settles when it is answered,
   * within connectTimeoutMs. Commands may be executed before that: they go out right behind it, in
   * order, so a caller saves the round trips of waiting. Rejects if the socket cannot be connected
   * (the error's cause carries the errno code).
   */
  static open(socketPath: string, options: QmpConnectOptions = {}): Promise<QmpClient> {
    const connectTimeoutMs = options.connectTimeoutMs ?? 5000;
    const client = new QmpClient(socketPath, net.createConnection({ path: socketPath }), options);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const stage = client.socket.connecting
          ? 'did not accept the connection'
          : client.greetingValue === undefined
            ? 'sent no QMP greeting'
            : 'did not answer qmp_capabilities';
        reject(new QmpError('UNAVAILABLE', `QMP socket ${socketPath} ${stage} within ${connectTimeoutMs}ms`));
      }, connectTimeoutMs);
    });
    const ready = Promise.race([client.handshake(), deadline]).then(
      () => clearTimeout(timer),
      (err: unknown) => {
        clearTimeout(timer);
        client.shutdown(err instanceof Error ? err : undefined);
        throw err;
      },
    );
    client.ready = ready;
    return new Promise<QmpClient>((resolve, reject) => {
      client.socket.once('connect', () => resolve(client));
      // A failed connect closes the client, which fails the handshake with the same error.
      ready.catch(reject);
    });
  }

  /** Settles when capabilities are negotiated; rejects (and the client is closed) if they cannot be. Set by open(). */
  ready!: Promise<void>;

  private constructor(socketPath: string, socket: net.Socket, options: QmpConnectOptions) {
    super();
    this.socketPath = socketPath;
    this.socket = socket;
    this.options = options;
    this.commandTimeoutMs = options.commandTimeoutMs ?? 10_000;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => {
      // QEMU exiting (e.g. after `quit`) often shows up as a reset rather than a clean EOF: same thing.
      const code = (err as NodeJS.ErrnoException).code;
      this.shutdown(code === 'ECONNRESET' || code === 'EPIPE' ? undefined : connectionError(socketPath, err));
    });
    socket.on('close', () => {
      if (this.partial.length > 0) this.warn(`QMP connection to ${socketPath} ended inside an unterminated message`);
      this.shutdown(undefined);
    });
  }

  get greeting(): QmpGreeting {
    if (this.greetingValue === undefined) throw new QmpError('FAILED_PRECONDITION', 'QMP greeting not received yet');
    return this.greetingValue;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>, options: { timeoutMs?: number } = {}): Promise<T> {
    return this.send(command, args, options.timeoutMs ?? this.commandTimeoutMs) as Promise<T>;
  }

  /**
   * Resolves with the first event of that name (or of one of those names) matching the predicate;
   * subscribe before triggering it.
   */
  waitForEvent(name: string | readonly string[], options: WaitForEventOptions = {}): Promise<QmpEvent> {
    const names = typeof name === 'string' ? [name] : name;
    const label = names.join(' or ');
    if (this.isClosed) return Promise.reject(this.closedError(`wait for event ${label}`));
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const timeoutMs = options.timeoutMs ?? this.commandTimeoutMs;
    return new Promise<QmpEvent>((resolve, reject) => {
      const onAbort = (): void => {
        this.dropWaiter(waiter);
        reject(signal?.reason);
      };
      const waiter: EventWaiter = {
        names,
        predicate: options.predicate,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.dropWaiter(waiter);
          reject(new QmpError('DEADLINE_EXCEEDED', `QMP event ${label} did not arrive within ${timeoutMs}ms on ${this.socketPath}`));
        }, timeoutMs),
        unlisten: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.add(waiter);
    });
  }

  /** Idempotent; fails pending commands and event waits with UNAVAILABLE. */
  close(): void {
    this.shutdown(undefined);
  }

  private async handshake(): Promise<void> {
    const greeting = new Promise<void>((resolve, reject) => {
      this.greetingWaiter = { resolve, reject };
    });
    const capabilities = this.send('qmp_capabilities', undefined, undefined);
    // Both settle (the greeting first), or both fail when the connection closes.
    await Promise.all([greeting, capabilities]);
  }

  private send(command: string, args: Record<string, unknown> | undefined, timeoutMs: number | undefined): Promise<unknown> {
    if (this.isClosed) return Promise.reject(this.closedError(`run ${command}`));
    const id = `vmlet-${this.nextId++}`;
    return new Promise<unknown>((resolve, reject) => {
      const entry: Pending = { command, started: performance.now(), timer: undefined, resolve, reject };
      if (timeoutMs !== undefined) {
        entry.timer = setTimeout(() => {
          this.pending.delete(id);
          const error = new QmpError('DEADLINE_EXCEEDED', `QMP ${command} timed out after ${timeoutMs}ms on ${this.socketPath}`);
          this.finish(entry, { ok: false, error });
        }, timeoutMs);
      }
      this.pending.set(id, entry);
      const message = args === undefined ? { execute: command, id } : { execute: command, arguments: args, id };
      this.socket.write(`${JSON.stringify(message)}\n`);
    });
  }

  private onData(chunk: Buffer): void {
    let start = 0;
    while (!this.isClosed) {
      const newline = chunk.indexOf(0x0a, start);
      if (newline === -1) break;
      let line = chunk.subarray(start, newline);
      if (this.partial.length > 0) {
        this.partial.push(line);
        line = Buffer.concat(this.partial);
        this.partial = [];
      }
      start = newline + 1;
      this.handleLine(line.toString('utf8'));
    }
    if (!this.isClosed && start < chunk.length) this.partial.push(chunk.subarray(start));
  }

  private handleLine(line: string): void {
    const text = line.trim();
    if (text === '') return;
    let msg: unknown;
    try {
      msg = JSON.parse(text);
    } catch {
      return this.protocolFailure(`invalid JSON ${excerpt(text)}`);
    }
    if (!isRecord(msg)) return this.protocolFailure(`invalid JSON (not an object) ${excerpt(text)}`);
    if (this.greetingValue === undefined) {
      if (!isRecord(msg.QMP)) return this.protocolFailure(`expected the QMP greeting, got ${excerpt(text)}`);
      this.greetingValue = msg as unknown as QmpGreeting;
      this.greetingWaiter?.resolve();
      this.greetingWaiter = undefined;
      return;
    }
    if (typeof msg.event === 'string') return this.dispatchEvent(msg.event, msg);
    if ('return' in msg || 'error' in msg) return this.dispatchReply(msg);
    this.warn(`QMP message of unknown shape on ${this.socketPath} ignored: ${excerpt(text)}`);
  }

  private dispatchReply(msg: Record<string, unknown>): void {
    const id = typeof msg.id === 'string' ? msg.id : undefined;
    const entry = id === undefined ? undefined : this.pending.get(id);
    if (id === undefined || entry === undefined) {
      this.warn(`QMP reply with unknown id ${JSON.stringify(msg.id) ?? 'undefined'} on ${this.socketPath} ignored`);
      return;
    }
    this.pending.delete(id);
    if (!('error' in msg)) return this.finish(entry, { ok: true, value: msg.return });
    const err = isRecord(msg.error) ? msg.error : {};
    const qmpClass = typeof err.class === 'string' ? err.class : 'GenericError';
    const desc = typeof err.desc === 'string' ? err.desc : JSON.stringify(msg.error);
    const error = new QmpError('FAILED_PRECONDITION', `QMP ${entry.command} failed: ${qmpClass}: ${desc}`, { qmpClass, desc });
    this.finish(entry, { ok: false, error });
  }

  private dispatchEvent(name: string, msg: Record<string, unknown>): void {
    const event: QmpEvent = { event: name, data: isRecord(msg.data) ? msg.data : {} };
    const ts = msg.timestamp;
    if (isRecord(ts) && typeof ts.seconds === 'number' && typeof ts.microseconds === 'number') {
      event.timestamp = { seconds: ts.seconds, microseconds: ts.microseconds };
    }
    for (const waiter of [...this.waiters]) {
      if (!waiter.names.includes(name)) continue;
      let match: boolean;
      try {
        match = waiter.predicate?.(event) ?? true;
      } catch (err) {
        this.dropWaiter(waiter);
        waiter.reject(err instanceof Error ? err : new Error(String(err)));
        continue;
      }
      if (match) {
        this.dropWaiter(waiter);
        waiter.resolve(event);
      }
    }
    this.emit('event', event);
  }

  private finish(entry: Pending, outcome: { ok: true; value: unknown } | { ok: false; error: Error }): void {
    clearTimeout(entry.timer);
    try {
      this.options.onCommandDone?.(entry.command, (performance.now() - entry.started) / 1000, outcome.ok);
    } catch (err) {
      this.warn(`onCommandDone threw: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (outcome.ok) entry.resolve(outcome.value);
    else entry.reject(outcome.error);
  }

  private dropWaiter(waiter: EventWaiter): void {
    clearTimeout(waiter.timer);
    waiter.unlisten();
    this.waiters.delete(waiter);
  }

  private protocolFailure(problem: string): void {
    this.shutdown(new QmpError('UNAVAILABLE', `QMP protocol error on ${this.socketPath}: ${problem}`));
  }

  private warn(message: string): void {
    this.options.onProtocolWarning?.(message);
  }

  private closedError(what: string): QmpError {
    const why = this.closeReason === undefined ? '' : ` (${this.closeReason.message})`;
    return new QmpError('UNAVAILABLE', `QMP connection to ${this.socketPath} is closed${why}; cannot ${what}`, {
      cause: this.closeReason,
    });
  }

  private shutdown(reason: Error | undefined): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.closeReason = reason;
    this.partial = [];
    this.socket.destroy();
    const suffix = reason === undefined ? '' : `: ${reason.message}`;
    const closedWhile = (what: string): QmpError =>
      new QmpError('UNAVAILABLE', `QMP connection to ${this.socketPath} closed while waiting for ${what}${suffix}`, { cause: reason });
    this.greetingWaiter?.reject(reason ?? closedWhile('the greeting'));
    this.greetingWaiter = undefined;
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const entry of pending) this.finish(entry, { ok: false, error: closedWhile(entry.command) });
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const waiter of waiters) {
      clearTimeout(waiter.timer);
      waiter.unlisten();
      waiter.reject(closedWhile(`event ${waiter.names.join(' or ')}`));
    }
    this.emit('close', reason);
  }
}
