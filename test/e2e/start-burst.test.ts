/**
 * Start admission under a burst: 60 CreateVm{start} at once on this 2-core node all end
 * RUNNING (starts beyond --max-parallel-starts wait their turn instead of timing out), and
 * deleting them leaves no QEMU behind; a kill -9 of the daemon in the middle of a burst ends,
 * after the restart, in one QEMU per running VM and none for the others.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestDaemon } from '../support/daemon.js';
import { guestSpec } from '../support/guest.js';
import { rpc } from '../support/rpc.js';
import { qemuPidsOf } from '../support/processes.js';
import { until } from '../support/poll.js';

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
    try {
      const failures = results.flatMap((r, i) => (r.status === 'rejected' ? [`${ids[i]}: ${(r.reason as Error).message}`] : []));
      expect(failures).toEqual([]);
      const vms = await api.list();
      expect(vms.filter((v) => v.status?.phase === 'PHASE_RUNNING')).toHaveLength(COUNT);
      expect((await qemuPidsOf(ids)).length).toBe(COUNT);
    } finally {
      // Also after a failure: the next test starts from an empty node.
      const deleted = await Promise.allSettled(ids.map((id) => api.delete(id, true)));
      expect(deleted.filter((r) => r.status === 'rejected')).toEqual([]);
    }
    expect(await api.list()).toEqual([]);
    expect(await qemuPidsOf(ids)).toEqual([]);
  }, 600_000);

  it('kill -9 of the daemon in the middle of a burst: after the restart every VM is consistent, and all run', async () => {
    const api = rpc(d.clients);
    const burst = Array.from({ length: 30 }, (_, i) => `cut-${String(i).padStart(3, '0')}`);
    const calls = Promise.allSettled(burst.map((id) => api.create(guestSpec(id), true)));
    await until('a third of the burst running', async () => ((await api.list()).filter((v) => v.status?.phase === 'PHASE_RUNNING').length >= 10 ? true : undefined), 120_000);
    await d.kill9();
    await calls;
    await d.restart();
    const after = rpc(d.clients);
    const vms = await after.list();
    const running = vms.filter((v) => v.status?.phase === 'PHASE_RUNNING');
    expect(running.length).toBeGreaterThanOrEqual(10);
    // One QEMU per running VM, none for the others: no orphan, no double.
    expect((await qemuPidsOf(burst)).sort()).toEqual(running.map((v) => v.status!.pid).sort());
    for (const v of vms.filter((x) => x.status?.phase !== 'PHASE_RUNNING')) {
      expect(['PHASE_PENDING', 'PHASE_FAILED', 'PHASE_STOPPED']).toContain(v.status?.phase);
      await after.start(v.spec!.id);
    }
    expect((await after.list()).every((v) => v.status?.phase === 'PHASE_RUNNING')).toBe(true);
    expect((await qemuPidsOf(burst)).length).toBe(vms.length);
    await Promise.all(vms.map((v) => after.delete(v.spec!.id, true)));
    expect(await qemuPidsOf(burst)).toEqual([]);
  }, 600_000);
});
