/**
 * A target that answers PrepareIncoming with something other than its own streams: an exec: or
 * unix: URI, or an NBD export of a disk the source does not mirror. The real source refuses
 * before a byte of the guest leaves, tells the target to abort, and the guest keeps running.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { TestDaemon } from '../support/daemon.js';
import { guestSpec } from '../support/guest.js';
import { expectCode, rpc } from '../support/rpc.js';
import { unary } from '../../src/api/grpc/client.js';
import { vmletV1 } from '../../src/api/grpc/proto.js';

type Answer = { migrationUri: string; exports: { disk: string; host: string; port: number; name: string }[] };

/** A MigrationAgentService that answers PrepareIncoming with `answer` and records AbortIncoming. */
async function lyingTarget(answer: () => Answer): Promise<{ address: string; aborts: string[]; close(): Promise<void> }> {
  const server = new grpc.Server();
  const aborts: string[] = [];
  server.addService(vmletV1.MigrationAgentService.service, {
    PrepareIncoming: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, { ...answer(), targetNode: 'liar' }),
    FinishIncoming: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb({ code: status.FAILED_PRECONDITION, details: 'never' }),
    AbortIncoming: (call: { request: { vmId: string } }, cb: grpc.sendUnaryData<unknown>) => {
      aborts.push(call.request.vmId);
      cb(null, {});
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { address: `127.0.0.1:${port}`, aborts, close: () => new Promise((r) => server.tryShutdown(() => r())) };
}

describe('a target that answers with streams that are not its own', () => {
  let d: TestDaemon;
  let pid: number;
  beforeAll(async () => {
    d = await TestDaemon.start();
    const base = join(d.root, 'images', 'data-base.raw');
    await promisify(execFile)('truncate', ['-s', '16M', base]);
    const vm = await rpc(d.clients).create(guestSpec('steady', { disks: [{ name: 'data', imagePath: base, overlay: true, readonly: false, format: '' }] as never }), true);
    pid = vm.status!.pid;
  });
  afterAll(async () => {
    await d?.cleanup();
  });

  const cases: [string, (port: number) => Answer, RegExp][] = [
    ['an exec: URI', (port) => ({ migrationUri: 'exec:cat > /tmp/vmlet-stolen', exports: [{ disk: 'data', host: '127.0.0.1', port, name: 'data' }] }), /migration URI "exec:/],
    ['a unix: URI', (port) => ({ migrationUri: 'unix:/tmp/vmlet-stolen.sock', exports: [{ disk: 'data', host: '127.0.0.1', port, name: 'data' }] }), /migration URI "unix:/],
    ['an export of a disk it does not mirror', (port) => ({ migrationUri: `tcp:127.0.0.1:${port}`, exports: [{ disk: 'data', host: '127.0.0.1', port, name: 'data' }, { disk: 'root', host: '127.0.0.1', port, name: 'root' }] }), /exports disks \[data, root\]/],
    ['a stream on a third host', (port) => ({ migrationUri: `tcp:10.1.2.3:${port}`, exports: [{ disk: 'data', host: '127.0.0.1', port, name: 'data' }] }), /only tcp: on the target's own address/],
  ];

  it.each(cases)('refuses %s: ABORTED, the target told to abort, the guest running on', async (_what, answer, message) => {
    const target = await lyingTarget(() => answer(1));
    try {
      const m = d.clients.migrations;
      const details = await expectCode(() => unary(m.migrateVm.bind(m), { id: 'steady', target: target.address }), status.ABORTED);
      expect(details).toMatch(message);
      expect(target.aborts).toEqual(['steady']);
      const vm = await rpc(d.clients).get('steady');
      expect(vm.status).toMatchObject({ phase: 'PHASE_RUNNING', pid });
    } finally {
      await target.close();
    }
  });
});
