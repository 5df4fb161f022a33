/**
 * A stand-in for QEMU's serial chardev (`socket,server=on,wait=off`): a unix socket that serves
 * one client at a time; what the "guest" sends while no client is connected is lost, as with
 * QEMU. The console log next to it (`logPath`) is vmlet's to write; `earlierLog` plays an
 * earlier vmlet that wrote some of it.
 */
import { appendFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';

export class FakeSerial {
  private server?: net.Server;
  private client?: net.Socket;
  private readonly waiting: net.Socket[] = [];
  /** Everything the connected client wrote (guest input). */
  input = Buffer.alloc(0);
  private inputWaiters: { pattern: string; resolve: () => void }[] = [];
  private connectWaiters: (() => void)[] = [];
  connections = 0;

  private constructor(readonly dir: string) {}

  get socketPath(): string {
    return path.join(this.dir, 'serial.sock');
  }
  get logPath(): string {
    return path.join(this.dir, 'console.log');
  }
  get paths(): { serialSocket: string; consoleLog: string } {
    return { serialSocket: this.socketPath, consoleLog: this.logPath };
  }
  get hasClient(): boolean {
    return this.client !== undefined;
  }

  /** Creates the directory; `listen` defaults to true (false: the socket appears later, see listen()). */
  static async create(listen = true): Promise<FakeSerial> {
    const fake = new FakeSerial(await mkdtemp(path.join(os.tmpdir(), 'vmlet-serial-')));
    if (listen) await fake.listen();
    return fake;
  }

  async listen(): Promise<void> {
    const server = net.createServer((socket) => this.accept(socket));
    this.server = server;
    server.listen(this.socketPath);
    await once(server, 'listening');
  }

  /** The guest prints: to the client if one is connected; otherwise it is lost. */
  emit(data: string | Buffer): void {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    this.client?.write(bytes);
  }

  /** Output an earlier vmlet (an earlier daemon, an earlier start of the VM) wrote to the console log. */
  earlierLog(data: string | Buffer): void {
    appendFileSync(this.logPath, data);
  }

  /** Polls the console log (vmlet writes it) until it contains `text`, with a deadline. */
  async logged(text: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const log = await readFile(this.logPath, 'latin1').catch(() => '');
      if (log.includes(text)) return;
      if (Date.now() > deadline) throw new Error(`${JSON.stringify(text)} not in ${this.logPath} within ${timeoutMs} ms; it ends with ${JSON.stringify(log.slice(-200))}`);
      await delay(10);
    }
  }

  /** Resolves when a client is being served (now or later). */
  connected(): Promise<void> {
    if (this.client) return Promise.resolve();
    return new Promise((resolve) => this.connectWaiters.push(resolve));
  }

  /** Resolves when the guest has received `pattern` as input. */
  waitForInput(pattern: string): Promise<void> {
    if (this.input.includes(pattern)) return Promise.resolve();
    return new Promise((resolve) => this.inputWaiters.push({ pattern, resolve }));
  }

  /** QEMU exits: the client sees EOF and the socket goes away. */
  async stop(): Promise<void> {
    this.client?.end();
    for (const s of this.waiting) s.destroy();
    this.client = undefined;
    if (this.server) await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    this.server = undefined;
  }

  async remove(): Promise<void> {
    await this.stop();
    this.client?.destroy();
    await rm(this.dir, { recursive: true, force: true });
  }

  private accept(socket: net.Socket): void {
    socket.on('error', () => undefined);
    if (this.client) {
      // Like QEMU: one client at a time; later ones wait.
      this.waiting.push(socket);
      return;
    }
    this.client = socket;
    this.connections++;
    socket.on('data', (b: Buffer) => {
      this.input = Buffer.concat([this.input, b]);
      const text = this.input.toString('latin1');
      this.inputWaiters = this.inputWaiters.filter((w) => (text.includes(w.pattern) ? (w.resolve(), false) : true));
    });
    socket.on('close', () => {
      if (this.client !== socket) return;
      this.client = undefined;
      const next = this.waiting.shift();
      if (next) this.accept(next);
    });
    for (const resolve of this.connectWaiters.splice(0)) resolve();
  }
}
