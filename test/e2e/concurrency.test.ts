import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { TestDaemon } from '../support/daemon.js';
import { guestSpec } from '../support/guest.js';
import { rpc } from '../support/rpc.js';
import { isAlive } from '../../src/host/process.js';
import { qemuPidsOf } from '../support/processes.js';

describe('10 VMs created, started and deleted concurrently', () => {
  let d: TestDaemon;

  beforeAll(async () => {
    d = await TestDaemon.start();
  });
  afterAll(async () => {
    await d?.cleanup();
  });

  it('all run, each with its own QEMU, and nothing is left behind', async () => {
    const api = rpc(d.clients);
    const ids = Array.from({ length: 10 }, (_, i) => `swarm-${i}`);
    const vms = await Promise.all(ids.map((id) => api.create(guestSpec(id, { memoryMib: 96, labels: { swarm: 'yes' } }), true)));
    expect(vms.map((v) => v.status?.phase)).toEqual(ids.map(() => 'PHASE_RUNNING'));
    const pids = vms.map((v) => v.status!.pid);
    expect(new Set(pids).size).toBe(10);
    for (const pid of pids) expect(await isAlive(pid)).toBe(true);
    expect(await api.list('swarm=yes')).toHaveLength(10);
    expect((await api.node()).allocated).toEqual({ cpus: 10, memoryMib: 960 });

    await Promise.all(ids.map((id) => api.delete(id)));
    for (const pid of pids) expect(await isAlive(pid)).toBe(false);
    expect(await api.list()).toEqual([]);
    expect(await readdir(join(d.stateDir, 'vms'))).toEqual([]);
    expect(await readdir(join(d.runDir, 'vms'))).toEqual([]);
    expect(await qemuPidsOf(ids)).toEqual([]);
    expect((await api.node()).allocated).toEqual({ cpus: 0, memoryMib: 0 });
  });

  it('the same create with start sent three times at once: one VM, one QEMU, every answer Running', async () => {
    const api = rpc(d.clients);
    const spec = guestSpec('triplet');
    const answers = await Promise.all([1, 2, 3].map(() => api.create(spec, true)));
    expect(answers.map((v) => v.status?.phase)).toEqual(['PHASE_RUNNING', 'PHASE_RUNNING', 'PHASE_RUNNING']);
    expect(new Set(answers.map((v) => v.status?.pid)).size).toBe(1);
    expect(await qemuPidsOf(['triplet'])).toEqual([answers[0]!.status!.pid]);
    await api.delete('triplet', true);
  });
});
