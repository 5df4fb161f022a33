import * as grpc from '@grpc/grpc-js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGrpcServer } from '../../src/api/grpc/server.js';

const same = (b: Buffer): Buffer => b;
const HOLD: grpc.ServiceDefinition = {
  Hold: { path: '/test.Hold/Hold', requestStream: true, responseStream: true, requestSerialize: same, requestDeserialize: same, responseSerialize: same, responseDeserialize: same, originalName: 'hold' },
};
const CHUNKS = 8;
const CHUNK = Buffer.alloc(512 * 1024, 7);

describe('gRPC server shutdown', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vmlet-grpc-stop-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it.each(['127.0.0.1:0', 'unix'])('on %s: resolves only once a call it ended has its status at the client, bytes queued before it included', async (listen) => {
    const held: grpc.ServerDuplexStream<Buffer, Buffer>[] = [];
    const grpcServer = await startGrpcServer({
      listen: [listen === 'unix' ? `unix://${join(dir, 'g.sock')}` : listen],
      services: [{ definition: HOLD, handlers: { Hold: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => void held.push(call) } }],
    });
    const target = grpcServer.addresses[0]!.replace('unix://', 'unix:');
    const Client = grpc.makeGenericClientConstructor(HOLD, 'Hold');
    const client = new Client(target, grpc.credentials.createInsecure());
    const call = (client as unknown as { hold(): grpc.ClientDuplexStream<Buffer, Buffer> }).hold();
    let received = 0;
    let ended: grpc.StatusObject | undefined;
    call.on('data', (b: Buffer) => (received += b.length));
    call.on('status', (s) => (ended = s));
    call.on('error', () => undefined);
    call.write(Buffer.from('hello'));
    const deadline = Date.now() + 5000;
    while (held.length === 0 && Date.now() < deadline) await new Promise((r) => setImmediate(r));
    expect(held).toHaveLength(1);

    // More than the flow-control windows hold: the status must wait for the client to read.
    for (let i = 0; i < CHUNKS; i++) held[0]!.write(CHUNK);
    held[0]!.emit('error', { code: grpc.status.UNAVAILABLE, details: 'shutting down' });
    await grpcServer.shutdown();
    await new Promise((r) => setImmediate(r));

    expect(ended?.code).toBe(grpc.status.UNAVAILABLE);
    expect(ended?.details).toBe('shutting down');
    expect(received).toBe(CHUNKS * CHUNK.length);
    client.close();
  });
});
