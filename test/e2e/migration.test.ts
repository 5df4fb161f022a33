import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { TwoNodes } from '../support/two-nodes.js';
import { migrations } from '../support/migrations.js';
import { CLI } from '../support/daemon.js';
import { until } from '../support/poll.js';
import { guestSpec, waitForFileText } from '../support/guest.js';
import { expectCode, rpc } from '../support/rpc.js';
import { qemuPidsOf } from '../support/processes.js';
import { isVmletTapName } from '../../src/net/names.js';

const exec = promisify(execFile);

/**
 * The migrating guest: mounts its overlay disk and writes a proof file, then prints a counter
 * every 100 ms with its uptime; every 3 s it drops the page cache and prints the proof file read
 * back from the disk (more often would dirty memory faster than a throttled migration sends it).
 */
const COUNTER = 'mount /dev/vda /mnt && echo proof-$(cat /proc/sys/kernel/random/uuid) > /mnt/proof && sync; i=0; while true; do if [ $((i % 30)) = 0 ]; then echo 3 > /proc/sys/vm/drop_caches; echo PROOF $i $(cat /mnt/proof); fi; echo COUNT $i $(cut -d. -f1 /proc/uptime); i=$((i+1)); usleep 100000; done';

function lastCount(text: string): { i: number; uptime: number } | undefined {
  const lines = [...text.matchAll(/^COUNT (\d+) (\d+)\r?$/gm)];
  const last = lines[lines.length - 1];
  return last ? { i: Number(last[1]), uptime: Number(last[2]) } : undefined;
}

/** The proof file as last read from disk, after iteration `after`. */
function proofAfter(text: string, after: number): string | undefined {
  const hits = [...text.matchAll(/^PROOF (\d+) (\S+)\r?$/gm)].filter((m) => Number(m[1]) > after);
  return hits[hits.length - 1]?.[2];
}

describe('live migration between two vmlet nodes (two namespaces, mutual TLS, no shared storage)', () => {
  let nodes: TwoNodes;
  let base: string;

  beforeAll(async () => {
    nodes = await TwoNodes.start();
    base = join(nodes.images, 'data-base.raw');
    await exec('truncate', ['-s', '32M', base]);
    await exec('mkfs.ext2', ['-q', '-F', base]);
  });
  afterAll(async () => {
    await nodes?.cleanup();
  });

  const counterVm = (id: string, ip: string) =>
    guestSpec(id, {
      memoryMib: 256,
      disks: [{ name: 'data', imagePath: base, overlay: true, readonly: false }],
      nics: [{ name: 'eth0', bridge: 'br0', mac: '' }],
      kernel: { ...guestSpec('x').kernel!, cmdline: `console=ttyS0 panic=-1 vmlet.ip=${ip}/24 vmlet.run="${COUNTER}"` },
    });

  afterEach(async () => {
    for (const n of [nodes.a, nodes.b]) for (const vm of await rpc(n.daemon.clients).list()) await rpc(n.daemon.clients).delete(vm.spec!.id, true).catch(() => undefined);
  });

  it('moves a running guest: it keeps counting without a reboot, its disk file is there, a peer on the target reaches it', async () => {
    const id = 'mover';
    const a = rpc(nodes.a.daemon.clients);
    const b = rpc(nodes.b.daemon.clients);
    await a.create(counterVm(id, '10.98.0.10'), true);
    const srcLog = join(nodes.a.daemon.stateDir, 'vms', id, 'console.log');
    await waitForFileText(srcLog, (t) => (lastCount(t)?.i ?? 0) >= 5, 90_000);
    const srcText = await readFile(srcLog, 'utf8');
    const before = lastCount(srcText)!;
    const proof = proofAfter(srcText, -1)!;
    expect(proof).toMatch(/^proof-/);

    const mig = migrations(nodes.a);
    const started = await mig.migrate(id, nodes.b.address);
    expect(['MIGRATION_PHASE_RUNNING', 'MIGRATION_PHASE_SUCCEEDED']).toContain(started.phase);
    const updates = await mig.watch(id);
    const final = updates[updates.length - 1]!;
    expect(final.phase).toBe('MIGRATION_PHASE_SUCCEEDED');
    expect(final.dataTotalBytes).toBeGreaterThan(0);
    expect(final.source).toBe('node-a');
    expect(final.target).toBe(nodes.b.address);

    // Exactly one node has it, running.
    expect(await a.list()).toEqual([]);
    const moved = await b.get(id);
    expect(moved.status?.phase).toBe('PHASE_RUNNING');
    expect((await qemuPidsOf([id])).length).toBe(1);
    expect((await nodes.a.ns.linkNames()).filter(isVmletTapName)).toEqual([]);

    // Keeps counting on the target, uptime rising, no second boot, the disk file is still there.
    const dstLog = join(nodes.b.daemon.stateDir, 'vms', id, 'console.log');
    const dstText = await waitForFileText(dstLog, (t) => proofAfter(t, before.i) !== undefined, 60_000);
    const after = lastCount(dstText)!;
    expect(after.i).toBeGreaterThan(before.i);
    expect(after.uptime).toBeGreaterThanOrEqual(before.uptime);
    // Read from the target's disk after its page cache was dropped: the overlay travelled.
    expect(proofAfter(dstText, before.i)).toBe(proof);
    expect(await readFile(dstLog, 'utf8')).not.toContain('VMLET-GUEST-READY');

    // A VM on the target's bridge pings the migrated guest.
    await b.create(guestSpec('peer', { nics: [{ name: 'eth0', bridge: 'br0', mac: '' }], kernel: { ...guestSpec('x').kernel!, cmdline: 'console=ttyS0 vmlet.ip=10.98.0.20/24 vmlet.run="ping -c 3 -w 60 10.98.0.10"' } }), true);
    await waitForFileText(join(nodes.b.daemon.stateDir, 'vms', 'peer', 'console.log'), /3 packets received/, 90_000);
    expect((await mig.get(id)).phase).toBe('MIGRATION_PHASE_SUCCEEDED');
  });

  it('a paused VM stays paused on the target', async () => {
    const a = rpc(nodes.a.daemon.clients);
    await a.create(guestSpec('napper', { nics: [{ name: 'eth0', bridge: 'br0', mac: '' }] }), true);
    await a.pause('napper');
    // Through the CLI this time: `vmlet migrate ID TARGET --wait` prints progress and exits 0 on success.
    const { stdout } = await exec(process.execPath, [CLI, '--endpoint', nodes.a.daemon.socket, 'migrate', 'napper', nodes.b.address, '--wait']);
    expect(stdout).toMatch(/^napper\s+SUCCEEDED\s+node-a -> 10\.99\.0\.2:7443/m);
    expect((await migrations(nodes.a).get('napper')).phase).toBe('MIGRATION_PHASE_SUCCEEDED');
    expect((await rpc(nodes.b.daemon.clients).get('napper')).status?.phase).toBe('PHASE_PAUSED');
  });

  it('cancel in the middle: the guest keeps running on the source, the target keeps nothing', async () => {
    const a = rpc(nodes.a.daemon.clients);
    await a.create(counterVm('stayer', '10.98.0.11'), true);
    const mig = migrations(nodes.a);
    // Slow enough (1 MiB/s) to be caught in the middle.
    await mig.migrate('stayer', nodes.b.address, { maxBandwidthBytesPerSecond: 1024 * 1024 });
    const cancelled = await mig.cancel('stayer');
    expect(cancelled.phase).toBe('MIGRATION_PHASE_CANCELLED');
    expect((await a.get('stayer')).status?.phase).toBe('PHASE_RUNNING');
    expect(await rpc(nodes.b.daemon.clients).list()).toEqual([]);
    expect((await nodes.b.ns.linkNames()).filter(isVmletTapName)).toEqual([]);
    expect((await qemuPidsOf(['stayer'])).length).toBe(1);
    const log = join(nodes.a.daemon.stateDir, 'vms', 'stayer', 'console.log');
    const n = lastCount(await readFile(log, 'utf8'))?.i ?? 0;
    await waitForFileText(log, (t) => (lastCount(t)?.i ?? 0) > n + 3, 30_000);
  });

  it('kill -9 of the target daemon in the middle: one consistent outcome, one running copy', async () => {
    const a = rpc(nodes.a.daemon.clients);
    await a.create(counterVm('crossing', '10.98.0.12'), true);
    const mig = migrations(nodes.a);
    // 16 MiB/s: a few seconds of streaming, most of it while the target daemon is down.
    await mig.migrate('crossing', nodes.b.address, { maxBandwidthBytesPerSecond: 16 * 1024 * 1024 });
    await nodes.b.daemon.kill9();
    await nodes.b.daemon.restart();
    const done = await mig.watch('crossing');
    const phase = done[done.length - 1]!.phase;
    expect(['MIGRATION_PHASE_SUCCEEDED', 'MIGRATION_PHASE_FAILED']).toContain(phase);
    const onA = (await a.list()).filter((v) => v.spec?.id === 'crossing');
    const onB = (await rpc(nodes.b.daemon.clients).list()).filter((v) => v.spec?.id === 'crossing');
    expect(onA.length + onB.length, JSON.stringify({ phase, a: onA.map((v) => [v.status?.phase, v.status?.reason]), b: onB.map((v) => [v.status?.phase, v.status?.reason]) })).toBe(1);
    expect([...onA, ...onB][0]!.status?.phase).toBe('PHASE_RUNNING');
    expect((await qemuPidsOf(['crossing'])).length).toBe(1);
  });

  it('kill -9 of the source daemon in the middle: the restarted source rolls back, the guest runs on the source only', async () => {
    await rpc(nodes.a.daemon.clients).create(counterVm('homing', '10.98.0.13'), true);
    await migrations(nodes.a).migrate('homing', nodes.b.address, { maxBandwidthBytesPerSecond: 16 * 1024 * 1024 });
    await nodes.a.daemon.kill9();
    await nodes.a.daemon.restart();
    const a = rpc(nodes.a.daemon.clients);
    const m = await migrations(nodes.a).get('homing');
    expect(m.phase).toBe('MIGRATION_PHASE_FAILED');
    expect(m.reason).toContain('restart');
    expect((await a.get('homing')).status?.phase).toBe('PHASE_RUNNING');
    // The target is told to discard its half in the background, without holding up the source's start.
    const b = rpc(nodes.b.daemon.clients);
    await until('the target discarding its half', async () => ((await b.list()).length === 0 ? true : undefined));
    expect((await qemuPidsOf(['homing'])).length).toBe(1);
    // Still controllable, and its counter goes on.
    const log = join(nodes.a.daemon.stateDir, 'vms', 'homing', 'console.log');
    const n = lastCount(await readFile(log, 'utf8'))?.i ?? 0;
    await waitForFileText(log, (t) => (lastCount(t)?.i ?? 0) > n + 3, 30_000);
    expect((await a.pause('homing')).status?.phase).toBe('PHASE_PAUSED');
  });

  it('a target without the bridge refuses before anything starts', async () => {
    const other = await TwoNodes.start({ bridgeOnB: false });
    try {
      const a = rpc(other.a.daemon.clients);
      await a.create(guestSpec('homebody', { nics: [{ name: 'eth0', bridge: 'br0', mac: '' }] }), true);
      const details = await expectCode(() => migrations(other.a).migrate('homebody', other.b.address), status.FAILED_PRECONDITION);
      expect(details).toContain('br0');
      expect((await a.get('homebody')).status?.phase).toBe('PHASE_RUNNING');
      expect(await rpc(other.b.daemon.clients).list()).toEqual([]);
      await a.delete('homebody', true);
    } finally {
      await other.cleanup();
    }
  });
});
