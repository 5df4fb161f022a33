import { status } from '@grpc/grpc-js';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestDaemon } from '../support/daemon.js';
import { guestSpec, READY_LINE, waitForFileText } from '../support/guest.js';
import { rpc } from '../support/rpc.js';
import { grpcConsole } from '../support/console-clients.js';

const ID = 'con-restart';

describe('console across daemon restarts', () => {
  let d: TestDaemon;

  beforeAll(async () => {
    d = await TestDaemon.start();
    await rpc(d.clients).create(guestSpec(ID), true);
    await waitForFileText(join(d.stateDir, 'vms', ID, 'console.log'), READY_LINE);
  });
  afterAll(async () => {
    await rpc(d.clients).delete(ID, true).catch(() => undefined);
    await d?.cleanup();
  });

  it('after kill -9 and a restart, the adopted VM has its console back, history included', async () => {
    const before = grpcConsole(d.clients, ID);
    await before.out.until(READY_LINE);
    await before.out.roundTrip(before.send, 'echo before-$((3+4))\r', /\nbefore-7\r\n/);
    await d.kill9();
    expect((await before.status).code).toBe(status.UNAVAILABLE);

    await d.restart();
    expect((await rpc(d.clients).get(ID)).status?.phase).toBe('PHASE_RUNNING');
    const after = grpcConsole(d.clients, ID);
    await after.out.until(/\nbefore-7\r\n/);
    await after.out.roundTrip(after.send, 'echo after-$((2*4))\r', /\nafter-8\r\n/);
    after.call.end();
    expect((await after.status).code).toBe(status.OK);
  });

  it('a clean stop of the daemon ends consoles with UNAVAILABLE; the next daemon serves them again', async () => {
    const c = grpcConsole(d.clients, ID);
    await c.out.until(/\nafter-8\r\n/);
    expect(await d.stop()).toBe(0);
    const ended = await c.status;
    expect(ended.code).toBe(status.UNAVAILABLE);
    expect(ended.details).toContain('shutting down');

    await d.restart();
    const again = grpcConsole(d.clients, ID);
    await again.out.until(/\nafter-8\r\n/);
    await again.out.roundTrip(again.send, 'echo again-$((9+9))\r', /\nagain-18\r\n/);
    again.call.end();
    expect((await again.status).code).toBe(status.OK);
  });
});
