import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO, TestDaemon } from '../support/daemon.js';
import { guestSpec } from '../support/guest.js';
import { rpc, watchVms } from '../support/rpc.js';
import { WATCH_MAX_QUEUED_EVENTS } from '../../src/api/grpc/vm-service.js';

describe('WatchVms: a client that stops reading', () => {
  let d: TestDaemon;
  let api: ReturnType<typeof rpc>;

  beforeAll(async () => {
    d = await TestDaemon.start();
    api = rpc(d.clients);
  });
  afterAll(async () => {
    await d?.cleanup();
  });

  it('is cut off with RESOURCE_EXHAUSTED once it is too far behind, while a reading watcher sees everything', async () => {
    await api.create(guestSpec('churn-first', { labels: { churn: '1' } }));
    const child = spawn(process.execPath, [join(REPO, 'test/support/watch-client.mjs'), d.socket], { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    try {
      expect(JSON.parse((await lines.next()).value as string)).toEqual({ ready: true });
      child.kill('SIGSTOP');
      const healthy = watchVms(d.clients, { labelSelector: 'churn=1' });
      // Every create + delete of a Pending VM is several events: enough of them to fill the
      // socket and then the daemon's bound.
      const cycles = Math.ceil(WATCH_MAX_QUEUED_EVENTS / 2);
      const spec = guestSpec('churn', { labels: { churn: '1' } });
      const worker = async (w: number) => {
        for (let i = w; i < cycles; i += 4) {
          await api.create({ ...spec, id: `churn-${i}` });
          await api.delete(`churn-${i}`);
        }
      };
      await Promise.all(Array.from({ length: 4 }, (_, w) => worker(w)));
      await healthy.until(() => healthy.events.filter((e) => e.type === 'VM_EVENT_TYPE_DELETED').length === cycles);
      healthy.close();
      // Running again, it reads what was queued before the cut, then the status.
      child.kill('SIGCONT');
      const end = JSON.parse((await lines.next()).value as string) as { events: number; code: number; details: string };
      expect(end.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(end.details).toMatch(/watch client is too slow/);
      expect(end.events).toBeLessThan(healthy.events.length);
    } finally {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
      if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
      await api.delete('churn-first');
    }
  }, 240_000);
});
