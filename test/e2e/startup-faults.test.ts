/**
 * Faults a restarted daemon must survive without destroying anything (issue 17, point 5): a
 * truncated spec.json, and both status copies corrupt while the guest's QEMU runs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { CLI, TestDaemon } from '../support/daemon.js';
import { guestSpec, READY_LINE, waitForFileText } from '../support/guest.js';
import { expectCode, rpc } from '../support/rpc.js';
import { parseMetrics } from '../support/metrics-text.js';
import { qemuImg } from '../support/qcow2.js';
import { until } from '../support/poll.js';
import { isAlive, signal, waitForExit } from '../../src/host/process.js';

const files = (d: TestDaemon, id: string) => ({
  spec: join(d.stateDir, 'vms', id, 'spec.json'),
  durable: join(d.stateDir, 'vms', id, 'status.json'),
  live: join(d.runDir, 'vms', id, 'status.json'),
});

async function quarantinedTotal(d: TestDaemon): Promise<number | undefined> {
  const text = await (await fetch(`${d.httpAddress}/metrics`)).text();
  return parseMetrics(text).find((m) => m.name === 'vmlet_vm_quarantined_total')?.value;
}

describe('startup never destroys data', () => {
  let d: TestDaemon;
  const strays: number[] = [];

  beforeAll(async () => {
    d = await TestDaemon.start();
    await qemuImg('create', '-q', '-f', 'raw', join(d.root, 'images', 'base.raw'), '4M');
  });
  afterAll(async () => {
    for (const pid of strays) signal(pid, 'SIGKILL');
    await d?.cleanup();
  });

  const withOverlay = (id: string) => guestSpec(id, { disks: [{ name: 'data', imagePath: join(d.root, 'images', 'base.raw'), overlay: true, readonly: false }] });

  it('a truncated spec.json: the VM dir is moved aside whole and counted; the other VMs are adopted and served', async () => {
    let api = rpc(d.clients);
    const kept = await api.create(withOverlay('kept'), true);
    const torn = await api.create(withOverlay('torn'), true);
    const tornPid = torn.status!.pid;
    strays.push(tornPid);
    await waitForFileText(join(d.stateDir, 'vms', 'kept', 'console.log'), READY_LINE);
    await d.kill9();
    const spec = await readFile(files(d, 'torn').spec, 'utf8');
    await writeFile(files(d, 'torn').spec, spec.slice(0, Math.floor(spec.length / 2)));

    await d.restart();
    api = rpc(d.clients);
    expect(await expectCode(() => api.get('torn'), status.NOT_FOUND)).toContain('torn');
    const [moved, ...more] = await readdir(join(d.stateDir, 'quarantine'));
    expect(more).toEqual([]);
    expect(moved).toMatch(/^torn-\d{8}T\d{6}Z$/);
    const aside = join(d.stateDir, 'quarantine', moved!);
    expect((await readdir(aside)).sort()).toEqual(expect.arrayContaining(['console.log', 'disks', 'spec.json', 'status.json']));
    expect(await readdir(join(aside, 'disks'))).toEqual(['data.qcow2']);
    expect(await readFile(join(aside, 'spec.json'), 'utf8')).toBe(spec.slice(0, Math.floor(spec.length / 2)));
    expect(await quarantinedTotal(d)).toBe(1);
    // Its guest is left running, unmanaged, for an operator to decide.
    expect(await isAlive(tornPid)).toBe(true);
    const log = await readFile(join(d.root, 'daemon-2.log'), 'utf8');
    expect(log).toContain('its directory is moved aside whole');

    const adopted = await api.get('kept');
    expect(adopted.status?.phase).toBe('PHASE_RUNNING');
    expect(adopted.status?.pid).toBe(kept.status!.pid);
    expect((await api.pause('kept')).status?.phase).toBe('PHASE_PAUSED');
    expect((await api.resume('kept')).status?.phase).toBe('PHASE_RUNNING');
    await api.delete('kept', true);
    signal(tornPid, 'SIGKILL');
    expect(await waitForExit(tornPid, 10_000)).toBe(true);
  });

  it('both status copies corrupt while the QEMU runs: the guest is adopted, not killed, and stays controllable', async () => {
    let api = rpc(d.clients);
    const id = 'amnesiac';
    const pid = (await api.create(withOverlay(id), true)).status!.pid;
    const log = join(d.stateDir, 'vms', id, 'console.log');
    await waitForFileText(log, READY_LINE);
    await until('Running in the durable copy', async () => (/"phase": "Running"/.test(await readFile(files(d, id).durable, 'utf8')) ? true : undefined));
    await d.kill9();
    await writeFile(files(d, id).durable, '{"phase": "Runn');
    await writeFile(files(d, id).live, '');

    await d.restart();
    api = rpc(d.clients);
    const vm = await api.get(id);
    expect(vm.status?.phase).toBe('PHASE_RUNNING');
    expect(vm.status?.pid).toBe(pid);
    expect(vm.status?.reason).toContain('status files were lost; adopted its running QEMU');
    expect(await isAlive(pid)).toBe(true);
    // The recovered status is on disk again, with the overlay QEMU has open.
    const durable = JSON.parse(await readFile(files(d, id).durable, 'utf8')) as { pid: number; disks: { path: string }[] };
    expect(durable.pid).toBe(pid);
    expect(durable.disks.map((x) => x.path)).toEqual([join(d.stateDir, 'vms', id, 'disks', 'data.qcow2')]);

    // Controllable: QMP answers, a reboot shows a second boot, a stop ends that very QEMU.
    await api.reboot(id);
    await waitForFileText(log, (t) => t.split(READY_LINE).length - 1 >= 2);
    expect((await api.stop(id, 0, true)).status?.phase).toBe('PHASE_STOPPED');
    expect(await waitForExit(pid, 10_000)).toBe(true);
    expect((await api.start(id)).status?.phase).toBe('PHASE_RUNNING');
    await api.delete(id, true);
  });

  it('the state dir lock is an flock: a second daemon is refused while the first lives, and a kill -9 frees it', async () => {
    const holder = Number((await readFile(join(d.stateDir, 'vmlet.lock'), 'utf8')).trim());
    expect(holder).toBe(d.child!.pid);
    // A daemon on the same dirs (and socket: so it is watched for its exit, not asked over gRPC).
    const second = spawn(process.execPath, [CLI, ...d.args()], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    second.stdout.on('data', (b: Buffer) => (output += b.toString()));
    second.stderr.on('data', (b: Buffer) => (output += b.toString()));
    const [code] = (await once(second, 'exit')) as [number | null];
    expect(code).not.toBe(0);
    expect(output).toContain(`another vmlet (pid ${holder}) is using the state dir ${d.stateDir}`);
    expect(await isAlive(holder)).toBe(true);
    await d.kill9();
    // The lock file stays, naming the dead daemon; the kernel dropped the lock with its process.
    expect(Number((await readFile(join(d.stateDir, 'vmlet.lock'), 'utf8')).trim())).toBe(holder);
    await d.restart();
    expect(Number((await readFile(join(d.stateDir, 'vmlet.lock'), 'utf8')).trim())).toBe(d.child!.pid);
    expect((await rpc(d.clients).node()).accelerator).toBe('tcg');
  });
});
