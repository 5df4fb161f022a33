import { afterEach, describe, expect, it } from 'vitest';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { openStreamGate, qemuStreamOpening, tlsOpening, type StreamGate } from '../../src/host/stream-gate.js';

/** A unix echo server standing in for QEMU; counts the connections that reached it. */
async function upstream(path: string): Promise<{ server: Server; connections: () => number }> {
  let n = 0;
  const server = createServer((s) => {
    n++;
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(path, r));
  return { server, connections: () => n };
}

const clientHello = (bodyLength: number): Buffer => Buffer.concat([Buffer.from([0x16, 0x03, 0x01, bodyLength >> 8, bodyLength & 0xff]), Buffer.alloc(bodyLength, 1)]);

function connect(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ host: '127.0.0.1', port }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Everything the gate sends back until it closes the connection. */
function readUntilClosed(s: Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  s.on('error', () => undefined);
  return new Promise((r) => s.once('close', () => r(Buffer.concat(chunks))));
}

describe('stream gate', () => {
  let dir: string;
  let gate: StreamGate | undefined;
  let up: { server: Server; connections: () => number } | undefined;
  afterEach(async () => {
    await gate?.close();
    await new Promise((r) => up?.server.close(r) ?? r(undefined));
    await rm(dir, { recursive: true, force: true });
    gate = up = undefined;
  });

  async function open(allowFrom: string[], opening = tlsOpening, openingTimeoutMs = 5_000): Promise<{ port: number; refused: string[] }> {
    dir = await mkdtemp(join(tmpdir(), 'vmlet-gate-'));
    up = await upstream(join(dir, 'up.sock'));
    const refused: string[] = [];
    gate = await openStreamGate({ host: '127.0.0.1', port: 0, allowFrom, upstream: join(dir, 'up.sock'), opening, openingTimeoutMs, onRefused: (_remote, reason) => refused.push(reason) });
    return { port: gate.port, refused };
  }

  it('lets an allowed peer that opens with a whole TLS record through, both ways', async () => {
    const { port } = await open(['127.0.0.1']);
    const s = await connect(port);
    const hello = clientHello(300);
    const echoed = new Promise<Buffer>((resolve) => {
      let got = Buffer.alloc(0);
      s.on('data', (c: Buffer) => {
        got = Buffer.concat([got, c]);
        if (got.length >= hello.length + 5) resolve(got);
      });
    });
    s.write(hello.subarray(0, 100)); // a partial record is held, then replayed whole
    s.write(hello.subarray(100));
    s.write(Buffer.from('after'));
    expect((await echoed).equals(Buffer.concat([hello, Buffer.from('after')]))).toBe(true);
    expect(up!.connections()).toBe(1);
    s.destroy();
  });

  it('delivers every byte a peer sent before it closed, even to a slow upstream', async () => {
    dir = await mkdtemp(join(tmpdir(), 'vmlet-gate-'));
    const path = join(dir, 'slow.sock');
    let received = 0;
    let upstreamClosed!: () => void;
    const closed = new Promise<void>((r) => (upstreamClosed = r));
    // Like a target QEMU loading device state: it reads a little at a time, behind the sender.
    const server = createServer((s) => {
      s.on('data', (c: Buffer) => {
        received += c.length;
        s.pause();
        setTimeout(() => s.resume(), 1);
      });
      s.on('error', () => undefined);
      s.once('close', upstreamClosed);
    });
    await new Promise<void>((r) => server.listen(path, r));
    up = { server, connections: () => 1 };
    gate = await openStreamGate({ host: '127.0.0.1', port: 0, allowFrom: ['127.0.0.1'], upstream: path, opening: qemuStreamOpening, openingTimeoutMs: 5_000 });
    const s = await connect(gate.port);
    const body = Buffer.concat([Buffer.from('QEVM'), Buffer.alloc(4 * 1024 * 1024, 7)]);
    s.on('error', () => undefined);
    s.end(body);
    await closed;
    expect(received).toBe(body.length);
  });

  it('drops a peer from another address before anything reaches the upstream', async () => {
    const { port, refused } = await open(['10.0.0.9']);
    const s = await connect(port);
    s.write(clientHello(10));
    expect((await readUntilClosed(s)).length).toBe(0);
    expect(refused).toEqual(['address not allowed']);
    expect(up!.connections()).toBe(0);
  });

  it('drops a silent peer after the opening timeout, and a plaintext one at once', async () => {
    const { port, refused } = await open(['::ffff:127.0.0.1'], tlsOpening, 200);
    const silent = await connect(port);
    await readUntilClosed(silent);
    const plain = await connect(port);
    plain.write('NBDMAGIC');
    await readUntilClosed(plain);
    expect(refused).toEqual(['no opening in time', 'not the expected stream']);
    expect(up!.connections()).toBe(0);
  });
});

describe('stream openings', () => {
  it('knows a TLS handshake record and a QEMU migration stream', () => {
    expect(tlsOpening(Buffer.from([0x16]))).toBe('more');
    expect(tlsOpening(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x02, 1]))).toBe('more');
    expect(tlsOpening(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x02, 1, 2]))).toBe('ok');
    expect(tlsOpening(Buffer.from('QEVM'))).toBe('bad');
    expect(tlsOpening(Buffer.from([0x16, 0x01]))).toBe('bad');
    expect(qemuStreamOpening(Buffer.from('QE'))).toBe('more');
    expect(qemuStreamOpening(Buffer.from('QEVM\0\0\0\x03'))).toBe('ok');
    expect(qemuStreamOpening(Buffer.from([0x16, 0x03]))).toBe('bad');
  });
});
