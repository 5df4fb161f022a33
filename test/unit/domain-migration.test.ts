import { describe, expect, it } from 'vitest';
import { VmletError } from '../../src/model/errors.js';
import type { MigrationPeer, PrepareIncoming } from '../../src/migration/ports.js';
import { MigrationRegistry } from '../../src/migration/registry.js';
import { OutgoingMigrations, type MigrationOptions } from '../../src/migration/source.js';
import { IncomingMigrations } from '../../src/migration/target.js';
import { fakeDomain, phaseReached, specOf } from '../support/fake-ports.js';
import { until } from '../support/poll.js';

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
    await s.outgoing.start('vm', '127.0.0.1:7000', OPTIONS);
    expect(await migrationEnded(s.registry, 'vm')).toBe('Succeeded');
    expect(s.peer.prepared!.mirroredDisks).toEqual(['root']);
    expect(s.peer.prepared!.nics.map((n) => n.port)).toEqual([0]);
    expect(s.machine.calls).toEqual(expect.arrayContaining(['mirrorDisk root', 'migrate tcp:127.0.0.1:4444', 'quit']));
    expect(s.peer.calls.slice(0, 2)).toEqual(['prepare', 'finish resume=true']);
    expect(s.manager.has('vm')).toBe(false);
    expect(s.network.taps.size).toBe(0);
    expect(s.hypervisor.processes.size).toBe(0);
  });

  it('refuses a fifth migration in flight with RESOURCE_EXHAUSTED', async () => {
    const s = await sourceWithRunningVm();
    s.manager.env.settings.capacity = { ...s.manager.env.settings.capacity, cpuOvercommit: 10 };
    for (const id of ['vm2', 'vm3', 'vm4', 'vm5']) await s.manager.create({ ...migratable, id, nics: [] }, true);
    // A target that never answers keeps each migration in flight.
    s.peer.prepareIncoming = () => new Promise(() => undefined);
    for (const id of ['vm', 'vm2', 'vm3', 'vm4']) void s.outgoing.start(id, '127.0.0.1:7000', OPTIONS);
    await expect(s.outgoing.start('vm5', '127.0.0.1:7000', OPTIONS)).rejects.toMatchObject({ code: 'RESOURCE_EXHAUSTED', message: expect.stringMatching(/^4 migrations are leaving this node/) });
    expect(s.manager.get('vm5').status.phase).toBe('Running');
  });

  it('rolls back before the commit point: the target discards, the guest goes on here', async () => {
    const s = await sourceWithRunningVm();
    s.machine.failOn.set('migrate tcp:127.0.0.1:4444', new VmletError('FAILED_PRECONDITION', 'QMP migrate failed: GenericError: bad uri'));
    await s.outgoing.start('vm', '127.0.0.1:7000', OPTIONS);
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
    await s.outgoing.start('vm', '127.0.0.1:7000', OPTIONS);
    expect(await migrationEnded(s.registry, 'vm')).toBe('Failed');
    expect(s.registry.get('vm')!.reason).toMatch(/connection reset/);
    await phaseReached(s.manager, 'vm', 'Running');
  });

  it('the commit marker is written through the synced commit before the target is told to run the guest', async () => {
    const s = await sourceWithRunningVm();
    let committedOnDisk: boolean | undefined;
    const finish = s.peer.finishIncoming.bind(s.peer);
    s.peer.finishIncoming = async (uid, id, resume) => {
      committedOnDisk = s.store.commits.at(-1)?.migration?.committed;
      return finish(uid, id, resume);
    };
    await s.outgoing.start('vm', '127.0.0.1:7000', OPTIONS);
    expect(await migrationEnded(s.registry, 'vm')).toBe('Succeeded');
    expect(committedOnDisk).toBe(true);
  });

  it('a commit marker that cannot be written aborts the migration: the target never runs the guest, it goes on here', async () => {
    const s = await sourceWithRunningVm();
    s.store.failCommit = new Error('EIO: i/o error, fsync');
    await s.outgoing.start('vm', '127.0.0.1:7000', OPTIONS);
    expect(await migrationEnded(s.registry, 'vm')).toBe('Failed');
    await phaseReached(s.manager, 'vm', 'Running');
    const vm = s.manager.get('vm');
    expect(vm.status.reason).toContain("migration failed: the migration's commit marker could not be written (EIO: i/o error, fsync)");
    expect(vm.status.migration).toBeUndefined();
    expect(s.peer.calls.some((c) => c.startsWith('finish'))).toBe(false);
    expect(s.peer.calls[1]).toMatch(/^abort /);
    expect(s.hypervisor.processes.size).toBe(1);
  });

  it('after the commit point the source never resumes, even if the target cannot confirm', async () => {
    const s = await sourceWithRunningVm();
    s.peer.finishError = new VmletError('FAILED_PRECONDITION', 'target node: VM vm is not receiving migration');
    await s.outgoing.start('vm', '127.0.0.1:7000', OPTIONS);
    await s.manager.record('vm').queue.idle();
    expect(s.manager.get('vm').status.migration?.committed).toBe(true);
    // The one `run` is the start's; the guest was never resumed here after the commit.
    expect(s.machine.calls.filter((c) => c === 'run')).toHaveLength(1);
    expect(s.manager.get('vm').status.phase).toBe('Migrating');
  });
});

describe('a UEFI VM: its EFI variables store travels like an overlay', () => {
  const uefi = { ...migratable, firmware: { type: 'uefi' as const, secureBoot: false } };

  it('the source mirrors efi_vars after the overlays and finishes it at switchover', async () => {
    const d = fakeDomain();
    await d.manager.create(uefi, true);
    const registry = new MigrationRegistry();
    const peer = new FakePeer();
    const outgoing = new OutgoingMigrations({ manager: d.manager, registry, connect: () => peer, nodeName: 'node-a' });
    await outgoing.start('vm', '127.0.0.1:7000', OPTIONS);
    expect(await migrationEnded(registry, 'vm')).toBe('Succeeded');
    expect(peer.prepared!.mirroredDisks).toEqual(['root', 'efi_vars']);
    expect(d.hypervisor.machines[0]!.calls).toEqual(expect.arrayContaining(['mirrorDisk root', 'mirrorDisk efi_vars']));
  });

  it('a target that does not export the vars store (an older vmlet) aborts the migration before anything is sent', async () => {
    const d = fakeDomain();
    await d.manager.create(uefi, true);
    const registry = new MigrationRegistry();
    const peer = new FakePeer();
    peer.prepareIncoming = async (r) => {
      peer.calls.push('prepare');
      return { migrationUri: 'tcp:127.0.0.1:4444', exports: r.mirroredDisks.filter((x) => x !== 'efi_vars').map((disk) => ({ disk, host: '127.0.0.1', port: 5555, name: disk })) };
    };
    const outgoing = new OutgoingMigrations({ manager: d.manager, registry, connect: () => peer, nodeName: 'node-a' });
    await expect(outgoing.start('vm', '127.0.0.1:7000', OPTIONS)).rejects.toMatchObject({ code: 'ABORTED', message: /exports disks \[root\], but this node mirrors \[root, efi_vars\]/ });
    await phaseReached(d.manager, 'vm', 'Running');
    expect(d.hypervisor.machines[0]!.calls.some((c) => c.startsWith('mirrorDisk') || c.startsWith('migrate '))).toBe(false);
  });

  it('the target exports its fresh vars store for a UEFI VM, and refuses efi_vars for a BIOS VM before anything is made', async () => {
    const t = fakeDomain();
    const incoming = new IncomingMigrations(t.manager, () => '127.0.0.1');
    const req = { uid: 'u1', spec: uefi, nics: [], pciPorts: 4, mirroredDisks: ['root', 'efi_vars'], sourceNode: 'node-a', allowPostCopy: false };
    const ready = await incoming.prepare(req);
    expect(ready.exports.map((e) => e.disk)).toEqual(['root', 'efi_vars']);
    expect(t.hypervisor.machines[0]!.calls).toContain('exportDisks root,efi_vars');

    const b = fakeDomain();
    const bios = new IncomingMigrations(b.manager, () => '127.0.0.1');
    await expect(bios.prepare({ ...req, spec: migratable })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: /mirror_efi_vars: the VM has no EFI variables store/ });
    await expect(bios.prepare({ ...req, mirroredDisks: ['efi_vars', 'efi_vars'] })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: /mirrored twice/ });
    expect(b.hypervisor.launches).toHaveLength(0);
    expect(b.store.specs.size).toBe(0);
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
    // QEMU reads no guest agent input while it receives: the agent is followed once the move commits.
    expect(t.hypervisor.machines[0]!.guestListener).toBeUndefined();

    await t.incoming.finish('u1', 'vm', true);
    expect(t.manager.get('vm').status).toMatchObject({ phase: 'Running', reason: 'migrated from node-a' });
    expect(t.hypervisor.machines[0]!.guestListener).toBeDefined();
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

describe('trust between the two ends of a migration', () => {
  const TLS = { ca: '/pki/ca.pem', cert: '/pki/node.pem', key: '/pki/node.key' };

  async function sourceWith(answer: (r: PrepareIncoming) => { migrationUri: string; exports: { disk: string; host: string; port: number; name: string }[] }) {
    const d = fakeDomain();
    await d.manager.create(migratable, true);
    const registry = new MigrationRegistry();
    const peer = new FakePeer();
    peer.prepareIncoming = async (r) => {
      peer.calls.push('prepare');
      return answer(r);
    };
    const outgoing = new OutgoingMigrations({ manager: d.manager, registry, connect: () => peer, nodeName: 'node-a', streamTls: TLS });
    return { ...d, registry, peer, outgoing, machine: d.hypervisor.machines[0]! };
  }

  it('the source secures the streams to the target\'s own name before a byte leaves', async () => {
    const s = await sourceWith((r) => ({ migrationUri: 'tcp:10.0.0.2:4444', exports: r.mirroredDisks.map((disk) => ({ disk, host: '10.0.0.2', port: 5555, name: disk })) }));
    await s.outgoing.start('vm', '10.0.0.2:7000', OPTIONS);
    expect(await migrationEnded(s.registry, 'vm')).toBe('Succeeded');
    const calls = s.machine.calls;
    expect(calls.indexOf('secureStreams client host=10.0.0.2')).toBeGreaterThanOrEqual(0);
    expect(calls.indexOf('secureStreams client host=10.0.0.2')).toBeLessThan(calls.indexOf('mirrorDisk root'));
  });

  const refused: [string, (r: PrepareIncoming) => { migrationUri: string; exports: { disk: string; host: string; port: number; name: string }[] }, RegExp][] = [
    ['an exec: URI', (r) => ({ migrationUri: 'exec:cat > /tmp/ram', exports: r.mirroredDisks.map((disk) => ({ disk, host: '10.0.0.2', port: 5555, name: disk })) }), /only tcp: on the target's own address/],
    ['a unix: URI', (r) => ({ migrationUri: 'unix:/tmp/mig.sock', exports: r.mirroredDisks.map((disk) => ({ disk, host: '10.0.0.2', port: 5555, name: disk })) }), /only tcp: on the target's own address/],
    ['a third host', (r) => ({ migrationUri: 'tcp:10.0.0.66:4444', exports: r.mirroredDisks.map((disk) => ({ disk, host: '10.0.0.2', port: 5555, name: disk })) }), /only tcp: on the target's own address/],
    ['an export on a third host', (r) => ({ migrationUri: 'tcp:10.0.0.2:4444', exports: r.mirroredDisks.map((disk) => ({ disk, host: '10.0.0.66', port: 5555, name: disk })) }), /not on its own address/],
    ['an export of an undeclared disk', () => ({ migrationUri: 'tcp:10.0.0.2:4444', exports: [{ disk: 'other', host: '10.0.0.2', port: 5555, name: 'other' }] }), /exports disks \[other\], but this node mirrors \[root\]/],
  ];
  for (const [what, answer, reason] of refused) {
    it(`the source refuses ${what}: nothing is sent, the target discards, the guest runs on here`, async () => {
      const s = await sourceWith(answer);
      await expect(s.outgoing.start('vm', '10.0.0.2:7000', OPTIONS)).rejects.toMatchObject({ code: 'ABORTED', message: reason });
      await phaseReached(s.manager, 'vm', 'Running');
      expect(s.machine.calls.some((c) => c.startsWith('migrate ') || c.startsWith('mirrorDisk') || c.startsWith('secureStreams'))).toBe(false);
      expect(s.peer.calls[1]).toMatch(/^abort /);
      expect(s.hypervisor.processes.size).toBe(1);
    });
  }

  function secureTarget(timeoutMs?: number) {
    const d = fakeDomain();
    return { ...d, incoming: new IncomingMigrations(d.manager, () => '127.0.0.1', { streamTls: TLS, ...(timeoutMs ? { incomingTimeoutMs: timeoutMs } : {}) }) };
  }
  const incomingRequest = (extra: Partial<PrepareIncoming> = {}): PrepareIncoming => ({
    uid: 'u1',
    spec: migratable,
    nics: [{ name: 'eth0', tap: 'vmlsource', mac: '02:aa:bb:cc:dd:ee', bridge: 'br0', port: 2 }],
    pciPorts: 5,
    mirroredDisks: ['root'],
    sourceNode: 'node-a',
    allowPostCopy: false,
    sourceSubjects: ['CN=node-a,O=vmlet', 'O=vmlet,CN=node-a'],
    ...extra,
  });

  it('the target lets only the source\'s certificate into the streams, set before the exports and the listener', async () => {
    const t = secureTarget();
    await t.incoming.prepare(incomingRequest());
    const calls = t.hypervisor.machines[0]!.calls;
    const secured = calls.indexOf('secureStreams server allow=CN=node-a,O=vmlet|O=vmlet,CN=node-a');
    expect(secured).toBeGreaterThanOrEqual(0);
    expect(secured).toBeLessThan(calls.indexOf('exportDisks root'));
    expect(secured).toBeLessThan(calls.findIndex((c) => c.startsWith('listen ')));
  });

  it('the target refuses a caller without a certificate, and a mirror of a disk that is not a writable overlay, before anything is made', async () => {
    const t = secureTarget();
    await expect(t.incoming.prepare(incomingRequest({ sourceSubjects: [] }))).rejects.toMatchObject({ code: 'FAILED_PRECONDITION', message: /presented no client certificate/ });
    const base = specOf('vm', { disks: [{ name: 'root', imagePath: '/images/base.qcow2', overlay: false, readonly: false }] });
    await expect(t.incoming.prepare(incomingRequest({ spec: base, nics: [] }))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: /not a writable overlay/ });
    await expect(t.incoming.prepare(incomingRequest({ mirroredDisks: ['nope'] }))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: /nope is not in the spec/ });
    expect(t.manager.has('vm')).toBe(false);
    expect(t.hypervisor.launches).toHaveLength(0);
    expect(t.store.specs.size).toBe(0);
  });

  it('an incoming VM whose stream never begins is discarded after the timeout; one whose stream flows is kept', async () => {
    const t = secureTarget(30);
    t.hypervisor.prepare = (m) => (m.migration = { status: 'none' });
    await t.incoming.prepare(incomingRequest());
    await until('the expired incoming VM discarded', async () => (t.manager.has('vm') ? undefined : true), 5000, 5);
    expect(t.hypervisor.processes.size).toBe(0);
    expect(t.network.taps.size).toBe(0);

    t.hypervisor.prepare = (m) => (m.migration = { status: 'active' });
    await t.incoming.prepare(incomingRequest({ uid: 'u2' }));
    const machine = t.hypervisor.machines[t.hypervisor.machines.length - 1]!;
    await until('the flowing stream checked twice', async () => (machine.calls.filter((c) => c === 'progress').length >= 2 ? true : undefined), 5000, 5);
    expect(t.manager.get('vm').status.phase).toBe('Incoming');
    await t.incoming.abort('u2', 'vm', 'test over');
  });
});

