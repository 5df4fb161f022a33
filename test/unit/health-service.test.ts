import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HealthService } from '../../src/api/grpc/health.js';
import { healthClient, type HealthClient } from '../support/grpc-extras.js';

type Status = { status: string };

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
    c = healthClient(target);
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
