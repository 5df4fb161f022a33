import { status } from '@grpc/grpc-js';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestDaemon } from '../support/daemon.js';
import { guestSpec, READY_LINE, waitForFileText } from '../support/guest.js';
import { rpc } from '../support/rpc.js';
import { grpcConsole, rawStuckConsole } from '../support/console-clients.js';

const ID = 'slow-1';
/** More than the daemon's per-client bound (1 MiB) plus what the transport itself holds. */
const OUTPUT_BYTES = 1_600_000;

describe('console: a client that never reads', () => {
  let d: TestDaemon;
  let api: ReturnType<typeof rpc>;

  beforeAll(async () => {
    d = await TestDaemon.start();
    api = rpc(d.clients);
    await api.create(guestSpec(ID), true);
    await waitForFileText(join(d.stateDir, 'vms', ID, 'console.log'), READY_LINE);
  });
  afterAll(async () => {
    await api?.delete(ID, true).catch(() => undefined);
    await d?.cleanup();
  });

  it('stalls neither the guest nor another client, and is dropped with RESOURCE_EXHAUSTED', async () => {
    const stuck = rawStuckConsole(d.socket.slice('unix://'.length), ID);
    const healthy = grpcConsole(d.clients, ID);
    try {
      await healthy.out.until(READY_LINE);
      // About 14 s of serial output under TCG; the healthy client sees all of it and the end marker.
      await healthy.out.roundTrip(
        healthy.send,
        `yes 0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ | head -c ${OUTPUT_BYTES}; echo DONE-$((1+1))\r`,
        /DONE-2\r\n/,
        100_000,
      );
      await healthy.out.roundTrip(healthy.send, 'echo $((6*7))\r', /\n42\r\n/);
      // The stuck client, once it reads again, finds what the daemon had queued for it, then the status.
      stuck.resume();
      const trailers = await stuck.trailers;
      expect(trailers['grpc-status']).toBe(String(status.RESOURCE_EXHAUSTED));
      expect(decodeURIComponent(String(trailers['grpc-message']))).toMatch(/console client too slow: more than 1 MiB of output not taken/);
      expect(stuck.received()).toBeLessThan(OUTPUT_BYTES);
    } finally {
      stuck.close();
      healthy.call.cancel();
    }
  }, 180_000);
});
