import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HealthService } from '../../src/api/grpc/health.js';
import { PROTO_ROOT } from '../../src/api/grpc/proto-options.js';

interface Status {
  status: string;
}
interface HealthClient extends grpc.Client {
  check(req: { service: string }, cb: (err: grpc.ServiceError | null, res?: Status) => void): void;
  watch(req: { service: string }): grpc.ClientReadableStream<Status>;
  list(req: object, cb: (err: grpc.ServiceError | null, res?: { statuses: Record<string, Status> }) => void): void;
}

/** A client made by proto-loader from the .proto as written, not from vmlet's build-time descriptor. */
function client(target: string): HealthClient {
  const def = protoLoader.loadSync(join(PROTO_ROOT, 'grpc/health/v1/health.proto'), { enums: String });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { grpc: { health: { v1: { Health: new (t: string, c: grpc.ChannelCredentials) => HealthClient } } } };
  return new pkg.grpc.health.v1.Health(target, grpc.credentials.createInsecure());
}

const check = (c: HealthClient, service: string) =>
  new Promise<string>((resolve) => c.check({ service }, (err, res) => resolve(err ? `error ${grpc.status[err.code]}` : res!.status)));

/** The next `n` messages of a stream. */
function next(stream: grpc.ClientReadableStream<Status>, n: number): Promise<string[]> {
  const got: string[] = [];
  return new Promise((resolve, reject) => {
    const onData = (m: Status) => {
      got.push(m.status);
      if (got.length === n) {
        stream.off('data', onData);
        resolve(got);
      }
    };
    stream.on('data', onData);
    stream.once('error', reject);
  });
}

describe('HealthService: grpc.health.v1 over a real server', () => {
  let dir: string;
  let server: grpc.Server;
  let health: HealthService;
  let c: HealthClient;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vmlet-health-'));
    server = new grpc.Server();
    health = new HealthService({ '': 'NOT_SERVING', 'vmlet.v1.VmService': 'NOT_SERVING' });
    health.addToServer(server);
    const target = `unix://${join(dir, 'h.sock')}`;
    await new Promise<void>((resolve, reject) => server.bindAsync(target, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
    c = client(target);
  });
  afterAll(async () => {
    c.close();
    server.forceShutdown();
    await rm(dir, { recursive: true, force: true });
  });

  it('Check answers each service status, NOT_FOUND for a name never set', async () => {
    expect(await check(c, '')).toBe('NOT_SERVING');
    health.setStatus('', 'SERVING');
    expect(await check(c, '')).toBe('SERVING');
    expect(await check(c, 'vmlet.v1.VmService')).toBe('NOT_SERVING');
    expect(await check(c, 'no.such.Service')).toBe('error NOT_FOUND');
  });

  it('Watch sends the status now, then each change; SERVICE_UNKNOWN for a name not set yet', async () => {
    const known = c.watch({ service: 'vmlet.v1.VmService' });
    expect(await next(known, 1)).toEqual(['NOT_SERVING']);
    const later = next(known, 2);
    health.setStatus('vmlet.v1.VmService', 'SERVING');
    health.setStatus('vmlet.v1.VmService', 'NOT_SERVING');
    expect(await later).toEqual(['SERVING', 'NOT_SERVING']);
    known.cancel();

    const unknown = c.watch({ service: 'later.Service' });
    expect(await next(unknown, 1)).toEqual(['SERVICE_UNKNOWN']);
    const set = next(unknown, 1);
    health.setStatus('later.Service', 'SERVING');
    expect(await set).toEqual(['SERVING']);
    unknown.cancel();
  });

  it('List names every service with its status', async () => {
    const listed = await new Promise<Record<string, Status>>((resolve, reject) => c.list({}, (err, res) => (err ? reject(err) : resolve(res!.statuses))));
    expect(Object.fromEntries(Object.entries(listed).map(([k, v]) => [k, v.status]))).toEqual({ '': 'SERVING', 'vmlet.v1.VmService': 'NOT_SERVING', 'later.Service': 'SERVING' });
  });
});
