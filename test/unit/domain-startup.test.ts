import { describe, expect, it } from 'vitest';
import type { Quarantined } from '../../src/model/events.js';
import type { NicStatus, Phase, VmStatus } from '../../src/model/vm.js';
import { fakeDomain, specOf } from '../support/fake-ports.js';

type Domain = ReturnType<typeof fakeDomain>;

/** A VM on the store as a vmlet that went down left it. */
function leave(d: Domain, id: string, status: (Partial<VmStatus> & { phase: Phase }) | undefined): void {
  d.store.specs.set(id, specOf(id, { nics: [{ name: 'eth0', bridge: 'br0', mac: '' }] }));
  const t = d.clock.now().toISOString();
  if (status) d.store.durable.set(id, { reason: '', pid: 0, nics: [], disks: [], accelerator: 'tcg', createdAt: t, lastTransitionAt: t, generation: 5, ...status });
}

const tapOf = (name: string): NicStatus => ({ name: 'eth0', tap: name, mac: '02:00:00:00:00:01', bridge: 'br0' });

/** A running "QEMU" of a VM, with its TAP on the node. */
function running(d: Domain, id: string, tap: string): number {
  const pid = d.hypervisor.spawnOrphan(id);
  d.network.taps.set(tap, tapOf(tap));
  return pid;
}

describe('startup never destroys data', () => {
  it('moves a VM whose spec cannot be read aside, counts it, leaves its QEMU and TAP, and serves the others', async () => {
    const d = fakeDomain();
    const events: Quarantined[] = [];
    d.manager.on('quarantine', (q) => events.push(q));
    const keptPid = running(d, 'fine', 'vml0000000000f1');
    leave(d, 'fine', { phase: 'Running', pid: keptPid, nics: [tapOf('vml0000000000f1')] });
    const brokenPid = running(d, 'broken', 'vml0000000000b1');
    d.store.unreadable.set('broken', 'spec.json is not valid JSON');
    d.store.durable.set('broken', { ...d.manager.newStatus('Running'), pid: brokenPid, nics: [tapOf('vml0000000000b1')] });

    await d.manager.init();

    expect(d.store.quarantined.get('broken')).toMatch(/^\/state\/quarantine\/broken-/);
    expect(events).toEqual([{ id: 'broken', path: d.store.quarantined.get('broken'), reason: 'spec.json is not valid JSON' }]);
    expect(d.manager.has('broken')).toBe(false);
    expect(d.manager.get('fine').status).toMatchObject({ phase: 'Running', pid: keptPid });
    expect(d.hypervisor.killed).toEqual([]);
    expect([...d.network.taps.keys()].sort()).toEqual(['vml0000000000b1', 'vml0000000000f1']);
  });

  it('a directory that cannot be moved aside stays where it is, unloaded, and is still counted', async () => {
    const d = fakeDomain();
    const events: Quarantined[] = [];
    d.manager.on('quarantine', (q) => events.push(q));
    d.store.unreadable.set('stuck', 'spec.json cannot be read: EIO');
    d.store.failQuarantine = new Error('EROFS');
    await d.manager.init();
    expect(events).toEqual([{ id: 'stuck', path: '', reason: 'spec.json cannot be read: EIO' }]);
    expect(d.store.unreadable.has('stuck')).toBe(true);
    expect(d.manager.has('stuck')).toBe(false);
  });

  it('adopts the running QEMU of a VM whose status copies are both lost, with the TAPs its command line names', async () => {
    const d = fakeDomain();
    const pid = running(d, 'amnesiac', 'vml0000000000a1');
    leave(d, 'amnesiac', undefined);
    d.hypervisor.commandLines.set(pid, { nics: [tapOf('vml0000000000a1')], accelerator: 'tcg', uid: 2000007 });
    d.hypervisor.adoptedRunState = 'running';

    await d.manager.init();

    const { status } = d.manager.get('amnesiac');
    expect(status).toMatchObject({ phase: 'Running', pid, uid: 2000007, nics: [tapOf('vml0000000000a1')] });
    expect(status.reason).toContain('status files were lost; adopted its running QEMU');
    expect(d.manager.record('amnesiac').machine?.pid).toBe(pid);
    expect(d.hypervisor.killed).toEqual([]);
    expect(d.network.taps.has('vml0000000000a1')).toBe(true);
    // Written at once, for the next restart.
    await d.manager.record('amnesiac').saving;
    expect(d.store.durable.get('amnesiac')).toMatchObject({ phase: 'Running', pid });

    // And it is managed: a stop reaches its QEMU.
    await d.manager.stop('amnesiac', 1, true);
    expect(d.manager.get('amnesiac').status.phase).toBe('Stopped');
    expect(d.network.taps.has('vml0000000000a1')).toBe(false);
  });

  it('a VM whose status is lost and whose QEMU is gone is Stopped', async () => {
    const d = fakeDomain();
    leave(d, 'gone', undefined);
    await d.manager.init();
    expect(d.manager.get('gone').status).toMatchObject({ phase: 'Stopped', reason: 'status file was lost; VM marked stopped' });
  });

  it('one VM whose reconcile fails is Failed with the reason; the daemon starts and serves the others', async () => {
    const d = fakeDomain();
    const goodPid = running(d, 'good', 'vml0000000000c1');
    leave(d, 'good', { phase: 'Running', pid: goodPid, nics: [tapOf('vml0000000000c1')] });
    const badPid = running(d, 'bad', 'vml0000000000c2');
    leave(d, 'bad', { phase: 'Running', pid: badPid, nics: [tapOf('vml0000000000c2')] });
    const isQemuOf = d.hypervisor.isQemuOf.bind(d.hypervisor);
    d.hypervisor.isQemuOf = async (pid, id) => {
      if (pid === badPid) throw new Error('EACCES reading /proc');
      return isQemuOf(pid, id);
    };

    await d.manager.init();

    expect(d.manager.get('bad').status.phase).toBe('Failed');
    expect(d.manager.get('bad').status.reason).toBe('could not be reconciled at startup: EACCES reading /proc; stop, start or delete it');
    expect(d.manager.get('good').status).toMatchObject({ phase: 'Running', pid: goodPid });
    // The Failed VM keeps its pid and TAP: a stop or delete can still reach them.
    expect(d.hypervisor.killed).toEqual([]);
    expect(d.network.taps.has('vml0000000000c2')).toBe(true);
    await d.manager.pause('good');
    expect(d.manager.get('good').status.phase).toBe('Paused');
  });
});
