import * as grpc from '@grpc/grpc-js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startGrpcServer } from '../../src/api/grpc/server.js';

const same = (b: Buffer): Buffer => b;
const ECHO: grpc.ServiceDefinition = {
  Echo: { path: '/test.Echo/Echo', requestStream: false, responseStream: false, requestSerialize: same, requestDeserialize: same, responseSerialize: same, responseDeserialize: same, originalName: 'echo' },
  Tail: { path: '/test.Echo/Tail', requestStream: false, responseStream: true, requestSerialize: same, requestDeserialize: same, responseSerialize: same, responseDeserialize: same, originalName: 'tail' },
};

interface EchoClient extends grpc.Client {
  echo(req: Buffer, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void;
  tail(req: Buffer): grpc.ClientReadableStream<Buffer>;
}

function deferred(): { promise: Promise<void>; resolve(): void; reject(err: Error): void } {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

vi.setConfig({ testTimeout: 10_000 });

describe('gRPC server answerAfter', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vmlet-grpc-gate-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  async function serve(answerAfter: Promise<void>, name: string) {
    const handled: string[] = [];
    const server = await startGrpcServer({
      listen: [`unix://${join(dir, `${name}.sock`)}`],
      answerAfter,
      services: [
        {
          definition: ECHO,
          handlers: {
            Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
              handled.push('echo');
              cb(null, call.request);
            },
            Tail: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
              handled.push('tail');
              call.write(call.request);
              call.end();
            },
          },
        },
      ],
    });
    const Client = grpc.makeGenericClientConstructor(ECHO, 'Echo');
    const client = new Client(server.addresses[0]!.replace('unix://', 'unix:'), grpc.credentials.createInsecure()) as unknown as EchoClient;
    return { server, client, handled };
  }

  it('takes calls in while not ready and answers them once ready, health saying NOT_SERVING meanwhile', async () => {
    const ready = deferred();
    const { server, client, handled } = await serve(ready.promise, 'later');
    let answered: Buffer | undefined;
    const echoed = new Promise<Buffer>((resolve, reject) => client.echo(Buffer.from('hi'), (err, res) => (err ? reject(err) : resolve((answered = res!)))));
    const tailed: Buffer[] = [];
    const tail = client.tail(Buffer.from('tail'));
    tail.on('data', (b: Buffer) => tailed.push(b));
    const tailEnded = new Promise<grpc.StatusObject>((resolve) => tail.on('status', resolve));
    // The call is in (the server's health answers on the same connection) but not handled.
    const healthClient = new grpc.Client(server.addresses[0]!.replace('unix://', 'unix:'), grpc.credentials.createInsecure());
    const health = await new Promise<number>((resolve, reject) =>
      healthClient.makeUnaryRequest(
        '/grpc.health.v1.Health/Check',
        () => Buffer.alloc(0),
        (b: Buffer) => b,
        {},
        (err, res) => (err ? reject(err) : resolve(res![1]!)),
      ),
    );
    healthClient.close();
    expect(health).toBe(2); // ServingStatus NOT_SERVING
    expect(handled).toEqual([]);
    expect(answered).toBeUndefined();

    ready.resolve();
    expect((await echoed).toString()).toBe('hi');
    expect((await tailEnded).code).toBe(grpc.status.OK);
    expect(Buffer.concat(tailed).toString()).toBe('tail');
    expect(handled.sort()).toEqual(['echo', 'tail']);
    client.close();
    await server.shutdown();
  });

  it('answers UNAVAILABLE, unary and streaming, when what it waits for fails', async () => {
    const ready = deferred();
    const { server, client, handled } = await serve(ready.promise, 'never');
    const echoed = new Promise<grpc.ServiceError>((resolve) => client.echo(Buffer.from('hi'), (err) => resolve(err!)));
    const tail = client.tail(Buffer.from('tail'));
    const tailError = new Promise<grpc.ServiceError>((resolve) => tail.on('error', resolve));
    ready.reject(new Error('adoption failed'));
    for (const err of [await echoed, await tailError]) {
      expect(err.code).toBe(grpc.status.UNAVAILABLE);
      expect(err.details).toBe('vmlet could not start');
    }
    expect(handled).toEqual([]);
    client.close();
    await server.shutdown();
  });
});
