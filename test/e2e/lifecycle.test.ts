import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { TestDaemon } from '../support/daemon.js';
import { guestSpec, READY_LINE, waitForFileText } from '../support/guest.js';
import { rpc, watchVms } from '../support/rpc.js';
import { healthCheck, reflectedFiles, reflectedServices } from '../support/grpc-extras.js';
import { isAlive } from '../../src/host/process.js';

const count = (text: string, s: string) => text.split(s).length - 1;

describe('VM lifecycle over gRPC with a real TCG guest', () => {
  let d: TestDaemon;
  let api: ReturnType<typeof rpc>;

  beforeAll(async () => {
    d = await TestDaemon.start();
    api = rpc(d.clients);
  });
  afterAll(async () => {
    await d?.cleanup();
  });

  it('serves health, reflection and node info', async () => {
    expect(await healthCheck(d.socket)).toBe('SERVING');
    expect(await healthCheck(d.socket, 'vmlet.v1.VmService')).toBe('SERVING');
    const services = await reflectedServices(d.socket);
    expect(services).toEqual(expect.arrayContaining(['vmlet.v1.VmService', 'vmlet.v1.MigrationService', 'grpc.health.v1.Health']));
    // What grpcurl needs to describe and call the API as the proto is written: real file names, imports, snake_case fields.
    const files = await reflectedFiles(d.socket, 'vmlet.v1.VmService');
    expect(files.map((f) => f.name)).toEqual(['vmlet/v1/vm.proto', 'google/protobuf/timestamp.proto']);
    expect(files[0]!.dependency).toEqual(['google/protobuf/timestamp.proto']);
    const vmSpec = files[0]!.messageType.find((m) => m.name === 'VmSpec')!;
    expect(vmSpec.field.find((f) => f.name === 'memory_mib')?.jsonName).toBe('memoryMib');
    expect((await reflectedFiles(d.socket, 'grpc.health.v1.Health')).map((f) => f.name)).toEqual(['grpc/health/v1/health.proto']);
    const info = await api.node();
    const qemuVersion = /version (\d+\.\d+\.\d+)/.exec(execFileSync('qemu-system-x86_64', ['--version']).toString())![1];
    expect(info.qemuVersion).toBe(qemuVersion);
    expect(['kvm', 'tcg']).toContain(info.accelerator);
    expect(info.acceleratorReason).not.toBe('');
    expect(info.capacity?.cpus).toBe(cpus().length);
    expect(info.allocatable!.memoryMib).toBeLessThan(info.capacity!.memoryMib);
    expect(info.allocated).toEqual({ cpus: 0, memoryMib: 0 });
  });

  it('the unix socket is mode 0660', async () => {
    const { statSync } = await import('node:fs');
    expect(statSync(d.socket.slice('unix://'.length)).mode & 0o777).toBe(0o660);
  });

  it('create, start, pause, resume, reboot, stop, delete — each seen on the watch stream', async () => {
    const id = 'life-1';
    const watch = watchVms(d.clients, { id });
    const created = await api.create(guestSpec(id, { labels: { tier: 'web', team: 'a' } }));
    expect(created.status?.phase).toBe('PHASE_PENDING');
    expect(created.spec?.labels).toEqual({ team: 'a', tier: 'web' });

    expect((await api.list('tier=web')).map((v) => v.spec?.id)).toContain(id);
    expect((await api.list('tier!=web')).map((v) => v.spec?.id)).not.toContain(id);

    const running = await api.start(id);
    expect(running.status?.phase).toBe('PHASE_RUNNING');
    const pid = running.status!.pid;
    expect(await isAlive(pid)).toBe(true);
    expect((await api.node()).allocated).toEqual({ cpus: 1, memoryMib: 128 });
    const log = join(d.stateDir, 'vms', id, 'console.log');
    await waitForFileText(log, READY_LINE);

    expect((await api.pause(id)).status?.phase).toBe('PHASE_PAUSED');
    expect((await api.get(id)).status?.phase).toBe('PHASE_PAUSED');
    expect((await api.resume(id)).status?.phase).toBe('PHASE_RUNNING');

    const rebooted = await api.reboot(id);
    expect(rebooted.status?.pid).toBe(pid);
    await waitForFileText(log, (text) => count(text, READY_LINE) >= 2);

    const stopped = await api.stop(id);
    expect(stopped.status?.phase).toBe('PHASE_STOPPED');
    expect(stopped.status?.reason).toContain('powered off');
    expect(stopped.status?.pid).toBe(0);
    expect(await isAlive(pid)).toBe(false);
    expect(existsSync(join(d.runDir, 'vms', id, 'qmp.sock'))).toBe(false);
    // idempotent stop
    expect((await api.stop(id)).status?.phase).toBe('PHASE_STOPPED');

    await api.delete(id);
    await watch.until((e) => e.type === 'VM_EVENT_TYPE_DELETED');
    const phases = watch.events.map((e) => `${e.type.replace('VM_EVENT_TYPE_', '')}:${e.vm!.status!.phase.replace('PHASE_', '')}`);
    const transitions = phases.filter((p, i) => i === 0 || p !== phases[i - 1]);
    expect(transitions).toEqual([
      'ADDED:PENDING',
      'MODIFIED:STARTING',
      'MODIFIED:RUNNING',
      'MODIFIED:PAUSED',
      'MODIFIED:RUNNING',
      'MODIFIED:STOPPING',
      'MODIFIED:STOPPED',
      'MODIFIED:DELETING',
      'DELETED:DELETING',
    ]);
    watch.close();
    expect(existsSync(join(d.stateDir, 'vms', id))).toBe(false);
    expect(existsSync(join(d.runDir, 'vms', id))).toBe(false);
  });

  it('a watch that starts late gets the current VMs as ADDED first', async () => {
    await api.create(guestSpec('late-a', { labels: { w: '1' } }));
    await api.create(guestSpec('late-b', { labels: { w: '2' } }));
    const watch = watchVms(d.clients, { labelSelector: 'w=1' });
    const first = await watch.until(() => true);
    expect(first.type).toBe('VM_EVENT_TYPE_ADDED');
    expect(first.vm?.spec?.id).toBe('late-a');
    await api.delete('late-b');
    await api.delete('late-a');
    await watch.until((e) => e.type === 'VM_EVENT_TYPE_DELETED');
    expect(watch.events.map((e) => e.vm?.spec?.id)).not.toContain('late-b');
    watch.close();
  });

  it('create is idempotent for the same spec and keeps the first VM', async () => {
    const a = await api.create(guestSpec('idem'));
    const b = await api.create(guestSpec('idem'));
    expect(b.status?.createdAt).toEqual(a.status?.createdAt);
    expect((await api.list()).filter((v) => v.spec?.id === 'idem')).toHaveLength(1);
    await api.delete('idem');
  });

  it('create with start of an existing VM that is not running starts it, and is a no-op once it runs', async () => {
    const created = await api.create(guestSpec('idem-start'));
    expect(created.status?.phase).toBe('PHASE_PENDING');
    const started = await api.create(guestSpec('idem-start'), true);
    expect(started.status?.phase).toBe('PHASE_RUNNING');
    const again = await api.create(guestSpec('idem-start'), true);
    expect(again.status?.pid).toBe(started.status?.pid);
    expect(again.status?.createdAt).toEqual(created.status?.createdAt);
    await api.delete('idem-start', true);
  });

  it('a stop of a QEMU that does not answer QMP keeps to the grace period, then the bound of quit, then SIGKILL', async () => {
    const running = await api.create(guestSpec('hung-1'), true);
    const pid = running.status!.pid;
    process.kill(pid, 'SIGSTOP');
    const t0 = Date.now();
    const stopped = await api.stop('hung-1', 2);
    const seconds = (Date.now() - t0) / 1000;
    expect(stopped.status?.phase).toBe('PHASE_STOPPED');
    expect(stopped.status?.reason).toBe('stopped by request (killed)');
    // 2 s of grace, at most 5 s for quit, then the kill: not 10 s of QMP timeout per command on top.
    expect(seconds).toBeLessThan(2 + 5 + 3);
    expect(await isAlive(pid)).toBe(false);
    await api.delete('hung-1');
  });

  it('stop with force kills at once; a guest that powers itself off ends Stopped', async () => {
    const id = 'force-1';
    await api.create(guestSpec(id), true);
    const stopped = await api.stop(id, 0, true);
    expect(stopped.status?.phase).toBe('PHASE_STOPPED');
    expect(stopped.status?.reason).not.toContain('powered off');

    // The guest's own `poweroff` (kernel cmdline runs it right after boot): QEMU exits, vmlet notices via QMP EOF.
    const spec = guestSpec(id);
    await api.delete(id);
    const watch = watchVms(d.clients, { id: 'self-off' });
    await api.create({ ...spec, id: 'self-off', kernel: { ...spec.kernel!, cmdline: spec.kernel!.cmdline + ' vmlet.run=poweroff' } }, true);
    const ev = await watch.until((e) => e.vm?.status?.phase === 'PHASE_STOPPED');
    expect(ev.vm?.status?.reason).toBe('guest powered off');
    watch.close();
    await api.delete('self-off');
  });
});
