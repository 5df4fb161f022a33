/**
 * A scriptable QMP server on a unix socket in a temp dir, for tests of the QMP client.
 * It sends a greeting (configurable, or none), records every command it receives, and answers
 * through a handler: return a reply to send it (the command's id is added), or undefined to
 * answer later (delayed, out of order) with conn.reply(...) after server.waitForCommand(...).
 */
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface FakeQmpCommand {
  execute: string;
  arguments?: unknown;
  id?: unknown;
}

export type FakeQmpReply = { return: unknown } | { error: { class: string; desc: string } };

export type FakeQmpHandler = (cmd: FakeQmpCommand, conn: FakeQmpConnection) => FakeQmpReply | undefined;

export interface ReceivedCommand {
  cmd: FakeQmpCommand;
  conn: FakeQmpConnection;
}

export const DEFAULT_GREETING = {
  QMP: { version: { qemu: { major: 8, minor: 2, micro: 1 }, package: 'fake-qmp' }, capabilities: ['oob'] },
};

/** Answers qmp_capabilities with {"return": {}} and anything else with CommandNotFound, like QEMU. */
export const defaultQmpHandler: FakeQmpHandler = (cmd) =>
  cmd.execute === 'qmp_capabilities'
    ? { return: {} }
    : { error: { class: 'CommandNotFound', desc: `The command ${cmd.execute} has not been found` } };

export class FakeQmpConnection {
  private buffered = '';
  /** Like QEMU, input is read only once a first line (the greeting) has gone out. */
  private greeted = false;
  private early: string[] = [];

  constructor(
    readonly socket: net.Socket,
    private readonly onLine: (line: string, conn: FakeQmpConnection) => void,
  ) {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      this.buffered += text;
      let newline: number;
      while ((newline = this.buffered.indexOf('\n')) !== -1) {
        const line = this.buffered.slice(0, newline);
        this.buffered = this.buffered.slice(newline + 1);
        if (line.trim() === '') continue;
        if (this.greeted) this.onLine(line, this);
        else this.early.push(line);
      }
    });
    socket.on('error', () => {
      /* the client went away: nothing to do */
    });
  }

  /** Writes bytes as they are: for partial lines and garbage. Resolves when handed to the kernel. */
  async sendRaw(data: string | Buffer): Promise<void> {
    await new Promise<void>((resolve, reject) => this.socket.write(data, (err) => (err ? reject(err) : resolve())));
    if (!this.greeted && data.includes('\n')) {
      this.greeted = true;
      for (const line of this.early.splice(0)) this.onLine(line, this);
    }
  }

  /** Writes data in pieces of `size` bytes, yielding to the event loop between pieces. */
  async sendInPieces(data: string | Buffer, size = 1): Promise<void> {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    for (let i = 0; i < bytes.length; i += size) {
      await this.sendRaw(bytes.subarray(i, i + size));
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** One message, terminated by CRLF like QEMU does. */
  send(message: unknown): Promise<void> {
    return this.sendRaw(`${JSON.stringify(message)}\r\n`);
  }

  reply(cmd: FakeQmpCommand, reply: FakeQmpReply): Promise<void> {
    return this.send(replyMessage(cmd, reply));
  }

  event(name: string, data?: Record<string, unknown>): Promise<void> {
    const now = Date.now();
    const message: Record<string, unknown> = { event: name, timestamp: { seconds: Math.floor(now / 1000), microseconds: (now % 1000) * 1000 } };
    if (data !== undefined) message.data = data;
    return this.send(message);
  }

  /** Ends the connection (EOF for the client). */
  close(): void {
    this.socket.end();
  }
}

/** The line that answers cmd: the reply with the command's id (if it had one). */
export function replyMessage(cmd: FakeQmpCommand, reply: FakeQmpReply): Record<string, unknown> {
  return cmd.id === undefined ? { ...reply } : { ...reply, id: cmd.id };
}

export class FakeQmpServer {
  /** Every command received, in order, over all connections. */
  readonly received: ReceivedCommand[] = [];
  readonly connections: FakeQmpConnection[] = [];
  handler: FakeQmpHandler = defaultQmpHandler;
  private readonly handlers = new Map<string, FakeQmpReply | FakeQmpHandler>();
  private readonly claimed = new Set<ReceivedCommand>();
  private readonly commandWaiters: { name: string; resolve: (r: ReceivedCommand) => void }[] = [];
  private readonly connectionWaiters: ((c: FakeQmpConnection) => void)[] = [];

  private constructor(
    readonly dir: string,
    readonly path: string,
    private readonly server: net.Server,
    private readonly greeting: unknown,
  ) {}

  /** greeting: null sends none. */
  static async start(options: { greeting?: unknown; handler?: FakeQmpHandler } = {}): Promise<FakeQmpServer> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'vmlet-qmp-'));
    const socketPath = path.join(dir, 'qmp.sock');
    const server = net.createServer();
    const fake = new FakeQmpServer(dir, socketPath, server, options.greeting === undefined ? DEFAULT_GREETING : options.greeting);
    if (options.handler) fake.handler = options.handler;
    server.on('connection', (socket) => fake.accept(socket));
    server.listen(socketPath);
    await once(server, 'listening');
    return fake;
  }

  /** A fixed reply, or a handler, for one command name; other commands go to `handler`. */
  handle(command: string, replyOrHandler: FakeQmpReply | FakeQmpHandler): this {
    this.handlers.set(command, replyOrHandler);
    return this;
  }

  /** Resolves with the first received, not yet claimed command of that name (already received or future). */
  waitForCommand(name: string): Promise<ReceivedCommand> {
    const found = this.received.find((r) => r.cmd.execute === name && !this.claimed.has(r));
    if (found) {
      this.claimed.add(found);
      return Promise.resolve(found);
    }
    return new Promise((resolve) => this.commandWaiters.push({ name, resolve }));
  }

  /** Resolves with the first connection (already accepted or future). */
  waitForConnection(): Promise<FakeQmpConnection> {
    const first = this.connections[0];
    if (first) return Promise.resolve(first);
    return new Promise((resolve) => this.connectionWaiters.push(resolve));
  }

  commandNames(): string[] {
    return this.received.map((r) => r.cmd.execute);
  }

  /** Drops every connection, stops listening and removes the temp dir. */
  async stop(): Promise<void> {
    for (const conn of this.connections) conn.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await rm(this.dir, { recursive: true, force: true });
  }

  private accept(socket: net.Socket): void {
    const conn = new FakeQmpConnection(socket, (line, c) => this.onLine(line, c));
    this.connections.push(conn);
    if (this.greeting !== null) void conn.send(this.greeting).catch(() => undefined);
    for (const resolve of this.connectionWaiters.splice(0)) resolve(conn);
  }

  private onLine(line: string, conn: FakeQmpConnection): void {
    const parsed: unknown = JSON.parse(line);
    if (typeof parsed !== 'object' || parsed === null || typeof (parsed as { execute?: unknown }).execute !== 'string') {
      throw new Error(`fake QMP server: not a command: ${line}`);
    }
    const cmd = parsed as FakeQmpCommand;
    const record: ReceivedCommand = { cmd, conn };
    this.received.push(record);
    const waiterIndex = this.commandWaiters.findIndex((w) => w.name === cmd.execute);
    const waiter = waiterIndex === -1 ? undefined : this.commandWaiters.splice(waiterIndex, 1)[0];
    if (waiter) {
      this.claimed.add(record);
      waiter.resolve(record);
    }
    const specific = this.handlers.get(cmd.execute);
    const reply = specific === undefined ? this.handler(cmd, conn) : typeof specific === 'function' ? specific(cmd, conn) : specific;
    if (reply !== undefined) void conn.reply(cmd, reply).catch(() => undefined);
  }
}
