import { EventEmitter, once } from 'node:events';
import net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { unavailable } from '../model/errors.js';
import type { Logger } from '../host/log.js';
import type { ConsoleLimits } from './limits.js';

export interface SerialLinkEvents {
  /** Guest output, exactly as the guest sent it. */
  data: [Buffer];
  /** Emitted before any data of the new connection. */
  connected: [];
  disconnected: [];
}

/**
 * vmlet's one connection to a VM's serial socket. QEMU's socket chardev serves a single client,
 * so vmlet is that client and multiplexes. Output is read as soon as it arrives, whatever the
 * attached clients do: a reader that stalls would stall the guest's UART. Connects with bounded
 * retries (the socket may not be there yet) and reconnects the same way after a drop.
 */
export class SerialLink extends EventEmitter<SerialLinkEvents> {
  private socket?: net.Socket;
  private connecting = false;
  private closed = false;
  private queued: Buffer[] = [];
  private queuedBytes = 0;
  private dropWarned = false;
  private waiters: { resolve: () => void; reject: (err: Error) => void }[] = [];

  constructor(
    readonly path: string,
    private readonly limits: ConsoleLimits,
    private readonly logger: Logger,
  ) {
    super();
  }

  get isConnected(): boolean {
    return this.socket !== undefined;
  }

  /** Connects unless connected or already trying; gives up after `connectAttempts` (until called again). */
  connect(): void {
    if (this.closed || this.socket || this.connecting) return;
    this.connecting = true;
    void this.connectLoop().finally(() => (this.connecting = false));
  }

  /** Resolves once connected (connecting if need be); rejects when the bounded retries give up. */
  connected(): Promise<void> {
    if (this.socket) return Promise.resolve();
    if (this.closed) return Promise.reject(unavailable(`console of ${this.path} is closed`));
    const wait = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    this.connect();
    return wait;
  }

  /** Resolves when the current connection ends (QEMU closes it when it exits), or after `timeoutMs`. */
  async disconnected(timeoutMs: number): Promise<void> {
    if (!this.socket) return;
    await Promise.race([once(this, 'disconnected'), delay(timeoutMs, undefined, { ref: false })]);
  }

  /** Guest input. Held (bounded) while connecting; dropped beyond the bound, with a warning. */
  write(data: Buffer): void {
    if (this.closed || data.length === 0) return;
    const socket = this.socket;
    const backlog = socket ? socket.writableLength : this.queuedBytes;
    if (backlog + data.length > this.limits.inputMaxPendingBytes) {
      if (!this.dropWarned) this.logger.warn({ bytes: data.length, backlog }, 'console input dropped: the guest is not reading it (or the serial socket is down)');
      this.dropWarned = true;
      if (!socket) this.connect();
      return;
    }
    this.dropWarned = false;
    if (socket) {
      socket.write(data);
    } else {
      this.queued.push(data);
      this.queuedBytes += data.length;
      this.connect();
    }
  }

  close(): void {
    this.closed = true;
    this.socket?.destroy();
    this.socket = undefined;
    this.settleWaiters(unavailable('the console closed'));
    this.queued = [];
    this.queuedBytes = 0;
  }

  private async connectLoop(): Promise<void> {
    let lastError = '';
    for (let attempt = 1; attempt <= this.limits.connectAttempts && !this.closed; attempt++) {
      try {
        this.adopt(await this.dial());
        return;
      } catch (err) {
        lastError = (err as Error).message;
      }
      await delay(this.limits.connectRetryMs);
    }
    if (this.closed) return;
    this.logger.warn({ socket: this.path, attempts: this.limits.connectAttempts, error: lastError }, 'could not connect to the serial socket; trying again when a client attaches');
    this.settleWaiters(unavailable(`could not connect to the serial socket ${this.path}: ${lastError}`));
  }

  private settleWaiters(error?: Error): void {
    for (const w of this.waiters.splice(0)) {
      if (error) w.reject(error);
      else w.resolve();
    }
  }

  private dial(): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(this.path);
      const onError = (err: Error): void => {
        socket.destroy();
        reject(err);
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.off('error', onError);
        resolve(socket);
      });
    });
  }

  private adopt(socket: net.Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    this.socket = socket;
    this.emit('connected');
    socket.on('data', (chunk: Buffer) => this.emit('data', chunk));
    socket.on('error', (err) => this.logger.debug({ err }, 'serial socket error'));
    socket.on('close', () => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      this.logger.debug('serial socket closed');
      this.emit('disconnected');
      this.connect();
    });
    for (const data of this.queued.splice(0)) socket.write(data);
    this.queuedBytes = 0;
    this.logger.debug({ socket: this.path }, 'serial socket connected');
    this.settleWaiters();
  }
}
