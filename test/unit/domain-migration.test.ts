import { describe, expect, it } from 'vitest';
import { VmletError } from '../../src/model/errors.js';
import type { MigrationPeer, PrepareIncoming } from '../../src/migration/ports.js';
import { MigrationRegistry } from '../../src/migration/registry.js';
import { OutgoingMigrations, type MigrationOptions } from '../../src/migration/source.js';
import { IncomingMigrations } from '../../src/migration/target.js';
import { fakeDomain, phaseReached, specOf } from '../support/fake-ports.js';

const OPTIONS: MigrationOptions = {
  maxBandwidthBytesPerSecond: 0,
  downtimeLimitMs: 0,
  allowAutoConverge: false,
  allowPostCopy: false,
  completionTimeoutPerGibSeconds: 0,
  progressTimeoutSeconds: 0,
};

const migratable = specOf('vm', {
  nics: [{ name: 'eth0', bridge: 'br0', mac: '' }],
  disks: [{ name: 'root', imagePath: '/images/base.qcow2', overlay: true, readonly: false }],
});

/** A peer that records calls and answers like a target node. */
class FakePeer implements MigrationPeer {
  readonly calls: string[] = [];
  prepared: PrepareIncoming | undefined;
  finishError: Error | undefined;

  async prepareIncoming(r: PrepareIncoming) {
    this.calls.push('prepare');
    this.prepared = r;
    return { migrationUri: 'tcp:127.0.0.1:4444', exports: r.mirroredDisks.map((disk) => ({ disk, host: '127.0.0.1', port: 5555, name: disk })) };
  }
  async finishIncoming(_uid: string, _id: string, resume: boolean) {
    this.calls.push(`finish resume=${resume}`);
    if (this.finishError) throw this.finishError;
  }
  async abortIncoming(_uid: string, _id: string, reason: string) {
    this.calls.push(`abort ${reason}`);
  }
  close() {
    this.calls.push('close');
  }
}

async function sourceWithRunningVm() {
  const d = fakeDomain();
  await d.manager.create(migratable, true);
  const registry = new MigrationRegistry();
  const peer = new FakePeer();
  const outgoing = new OutgoingMigrations({ manager: d.manager, registry, connect: () => peer, nodeName: 'node-a' });
  return { ...d, registry, peer, outgoing, machine: d.hypervisor.machines[0]! };
}

/** Resolves when the VM's migration reaches a terminal phase. */
function migrationEnded(registry: MigrationRegistry, id: string): Promise<string> {
  return new Promise((resolve) => {
    const check = (): void => {
      const m = registry.get(id);
      if (m && ['Succeeded', 'Failed', 'Cancelled'].includes(m.phase)) {
        registry.off('update', check);
        resolve(m.phase);
      }
    };
    registry.on('update', check);
    check();
  });
}

describe('outgoing migration (source)', () => {
  it('commits: mirrors the overlay, streams, tells the target to run, and retires the source', async () => {
    const s = await sourceWithRunningVm();
    await s.outgoing.start('vm', 'node-b:7000', OPTIONS);
    expect(await migrationEnded(s.registry, 'vm')).toBe('Succeeded');
    expect(s.peer.prepared!.mirroredDisks).toEqual(['root']);
    expect(s.peer.prepared!.nics.map((n) => n.port)).toEqual([0]);
    expect(s.machine.calls).toEqual(expect.arrayContaining(['mirrorDisk root', 'migrate tcp:127.0.0.1:4444', 'quit']));
    expect(s.peer.calls.slice(0, 2)).toEqual(['prepare', 'finish resume=true']);
    expect(s.manager.has('vm')).toBe(false);
    expect(s.network.taps.size).toBe(0);
    expect(s.hypervisor.processes.size).toBe(0);
  });

  it('rolls back before the commit point: the target discards, the guest goes on here', async () => {
    const s = await sourceWithRunningVm();
    s.machine.failOn.set('migrate tcp:127.0.0.1:4444', new VmletError('FAILED_PRECONDITION', 'QMP migrate failed: GenericError: bad uri'));
    await s.outgoing.start('vm', 'node-b:7000', OPTIONS);
    expect(await migrationEnded(s.registry, 'vm')).toBe('Failed');
    await phaseReached(s.manager, 'vm', 'Running');
    const vm = s.manager.get('vm');
    expect(vm.status.reason).toMatch(/^migration failed: .*bad uri/);
    expect(vm.status.migration).toBeUndefined();
    expect(s.peer.calls[1]).toMatch(/^abort /);
    expect(s.machine.calls).toContain('abandonMirrors root');
    expect(s.hypervisor.processes.size).toBe(1);
  });

  it('a failed QEMU migration (status failed) rolls back the same way', async () => {
    const s = await sourceWithRunningVm();
    s.machine.migration = { status: 'failed', error: 'connection reset' };
    await s.outgoing.start('vm', 'node-b:7000', OPTIONS);
    expect(await migrationEnded(s.registry, 'vm')).toBe('Failed');
    expect(s.registry.get('vm')!.reason).toMatch(/connection reset/);
    await phaseReached(s.manager, 'vm', 'Running');
  });

  it('after the commit point the source never resumes, even if the target cannot confirm', async () => {
    const s = await sourceWithRunningVm();
    s.peer.finishError = new VmletError('FAILED_PRECONDITION', 'target node: VM vm is not receiving migration');
    await s.outgoing.start('vm', 'node-b:7000', OPTIONS);
    await s.manager.record('vm').queue.idle();
    expect(s.manager.get('vm').status.migration?.committed).toBe(true);
    // The one `run` is the start's; the guest was never resumed here after the commit.
    expect(s.machine.calls.filter((c) => c === 'run')).toHaveLength(1);
    expect(s.manager.get('vm').status.phase).toBe('Migrating');
  });
});

describe('incoming migration (target)', () => {
  function target() {
    const d = fakeDomain();
    return { ...d, incoming: new IncomingMigrations(d.manager, () => '127.0.0.1') };
  }
  const request = (uid = 'u1'): PrepareIncoming => ({
    uid,
    spec: migratable,
    nics: [{ name: 'eth0', tap: 'vmlsource', mac: '02:aa:bb:cc:dd:ee', bridge: 'br0', port: 2 }],
    pciPorts: 5,
    mirroredDisks: ['root'],
    sourceNode: 'node-a',
    allowPostCopy: false,
  });

  it('prepares an Incoming VM with the source layout, exports the mirrored disk, and runs it on finish', async () => {
    const t = target();
    const ready = await t.incoming.prepare(request());
    expect(ready.migrationUri).toMatch(/^tcp:127\.0\.0\.1:\d+$/);
    expect(ready.exports.map((e) => e.disk)).toEqual(['root']);
    const [launch] = t.hypervisor.launches;
    expect(launch).toMatchObject({ incoming: true, pciPorts: 5, nicPorts: { eth0: 2 } });
    expect(launch!.nics[0]!.mac).toBe('02:aa:bb:cc:dd:ee');
    expect(t.manager.get('vm').status.phase).toBe('Incoming');

    await t.incoming.finish('u1', 'vm', true);
    expect(t.manager.get('vm').status).toMatchObject({ phase: 'Running', reason: 'migrated from node-a' });
    expect(t.hypervisor.machines[0]!.calls).toEqual(expect.arrayContaining(['incomingComplete', 'stopExports', 'run']));
  });

  it('an abort from the source leaves nothing behind', async () => {
    const t = target();
    await t.incoming.prepare(request());
    await t.incoming.abort('u1', 'vm', 'source gave up');
    expect(t.manager.has('vm')).toBe(false);
    expect(t.store.specs.size).toBe(0);
    expect(t.network.taps.size).toBe(0);
    expect(t.hypervisor.processes.size).toBe(0);
  });

  it('a prepare that fails half-way is undone whole', async () => {
    const t = target();
    t.hypervisor.prepare = (m) => m.failOn.set('exportDisks root', new VmletError('FAILED_PRECONDITION', 'QMP nbd-server-start failed'));
    await expect(t.incoming.prepare(request())).rejects.toThrow(/nbd-server-start/);
    expect(t.manager.has('vm')).toBe(false);
    expect(t.store.specs.size).toBe(0);
    expect(t.network.taps.size).toBe(0);
    expect(t.hypervisor.processes.size).toBe(0);
  });

  it('refuses a second prepare of the same VM', async () => {
    const t = target();
    await t.incoming.prepare(request());
    await expect(t.incoming.prepare(request())).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
  });
});
