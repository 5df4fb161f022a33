import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { TestDaemon } from '../support/daemon.js';
import { guestSpec, READY_LINE, waitForFileText } from '../support/guest.js';
import { expectCode, rpc } from '../support/rpc.js';
import { status } from '@grpc/grpc-js';
import { isAlive, signal, waitForExit } from '../../src/host/process.js';
import { until } from '../support/poll.js';
import { healthCheck } from '../support/grpc-extras.js';

type StatusFile = Record<string, unknown> & { phase?: string; pid?: number; generation?: number };
const readStatus = async (file: string): Promise<StatusFile> => JSON.parse(await readFile(file, 'utf8').catch(() => '{}')) as StatusFile;
/** The durable copy (state dir) and the live copy (run dir) of a VM's status. */
const statusFiles = (d: TestDaemon, id: string) => ({ durable: join(d.stateDir, 'vms', id, 'status.json'), live: join(d.runDir, 'vms', id, 'status.json') });

describe('guests outlive the daemon; a restarted daemon adopts them', () => {
  let d: TestDaemon;

  beforeAll(async () => {
    d = await TestDaemon.start();
  });
  afterAll(async () => {
    await d?.cleanup();
  });

  it('kill -9 of the daemon: the guest keeps running, is adopted with the same pid and stays controllable', async () => {
    let api = rpc(d.clients);
    const id = 'survivor';
    const started = await api.create(guestSpec(id), true);
    const pid = started.status!.pid;
    const log = join(d.stateDir, 'vms', id, 'console.log');
    await waitForFileText(log, READY_LINE);

    await d.kill9();
    expect(await isAlive(pid)).toBe(true);

    await d.restart();
    api = rpc(d.clients);
    const adopted = await api.get(id);
    expect(adopted.status?.phase).toBe('PHASE_RUNNING');
    expect(adopted.status?.pid).toBe(pid);
    expect(adopted.status?.startedAt).toEqual(started.status?.startedAt);

    // Controllable afterwards: QMP works (pause/resume), and a reboot shows a second boot on the console.
    expect((await api.pause(id)).status?.phase).toBe('PHASE_PAUSED');
    expect((await api.resume(id)).status?.phase).toBe('PHASE_RUNNING');
    await api.reboot(id);
    await waitForFileText(log, (t) => t.split(READY_LINE).length - 1 >= 2);
    const stopped = await api.stop(id);
    expect(stopped.status?.phase).toBe('PHASE_STOPPED');
    expect(await isAlive(pid)).toBe(false);
    await api.delete(id);
  });

  it('SIGTERM stops the daemon cleanly (exit 0) and leaves a paused guest paused', async () => {
    let api = rpc(d.clients);
    const id = 'sleeper';
    const pid = (await api.create(guestSpec(id), true)).status!.pid;
    await api.pause(id);
    expect(await d.stop()).toBe(0);
    expect(await isAlive(pid)).toBe(true);
    await d.restart();
    api = rpc(d.clients);
    const vm = await api.get(id);
    expect(vm.status?.phase).toBe('PHASE_PAUSED');
    expect(vm.status?.pid).toBe(pid);
    await api.delete(id, true);
    expect(await isAlive(pid)).toBe(false);
  });

  it('a guest whose QEMU died while the daemon was down is marked Failed with the reason', async () => {
    let api = rpc(d.clients);
    const id = 'casualty';
    const pid = (await api.create(guestSpec(id), true)).status!.pid;
    await d.kill9();
    signal(pid, 'SIGKILL');
    expect(await waitForExit(pid, 10_000)).toBe(true);
    await d.restart();
    api = rpc(d.clients);
    const vm = await api.get(id);
    expect(vm.status?.phase).toBe('PHASE_FAILED');
    expect(vm.status?.reason).toContain('exited while vmlet was down');
    expect(vm.status?.pid).toBe(0);
    // And it can be started again.
    expect((await api.start(id)).status?.phase).toBe('PHASE_RUNNING');
    await api.delete(id, true);
  });

  it('a delete cut short by kill -9 is finished by the next daemon, even when that QEMU does not answer QMP', async () => {
    let api = rpc(d.clients);
    const id = 'hung-delete';
    const pid = (await api.create(guestSpec(id), true)).status!.pid;
    signal(pid, 'SIGSTOP');
    const deleting = api.delete(id).catch(() => undefined);
    await until('phase Deleting', async () => ((await api.get(id)).status?.phase === 'PHASE_DELETING' ? true : undefined), 20_000);
    await d.kill9();
    await deleting;
    await d.restart();
    api = rpc(d.clients);
    expect(await expectCode(() => api.get(id), status.NOT_FOUND)).toContain(id);
    expect(await waitForExit(pid, 10_000)).toBe(true);
  });

  it('QEMUs that do not answer QMP are reconciled side by side at restart, not one connect timeout after another', async () => {
    let api = rpc(d.clients);
    const ids = ['mute-1', 'mute-2', 'mute-3'];
    const pids = await Promise.all(ids.map(async (id) => (await api.create(guestSpec(id), true)).status!.pid));
    for (const pid of pids) signal(pid, 'SIGSTOP');
    await d.kill9();
    const t0 = Date.now();
    await d.restart();
    const seconds = (Date.now() - t0) / 1000;
    api = rpc(d.clients);
    for (const id of ids) expect((await api.get(id)).status?.reason).toContain('QMP does not answer');
    // One QMP connect timeout (5 s) for all three, plus the daemon's own start; in turn it was 15 s.
    expect(seconds).toBeLessThan(12);
    for (const id of ids) await api.delete(id, true);
    for (const pid of pids) expect(await waitForExit(pid, 10_000)).toBe(true);
  });

  it('a SIGTERM while the daemon starts stops it cleanly once started; the guests run on and are adopted next time', async () => {
    let api = rpc(d.clients);
    const ids = ['steady', 'mute'];
    const pids = await Promise.all(ids.map(async (id) => (await api.create(guestSpec(id), true)).status!.pid));
    // A QEMU that does not answer QMP holds the next start in its adoption for a connect timeout.
    signal(pids[1]!, 'SIGSTOP');
    await d.kill9();
    await d.restart(false);
    // gRPC listens before the adoption and says NOT_SERVING until it is done.
    await until('the restarted daemon listening while it adopts', async () => ((await healthCheck(d.socket)) === 'NOT_SERVING' ? true : undefined), 30_000, 20);
    d.child!.kill('SIGTERM');
    // Exit status 0: the daemon's own stop, not the signal's default action (code null).
    expect(await d.exited).toBe(0);
    for (const pid of pids) expect(await isAlive(pid)).toBe(true);
    signal(pids[1]!, 'SIGCONT');
    await d.restart();
    api = rpc(d.clients);
    const steady = await api.get('steady');
    expect(steady.status?.phase).toBe('PHASE_RUNNING');
    expect(steady.status?.pid).toBe(pids[0]);
    for (const id of ids) await api.delete(id, true);
    for (const pid of pids) expect(await waitForExit(pid, 10_000)).toBe(true);
  });

  it('kill -9 of the daemon while a start waits for QMP: the restarted daemon kills that QEMU and fails the start', async () => {
    // A "QEMU" that listens on its QMP socket and never greets: the start waits in its handshake,
    // with the pid already recorded. Its command line is the real argv (-name guest=…).
    const fake = join(d.root, 'qemu-mute.cjs');
    await writeFile(
      fake,
      `#!${process.execPath}
if (process.argv.includes('--version')) { console.log('QEMU emulator version 7.2.0'); process.exit(0); }
const spec = process.argv[process.argv.indexOf('-chardev') + 1];
require('node:net').createServer(() => {}).listen(/path=([^,]+)/.exec(spec)[1]);
`,
    );
    await chmod(fake, 0o755);
    const mute = await TestDaemon.start({ extraArgs: ['--accel', 'tcg', '--qemu', fake] });
    try {
      let api = rpc(mute.clients);
      const id = 'interrupted';
      await api.create(guestSpec(id));
      const starting = api.start(id).catch(() => undefined);
      // Recorded means in the live copy of the status, written at once; the restarted daemon
      // reads the newer of the two copies, and the durable one is never ahead of it.
      const files = statusFiles(mute, id);
      const pid = await until('pid recorded while Starting', async () => {
        const status = await readStatus(files.live);
        return status.phase === 'Starting' && status.pid ? status.pid : undefined;
      });
      expect((await readStatus(files.durable)).generation).toBeLessThanOrEqual((await readStatus(files.live)).generation!);
      await mute.kill9();
      await starting;
      expect(await isAlive(pid)).toBe(true);

      await mute.restart();
      api = rpc(mute.clients);
      const vm = await api.get(id);
      expect(vm.status?.phase).toBe('PHASE_FAILED');
      expect(vm.status?.reason).toContain('start interrupted by a vmlet restart');
      expect(vm.status?.pid).toBe(0);
      expect(await isAlive(pid)).toBe(false);
      await api.delete(id);
    } finally {
      await mute.cleanup();
    }
  });

  it('a VM whose live status still says Starting (vmlet died between `cont` and recording Running) is adopted, not killed', async () => {
    const id = 'answered';
    const pid = (await rpc(d.clients).create(guestSpec(id), true)).status!.pid;
    const files = statusFiles(d, id);
    const live = await until('Running in the live copy', async () => {
      const status = await readStatus(files.live);
      return status.phase === 'Running' ? status : undefined;
    });
    await d.kill9();
    // What the files hold if vmlet dies right after QEMU ran `cont`: the live copy has the pid and
    // Starting, the durable copy what the create wrote.
    await writeFile(files.live, JSON.stringify({ ...live, phase: 'Starting', reason: 'start requested', generation: live.generation! - 1 }));
    await writeFile(files.durable, JSON.stringify({ ...live, phase: 'Pending', reason: 'created', pid: 0, generation: 1 }));
    await d.restart();
    const api = rpc(d.clients);
    const vm = await api.get(id);
    expect(vm.status?.phase).toBe('PHASE_RUNNING');
    expect(vm.status?.pid).toBe(pid);
    expect(await isAlive(pid)).toBe(true);
    await api.delete(id, true);
    expect(await isAlive(pid)).toBe(false);
  });

  it('a node reboot (QEMU and the run dir gone): the durable status brings the VM back Failed, and it starts again', async () => {
    let api = rpc(d.clients);
    const id = 'rebooted';
    const pid = (await api.create(guestSpec(id), true)).status!.pid;
    const files = statusFiles(d, id);
    await until('Running in the durable status', async () => ((await readStatus(files.durable)).phase === 'Running' ? true : undefined));
    await d.kill9();
    signal(pid, 'SIGKILL');
    expect(await waitForExit(pid, 10_000)).toBe(true);
    await rm(dirname(files.live), { recursive: true, force: true });
    await d.restart();
    api = rpc(d.clients);
    const vm = await api.get(id);
    expect(vm.status?.phase).toBe('PHASE_FAILED');
    expect(vm.status?.reason).toContain(`QEMU (pid ${pid}) exited while vmlet was down`);
    expect((await api.start(id)).status?.phase).toBe('PHASE_RUNNING');
    await api.delete(id, true);
  });

  it('a start cut short before its pid was recorded is failed as interrupted too', async () => {
    const id = 'cut-short';
    await rpc(d.clients).create(guestSpec(id));
    await d.kill9();
    // What the files hold when vmlet dies between Starting and recording the pid.
    const files = statusFiles(d, id);
    const durable = await readStatus(files.durable);
    await mkdir(dirname(files.live), { recursive: true });
    await writeFile(files.live, JSON.stringify({ ...durable, phase: 'Starting', reason: 'start requested', pid: 0, generation: durable.generation! + 1 }));
    await d.restart();
    const api = rpc(d.clients);
    const vm = await api.get(id);
    expect(vm.status?.phase).toBe('PHASE_FAILED');
    expect(vm.status?.reason).toBe('start interrupted by a vmlet restart');
    expect((await api.start(id)).status?.phase).toBe('PHASE_RUNNING');
    await api.delete(id, true);
  });
});
