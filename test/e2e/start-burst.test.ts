/**
 * Start admission under a burst: 60 CreateVm{start} at once on this 2-core node all end
 * RUNNING (starts beyond --max-parallel-starts wait their turn instead of timing out), and
 * deleting them leaves no QEMU behind.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestDaemon } from '../support/daemon.js';
import { guestSpec } from '../support/guest.js';
import { rpc } from '../support/rpc.js';
import { qemuPidsOf } from '../support/processes.js';

const COUNT = 60;
const ids = Array.from({ length: COUNT }, (_, i) => `burst-${String(i).padStart(3, '0')}`);

describe('a burst of starts', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await TestDaemon.start({ extraArgs: ['--cpu-overcommit', '100', '--max-parallel-starts', '2'] });
  });
  afterAll(async () => {
    await d?.cleanup();
  });

  it(`${COUNT} concurrent CreateVm{start} all end RUNNING, and deleting them leaves no QEMU`, async () => {
    const api = rpc(d.clients);
    const results = await Promise.allSettled(ids.map((id) => api.create(guestSpec(id), true)));
    const failures = results.flatMap((r, i) => (r.status === 'rejected' ? [`${ids[i]}: ${(r.reason as Error).message}`] : []));
    expect(failures).toEqual([]);
    const vms = await api.list();
    expect(vms.filter((v) => v.status?.phase === 'PHASE_RUNNING')).toHaveLength(COUNT);
    expect((await qemuPidsOf(ids)).length).toBe(COUNT);
    await Promise.all(ids.map((id) => api.delete(id, true)));
    expect(await api.list()).toEqual([]);
    expect(await qemuPidsOf(ids)).toEqual([]);
  }, 600_000);
});
