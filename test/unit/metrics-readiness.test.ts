import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readiness, selfCheckTarget } from '../../src/metrics/readiness.js';
import { resolveBinary } from '../../src/host/binary-path.js';
import { startGrpcServer, type RunningGrpcServer } from '../../src/api/grpc/server.js';
import { healthDefinition } from '../../src/api/grpc/health.js';

describe('resolveBinary', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vmlet-bin-'));
    await writeFile(join(dir, 'qemu-x'), '#!/bin/sh\n');
    await chmod(join(dir, 'qemu-x'), 0o755);
    await writeFile(join(dir, 'qemu-noexec'), '');
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('finds a name on PATH, skipping relative and missing dirs', async () => {
    expect(await resolveBinary('qemu-x', `relative:/nonexistent:${dir}`)).toBe(join(dir, 'qemu-x'));
  });
  it('takes a path as it is', async () => {
    expect(await resolveBinary(join(dir, 'qemu-x'), '')).toBe(join(dir, 'qemu-x'));
  });
  it('undefined when missing or not executable', async () => {
    expect(await resolveBinary('qemu-noexec', dir)).toBeUndefined();
    expect(await resolveBinary('qemu-y', dir)).toBeUndefined();
  });
});

describe('selfCheckTarget', () => {
  it.each<[string[], boolean, string | undefined]>([
    [['unix:///run/vmlet/vmlet.sock', '127.0.0.1:5000'], false, 'unix:///run/vmlet/vmlet.sock'],
    [['127.0.0.1:5000', 'unix:///run/v.sock'], true, 'unix:///run/v.sock'],
    [['127.0.0.1:5000'], false, '127.0.0.1:5000'],
    [['0.0.0.0:5000'], false, '127.0.0.1:5000'],
    [['[::]:5000'], false, '[::1]:5000'],
    [['10.0.0.1:5000'], true, undefined],
    [[], false, undefined],
  ])('%j tls=%s → %s', (addresses, tls, target) => {
    expect(selfCheckTarget(addresses, tls)).toBe(target);
  });
});

describe('Readiness against a real gRPC server', () => {
  let dir: string;
  let grpc: RunningGrpcServer;
  let serving = true;
  let readiness: Readiness;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vmlet-ready-'));
    grpc = await startGrpcServer({ listen: [`unix://${join(dir, 'g.sock')}`], services: [] });
    readiness = new Readiness({ stateDir: dir, qemuBinary: process.execPath, grpcTarget: grpc.addresses[0], grpcServing: () => serving, healthService: healthDefinition() });
  });
  afterAll(async () => {
    readiness.close();
    await grpc.shutdown();
    await rm(dir, { recursive: true, force: true });
  });

  it('not ready while the health service says NOT_SERVING, ready once SERVING', async () => {
    expect(await readiness.notReady()).toMatch(/gRPC health check on unix:.*: NOT_SERVING/);
    grpc.health.setStatus('', 'SERVING');
    expect(await readiness.notReady()).toBeNull();
  });

  it('not ready when the daemon has stopped serving', async () => {
    serving = false;
    expect(await readiness.notReady()).toBe('gRPC is not serving');
    serving = true;
  });

  it('not ready when nothing answers on the gRPC target', async () => {
    const r = new Readiness({ stateDir: dir, qemuBinary: process.execPath, grpcTarget: `unix://${join(dir, 'none.sock')}`, grpcServing: () => true, grpcTimeoutMs: 500, healthService: healthDefinition() });
    expect(await r.notReady()).toMatch(/gRPC health check on unix:.*none\.sock: error/);
    r.close();
  });

  it('not ready when the QEMU binary is missing, with every reason at once', async () => {
    const r = new Readiness({ stateDir: join(dir, 'missing'), qemuBinary: join(dir, 'no-qemu'), grpcServing: () => true, healthService: healthDefinition() });
    const why = await r.notReady();
    expect(why).toContain(`state dir ${join(dir, 'missing')} is not writable`);
    expect(why).toContain(`QEMU binary ${join(dir, 'no-qemu')} not found or not executable`);
    r.close();
  });
});
