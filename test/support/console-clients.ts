/** Console clients for e2e tests: gRPC, a raw HTTP/2 stream that can stop reading, and a websocket. */
import http2 from 'node:http2';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import WebSocket from 'ws';
import type { VmletClients } from '../../src/api/grpc/client.js';
import type { ConsoleInput } from '../../src/api/grpc/generated/vmlet/v1/ConsoleInput.js';
import type { ConsoleOutput__Output } from '../../src/api/grpc/generated/vmlet/v1/ConsoleOutput.js';

/** Text received so far, with waits on it. */
export class Received {
  text = '';
  private waiters: { test: (t: string) => boolean; resolve: () => void }[] = [];

  add(data: Buffer | string): void {
    this.text += typeof data === 'string' ? data : data.toString('latin1');
    this.waiters = this.waiters.filter((w) => (w.test(this.text) ? (w.resolve(), false) : true));
  }

  /** Resolves once the text from offset `from` on matches; rejects after `timeoutMs`. */
  until(pattern: string | RegExp, timeoutMs = 30_000, from = 0): Promise<void> {
    const test = (t: string): boolean => (typeof pattern === 'string' ? t.indexOf(pattern, from) !== -1 : pattern.test(t.slice(from)));
    if (test(this.text)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${String(pattern)} not received within ${timeoutMs} ms; got ${JSON.stringify(this.text.slice(-400))}`)), timeoutMs);
      this.waiters.push({ test, resolve: () => (clearTimeout(timer), resolve()) });
    });
  }

  /** Types `line` (via `send`) and waits for `expect` in what arrives after it. */
  async roundTrip(send: (data: Buffer) => void, line: string, expect: string | RegExp, timeoutMs = 30_000): Promise<void> {
    const from = this.text.length;
    send(Buffer.from(line));
    await this.until(expect, timeoutMs, from);
  }
}

/** The guest's shell prompt (busybox asks for the cursor position after it). */
export const PROMPT = new RegExp(`vmlet-guest# (${String.fromCharCode(0x1b)}\\[6n)?$`);

export interface GrpcConsole {
  out: Received;
  send(data: Buffer): void;
  /** The final status of the stream. */
  status: Promise<grpc.StatusObject>;
  call: grpc.ClientDuplexStream<ConsoleInput, ConsoleOutput__Output>;
}

export function grpcConsole(clients: VmletClients, id: string): GrpcConsole {
  const call = clients.vms.console();
  const out = new Received();
  call.on('data', (msg: ConsoleOutput__Output) => out.add(msg.data));
  call.on('error', () => undefined);
  const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  call.write({ id });
  return { out, send: (data) => void call.write({ data }), status, call };
}

/** ConsoleInput{id} as a gRPC length-prefixed message (field 1, string). */
function consoleInputFrame(id: string): Buffer {
  const idBytes = Buffer.from(id);
  const message = Buffer.concat([Buffer.from([0x0a, idBytes.length]), idBytes]);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

export interface RawConsole {
  /** Starts reading (it does not read until told). */
  resume(): void;
  /** Trailers, once the stream ended and everything was read. */
  trailers: Promise<http2.IncomingHttpHeaders>;
  received(): number;
  close(): void;
}

/**
 * A Console call on its own HTTP/2 connection that never reads what the daemon sends until
 * `resume`: a client stuck behind a slow link. Its flow-control windows fill up, so the daemon's
 * writes to it stop completing.
 */
export function rawStuckConsole(unixSocket: string, id: string): RawConsole {
  const session = http2.connect('http://localhost', { createConnection: () => net.connect(unixSocket) });
  session.on('error', () => undefined);
  const stream = session.request({ ':method': 'POST', ':path': '/vmlet.v1.VmService/Console', 'content-type': 'application/grpc', te: 'trailers' });
  stream.on('error', () => undefined);
  stream.pause();
  stream.write(consoleInputFrame(id));
  let bytes = 0;
  const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => stream.on('trailers', (headers) => resolve(headers)));
  return {
    resume: () => {
      stream.on('data', (b: Buffer) => (bytes += b.length));
      stream.resume();
    },
    trailers,
    received: () => bytes,
    close: () => session.destroy(),
  };
}

export interface WsConsole {
  ws: WebSocket;
  out: Received;
  send(data: Buffer): void;
  closed: Promise<{ code: number; reason: string }>;
}

/** A websocket console client; resolves once open (rejects with the HTTP status when refused). */
export function wsConsole(httpAddress: string, id: string, options: WebSocket.ClientOptions & { token?: string } = {}): Promise<WsConsole> {
  const url = `${httpAddress.replace(/^http/, 'ws')}/v1/vms/${id}/console`;
  const { token, ...wsOptions } = options;
  const ws = new WebSocket(url, token ? { ...wsOptions, headers: { ...wsOptions.headers, authorization: `Bearer ${token}` } } : wsOptions);
  const out = new Received();
  ws.on('message', (data: Buffer) => out.add(data));
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, out, send: (data) => ws.send(data), closed }));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once('error', reject);
  });
}
