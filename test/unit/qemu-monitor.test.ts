import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { VmletError } from '../../src/model/errors.js';
import type { NicStatus } from '../../src/model/vm.js';
import { nicDeviceProps, tapNetdevProps } from '../../src/qemu/argv.js';
import { isGone, QemuMonitor, QmpEvents } from '../../src/qemu/monitor.js';
import { QmpClient, QmpError, type QmpEvent } from '../../src/qemu/qmp.js';
import { FakeQmpServer, type FakeQmpCommand, type FakeQmpHandler, type FakeQmpReply } from '../support/fake-qmp-server.js';

// A broken monitor should fail fast here, not hang until the 120 s suite default.
vi.setConfig({ testTimeout: 10_000 });

let server: FakeQmpServer;
let monitor: QemuMonitor;

/** Every command answered {"return": {}}, like QEMU's commands without a result. */
const answerEmpty: FakeQmpHandler = () => ({ return: {} });

beforeEach(async () => {
  server = await FakeQmpServer.start({ handler: answerEmpty });
  monitor = new QemuMonitor(await QmpClient.connect(server.path, { commandTimeoutMs: 3000 }));
});

afterEach(async () => {
  monitor.close();
  await server.stop();
});

/** The commands the monitor sent, without the handshake, as {execute, arguments?}. */
function sent(): Omit<FakeQmpCommand, 'id'>[] {
  return server.received
    .map(({ cmd }) => cmd)
    .filter((cmd) => cmd.execute !== 'qmp_capabilities')
    .map(({ execute, ...rest }) => ('arguments' in rest ? { execute, arguments: rest.arguments } : { execute }));
}

/** The rejection of a promise, asserted to be a VmletError. */
async function rejection(promise: Promise<unknown>): Promise<VmletError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(VmletError);
  return err as VmletError;
}

/** How long the fake guest or job takes to finish what a command started: long enough for a premature next command to arrive first. */
const GUEST_MS = 30;

const error = (cls: string, desc: string): FakeQmpReply => ({ error: { class: cls, desc } });

/** Answers the command, then sends the event: a job or an unplug that QEMU finishes later. */
const thenEvent =
  (name: string, data: Record<string, unknown>, reply: FakeQmpReply = { return: {} }): FakeQmpHandler =>
  (cmd, conn) => {
    void conn.reply(cmd, reply).then(() => conn.event(name, data));
    return undefined;
  };

const nic: NicStatus = { name: 'eth1', tap: 'vm1-eth1', mac: '52:54:00:12:34:56', bridge: 'br0', port: 1 };
const NETDEV_ARGS = { type: 'tap', id: 'net-eth1', ifname: 'vm1-eth1', script: 'no', downscript: 'no', vhost: true, queues: 2 };
const DEVICE_ARGS = { driver: 'virtio-net-pci', netdev: 'net-eth1', id: 'nic-eth1', mac: '52:54:00:12:34:56', mq: true, vectors: 6, bus: 'hotplug-1' };
const NBD_NODE_ARGS = { driver: 'nbd', 'node-name': 'mig-root', server: { type: 'inet', host: '10.0.0.2', port: '10809' }, export: 'root' };
const MIRROR_ARGS = { 'job-id': 'mig-root', device: 'drive-root', target: 'mig-root', sync: 'top', 'copy-mode': 'write-blocking' };
const NBD = { host: '10.0.0.2', port: 10809, exportName: 'root' };

describe('one method per command', () => {
  // The arguments are those vmlet's call sites sent as strings before QemuMonitor.
  it.each<[string, (m: QemuMonitor) => Promise<unknown>, string, unknown?]>([
    ['cont', (m) => m.cont(), 'cont'],
    ['stop', (m) => m.stop(), 'stop'],
    ['systemPowerdown', (m) => m.systemPowerdown(1000), 'system_powerdown'],
    ['systemReset', (m) => m.systemReset(), 'system_reset'],
    ['quit', (m) => m.quit(), 'quit'],
    ['queryStatus', (m) => m.queryStatus(), 'query-status'],
    ['netdevAdd', (m) => m.netdevAdd({ type: 'tap', ...tapNetdevProps(nic, 2, true) }), 'netdev_add', NETDEV_ARGS],
    ['netdevDel', (m) => m.netdevDel('net-eth1'), 'netdev_del', { id: 'net-eth1' }],
    ['deviceAdd', (m) => m.deviceAdd({ driver: 'virtio-net-pci', ...nicDeviceProps(nic, 2, 'hotplug-1') }), 'device_add', DEVICE_ARGS],
    ['deviceDel', (m) => m.deviceDel('nic-eth1'), 'device_del', { id: 'nic-eth1' }],
    [
      'blockdevAdd',
      (m) => m.blockdevAdd({ driver: 'nbd', 'node-name': 'mig-root', server: { type: 'inet', host: '10.0.0.2', port: '10809' }, export: 'root' }),
      'blockdev-add',
      NBD_NODE_ARGS,
    ],
    ['blockdevDel', (m) => m.blockdevDel('mig-root'), 'blockdev-del', { 'node-name': 'mig-root' }],
    [
      'blockdevMirror',
      (m) => m.blockdevMirror({ 'job-id': 'mig-root', device: 'drive-root', target: 'mig-root', sync: 'top', 'copy-mode': 'write-blocking' }),
      'blockdev-mirror',
      MIRROR_ARGS,
    ],
    ['blockJobCancel', (m) => m.blockJobCancel('mig-root'), 'block-job-cancel', { device: 'mig-root' }],
    ['blockJobCancel forced', (m) => m.blockJobCancel('mig-root', true), 'block-job-cancel', { device: 'mig-root', force: true }],
    [
      'migrateSetCapabilities',
      (m) => m.migrateSetCapabilities({ events: true, 'pause-before-switchover': false, 'auto-converge': true, 'postcopy-ram': false }),
      'migrate-set-capabilities',
      {
        capabilities: [
          { capability: 'events', state: true },
          { capability: 'pause-before-switchover', state: false },
          { capability: 'auto-converge', state: true },
          { capability: 'postcopy-ram', state: false },
        ],
      },
    ],
    [
      'migrateSetParameters',
      (m) => m.migrateSetParameters({ 'max-bandwidth': 100_000_000, 'downtime-limit': 300 }),
      'migrate-set-parameters',
      { 'max-bandwidth': 100_000_000, 'downtime-limit': 300 },
    ],
    ['migrateSetParameters, none', (m) => m.migrateSetParameters({}), 'migrate-set-parameters', {}],
    ['migrate', (m) => m.migrate('tcp:10.0.0.2:4444'), 'migrate', { uri: 'tcp:10.0.0.2:4444' }],
    ['migrateIncoming', (m) => m.migrateIncoming('tcp:[fd00::2]:4444'), 'migrate-incoming', { uri: 'tcp:[fd00::2]:4444' }],
    ['migrateContinue', (m) => m.migrateContinue('pre-switchover'), 'migrate-continue', { state: 'pre-switchover' }],
    ['migrateStartPostcopy', (m) => m.migrateStartPostcopy(), 'migrate-start-postcopy'],
    ['migrateCancel', (m) => m.migrateCancel(), 'migrate_cancel'],
    ['queryMigrate', (m) => m.queryMigrate(), 'query-migrate'],
    ['nbdServerStart', (m) => m.nbdServerStart('10.0.0.2', 10809), 'nbd-server-start', { addr: { type: 'inet', data: { host: '10.0.0.2', port: '10809' } } }],
    ['nbdServerStop', (m) => m.nbdServerStop(), 'nbd-server-stop'],
    [
      'blockExportAdd',
      (m) => m.blockExportAdd({ type: 'nbd', id: 'mig-root', 'node-name': 'drive-root', name: 'root', writable: true }),
      'block-export-add',
      { type: 'nbd', id: 'mig-root', 'node-name': 'drive-root', name: 'root', writable: true },
    ],
    ['queryCpusFast', (m) => m.queryCpusFast(1000), 'query-cpus-fast'],
    ['queryBlockstats', (m) => m.queryBlockstats(1000), 'query-blockstats'],
    ['queryBalloon', (m) => m.queryBalloon(1000), 'query-balloon'],
  ])('%s sends exactly its command and arguments', async (_name, call, execute, args) => {
    await call(monitor);
    expect(sent()).toEqual([args === undefined ? { execute } : { execute, arguments: args }]);
  });

  it.each<[string, (m: QemuMonitor) => Promise<unknown>]>([
    ['systemPowerdown', (m) => m.systemPowerdown(50)],
    ['quit', (m) => m.quit(50)],
    ['queryCpusFast', (m) => m.queryCpusFast(50)],
    ['queryBlockstats', (m) => m.queryBlockstats(50)],
    ['queryBalloon', (m) => m.queryBalloon(50)],
  ])('%s passes its own timeout', async (_name, call) => {
    server.handler = () => undefined;
    const err = await rejection(call(monitor));
    expect(err.code).toBe('DEADLINE_EXCEEDED');
    expect(err.message).toContain('50ms');
  });
});

describe('typed results', () => {
  it('parses what the queries return', async () => {
    const status = { status: 'running', running: true, singlestep: false };
    const migrate = { status: 'active', ram: { total: 1024, transferred: 512, remaining: 512 }, 'total-time': 40 };
    const cpus = [
      { 'cpu-index': 0, 'thread-id': 101, 'qom-path': '/machine/unattached/device[0]', target: 'x86_64' },
      { 'cpu-index': 1, 'thread-id': 102, 'qom-path': '/machine/unattached/device[1]', target: 'x86_64' },
    ];
    const blockstats = [{ device: '', 'node-name': 'drive-root', qdev: '/machine/peripheral/disk-root/virtio-backend', stats: { rd_bytes: 4096, wr_bytes: 1024 } }];
    server
      .handle('query-status', { return: status })
      .handle('query-migrate', { return: migrate })
      .handle('query-cpus-fast', { return: cpus })
      .handle('query-blockstats', { return: blockstats })
      .handle('query-balloon', { return: { actual: 134_217_728 } });

    const s = await monitor.queryStatus();
    expect(s.status).toBe('running');
    expect(s.running).toBe(true);
    const m = await monitor.queryMigrate();
    expect(m.status).toBe('active');
    expect(m.ram?.remaining).toBe(512);
    expect(m['total-time']).toBe(40);
    expect((await monitor.queryCpusFast()).map((c) => [c['cpu-index'], c['thread-id']])).toEqual([
      [0, 101],
      [1, 102],
    ]);
    const [drive] = await monitor.queryBlockstats();
    expect(drive?.['node-name']).toBe('drive-root');
    expect(drive?.stats?.rd_bytes).toBe(4096);
    expect((await monitor.queryBalloon()).actual).toBe(134_217_728);
  });

  it('commands without a result resolve with nothing', async () => {
    await expect(monitor.cont()).resolves.toBeUndefined();
  });
});

describe('error classes → codes', () => {
  it.each([
    ['CommandNotFound', 'The command migrate-pause has not been found', 'UNIMPLEMENTED'],
    ['DeviceNotFound', "Device 'nic-eth9' not found", 'NOT_FOUND'],
    ['DeviceNotActive', 'No balloon device has been activated', 'FAILED_PRECONDITION'],
    ['GenericError', "Duplicate nodes with node-name='mig-root'", 'FAILED_PRECONDITION'],
    ['KVMMissingCap', 'Using KVM without synic, cannot use hv-synic', 'FAILED_PRECONDITION'],
    ['SomeFutureClass', 'something new', 'FAILED_PRECONDITION'],
  ])('%s is %s', async (cls, desc, code) => {
    server.handle('device_del', error(cls, desc));
    const err = await rejection(monitor.deviceDel('nic-eth9'));
    expect(err).toBeInstanceOf(QmpError);
    expect(err.code).toBe(code);
    expect((err as QmpError).qmpClass).toBe(cls);
    expect((err as QmpError).desc).toBe(desc);
    expect(err.message).toBe(`QMP device_del failed: ${cls}: ${desc}`);
  });

  it('keeps DeviceNotActive recognisable for callers (a VM without a balloon)', async () => {
    server.handle('query-balloon', error('DeviceNotActive', 'No balloon device has been activated'));
    const err = (await rejection(monitor.queryBalloon())) as QmpError;
    expect(err.qmpClass).toBe('DeviceNotActive');
  });

  it('leaves connection loss UNAVAILABLE', async () => {
    server.handler = () => undefined;
    const pending = monitor.stop();
    (await server.waitForConnection()).close();
    expect((await rejection(pending)).code).toBe('UNAVAILABLE');
    expect(monitor.closed).toBe(true);
    expect((await rejection(monitor.cont())).code).toBe('UNAVAILABLE');
  });

  it.each<[string, QmpError, boolean]>([
    ['a missing device or netdev', new QmpError('NOT_FOUND', 'x', { qmpClass: 'DeviceNotFound', desc: "Device 'nic-a' not found" }), true],
    ['a missing block job', new QmpError('FAILED_PRECONDITION', 'x', { qmpClass: 'DeviceNotActive', desc: "Block job 'mig-a' not found" }), true],
    ['a missing node', new QmpError('FAILED_PRECONDITION', 'x', { qmpClass: 'GenericError', desc: "Failed to find node with node-name='mig-a'" }), true],
    ['no balloon', new QmpError('FAILED_PRECONDITION', 'x', { qmpClass: 'DeviceNotActive', desc: 'No balloon device has been activated' }), false],
    ['a busy node', new QmpError('FAILED_PRECONDITION', 'x', { qmpClass: 'GenericError', desc: "Node 'mig-a' is busy: block device is in use by block job: mirror" }), false],
    ['a lost connection', new QmpError('UNAVAILABLE', 'closed'), false],
  ])('isGone: %s → %s', (_what, err, gone) => {
    expect(isGone(err)).toBe(gone);
  });
});

describe('events', () => {
  it('passes QMP events and the close through', async () => {
    const seen: string[] = [];
    const closes: (Error | undefined)[] = [];
    monitor.on('event', (e: QmpEvent) => seen.push(e.event)).on('close', (reason) => closes.push(reason));
    const conn = await server.waitForConnection();
    const resumed = monitor.waitForEvent(QmpEvents.RESUME);
    await conn.event('STOP');
    await conn.event('RESUME');
    await resumed;
    expect(seen).toEqual(['STOP', 'RESUME']);
    expect(monitor.events).toBe(monitor.qmp);
    monitor.close();
    expect(monitor.closed).toBe(true);
    expect(closes).toEqual([undefined]);
  });

  it('waits for the first of several events', async () => {
    const conn = await server.waitForConnection();
    const ended = monitor.waitForEvent([QmpEvents.BLOCK_JOB_COMPLETED, QmpEvents.BLOCK_JOB_CANCELLED], { predicate: (e) => e.data.device === 'mig-b' });
    await conn.event('BLOCK_JOB_CANCELLED', { device: 'mig-a' });
    await conn.event('BLOCK_JOB_CANCELLED', { device: 'mig-b' });
    await expect(ended).resolves.toMatchObject({ event: 'BLOCK_JOB_CANCELLED', data: { device: 'mig-b' } });
  });
});

describe('hotplugNic', () => {
  it('adds the tap netdev, then the device on the hotplug port', async () => {
    await monitor.hotplugNic(nic, { port: 1, vcpus: 2, vhostNet: true });
    expect(sent()).toEqual([
      { execute: 'netdev_add', arguments: NETDEV_ARGS },
      { execute: 'device_add', arguments: DEVICE_ARGS },
    ]);
  });

  it('removes the netdev again when the device cannot be added, and fails with the device error', async () => {
    server.handle('device_add', error('GenericError', "Bus 'hotplug-1' does not support hotplugging"));
    server.handle('netdev_del', error('GenericError', 'even the undo fails'));
    const err = (await rejection(monitor.hotplugNic(nic, { port: 1, vcpus: 2, vhostNet: true }))) as QmpError;
    expect(err.code).toBe('FAILED_PRECONDITION');
    expect(err.desc).toBe("Bus 'hotplug-1' does not support hotplugging");
    expect(sent().map((c) => c.execute)).toEqual(['netdev_add', 'device_add', 'netdev_del']);
    expect(sent()[2]).toEqual({ execute: 'netdev_del', arguments: { id: 'net-eth1' } });
  });

  it('adds nothing else when the netdev cannot be added', async () => {
    server.handle('netdev_add', error('GenericError', 'could not open /dev/net/tun'));
    await rejection(monitor.hotplugNic(nic, { port: 1, vcpus: 1, vhostNet: false }));
    expect(sent()).toEqual([{ execute: 'netdev_add', arguments: { type: 'tap', id: 'net-eth1', ifname: 'vm1-eth1', script: 'no', downscript: 'no', vhost: false } }]);
  });
});

describe('unplugNic', () => {
  it('deletes the device, waits for the guest to release it, then deletes the netdev', async () => {
    let released = false;
    server.handle('device_del', (cmd, conn) => {
      void conn
        .reply(cmd, { return: {} })
        .then(() => conn.event('DEVICE_DELETED', { device: 'nic-other', path: '/machine/peripheral/nic-other' }))
        .then(() => delay(GUEST_MS))
        .then(() => (released = true))
        .then(() => conn.event('DEVICE_DELETED', { device: 'nic-eth1', path: '/machine/peripheral/nic-eth1' }));
      return undefined;
    });
    server.handle('netdev_del', () => (released ? { return: {} } : error('GenericError', 'netdev_del before the guest released the device')));
    await monitor.unplugNic('eth1');
    expect(sent()).toEqual([
      { execute: 'device_del', arguments: { id: 'nic-eth1' } },
      { execute: 'netdev_del', arguments: { id: 'net-eth1' } },
    ]);
  });

  it('counts a device and netdev that are already gone as unplugged', async () => {
    server.handle('device_del', error('DeviceNotFound', "Device 'nic-eth1' not found"));
    server.handle('netdev_del', error('DeviceNotFound', "Device 'net-eth1' not found"));
    await monitor.unplugNic('eth1');
    expect(sent().map((c) => c.execute)).toEqual(['device_del', 'netdev_del']);
  });

  it('fails with DEADLINE_EXCEEDED, and keeps the netdev, when the guest does not release the NIC', async () => {
    const err = await rejection(monitor.unplugNic('eth1', 50));
    expect(err.code).toBe('DEADLINE_EXCEEDED');
    expect(err.message).toMatch(/did not release NIC eth1/);
    expect(sent().map((c) => c.execute)).toEqual(['device_del']);
  });

  it('fails with the device_del error for anything but a missing device', async () => {
    server.handle('device_del', error('GenericError', 'Bus does not support hot-unplug'));
    const err = await rejection(monitor.unplugNic('eth1'));
    expect(err.code).toBe('FAILED_PRECONDITION');
    expect(sent().map((c) => c.execute)).toEqual(['device_del']);
  });
});

describe('mirrorDiskTo', () => {
  it('adds the NBD node and starts the mirror with the ids of ids.ts, resolving when READY', async () => {
    server.handle('blockdev-mirror', thenEvent('BLOCK_JOB_READY', { device: 'mig-root', type: 'mirror', len: 0, offset: 0, speed: 0 }));
    await monitor.mirrorDiskTo('root', NBD);
    expect(sent()).toEqual([
      { execute: 'blockdev-add', arguments: NBD_NODE_ARGS },
      { execute: 'blockdev-mirror', arguments: MIRROR_ARGS },
    ]);
  });

  it('mirrors the EFI variables store from its flash node, as efi_vars', async () => {
    server.handle('blockdev-mirror', thenEvent('BLOCK_JOB_READY', { device: 'mig-efi_vars', type: 'mirror', len: 0, offset: 0, speed: 0 }));
    await monitor.mirrorDiskTo('efi_vars', { ...NBD, exportName: 'efi_vars' });
    const mirror = sent().find((c) => c.execute === 'blockdev-mirror');
    expect(mirror?.arguments).toMatchObject({ 'job-id': 'mig-efi_vars', device: 'fw-vars', target: 'mig-efi_vars' });
  });

  it('does not miss a READY that comes before the reply', async () => {
    server.handle('blockdev-mirror', (cmd, conn) => {
      void conn.event('BLOCK_JOB_READY', { device: 'mig-root' }).then(() => conn.reply(cmd, { return: {} }));
      return undefined;
    });
    await monitor.mirrorDiskTo('root', NBD);
  });

  it('removes the node again when the mirror cannot start, and fails with the mirror error', async () => {
    server
      .handle('blockdev-mirror', error('GenericError', "Permission conflict on node 'drive-root'"))
      .handle('block-job-cancel', error('DeviceNotActive', "Block job 'mig-root' not found"));
    const err = (await rejection(monitor.mirrorDiskTo('root', NBD))) as QmpError;
    expect(err.desc).toBe("Permission conflict on node 'drive-root'");
    expect(sent()).toEqual([
      { execute: 'blockdev-add', arguments: NBD_NODE_ARGS },
      { execute: 'blockdev-mirror', arguments: MIRROR_ARGS },
      { execute: 'block-job-cancel', arguments: { device: 'mig-root', force: true } },
      { execute: 'blockdev-del', arguments: { 'node-name': 'mig-root' } },
    ]);
  });

  it('fails with ABORTED and cleans up when the job ends before it is ready', async () => {
    server
      .handle('blockdev-mirror', thenEvent('BLOCK_JOB_COMPLETED', { device: 'mig-root', error: 'Input/output error' }))
      .handle('block-job-cancel', error('DeviceNotActive', "Block job 'mig-root' not found"));
    const err = await rejection(monitor.mirrorDiskTo('root', NBD));
    expect(err.code).toBe('ABORTED');
    expect(err.message).toContain('Input/output error');
    expect(sent().map((c) => c.execute)).toEqual(['blockdev-add', 'blockdev-mirror', 'block-job-cancel', 'blockdev-del']);
  });

  it('gives up on abort with the signal reason, cancelling the job and removing the node', async () => {
    const abort = new AbortController();
    server.handle('blockdev-mirror', (cmd, conn) => {
      void conn.reply(cmd, { return: {} }).then(() => abort.abort(new VmletError('CANCELLED', 'cancelled by request')));
      return undefined;
    });
    server.handle('block-job-cancel', thenEvent('BLOCK_JOB_CANCELLED', { device: 'mig-root' }));
    const err = await rejection(monitor.mirrorDiskTo('root', NBD, { signal: abort.signal }));
    expect(err.code).toBe('CANCELLED');
    expect(sent().map((c) => c.execute)).toEqual(['blockdev-add', 'blockdev-mirror', 'block-job-cancel', 'blockdev-del']);
  });

  it('sends nothing after a failed blockdev-add', async () => {
    server.handle('blockdev-add', error('GenericError', 'Failed to connect to 10.0.0.2:10809'));
    await rejection(monitor.mirrorDiskTo('root', NBD));
    expect(sent().map((c) => c.execute)).toEqual(['blockdev-add']);
  });

  it('fails with DEADLINE_EXCEEDED when the mirror never gets ready', async () => {
    server.handle('block-job-cancel', thenEvent('BLOCK_JOB_CANCELLED', { device: 'mig-root' }));
    const err = await rejection(monitor.mirrorDiskTo('root', NBD, { readyTimeoutMs: 50 }));
    expect(err.code).toBe('DEADLINE_EXCEEDED');
    expect(err.message).toBe('the mirror of disk root did not catch up within 0.05 s');
    expect(sent().map((c) => c.execute)).toEqual(['blockdev-add', 'blockdev-mirror', 'block-job-cancel', 'blockdev-del']);
  });
});

describe('finishMirror', () => {
  it('completes the READY mirror without pivoting, then removes the node', async () => {
    server.handle('block-job-cancel', thenEvent('BLOCK_JOB_COMPLETED', { device: 'mig-root', type: 'mirror', len: 1, offset: 1, speed: 0 }));
    await monitor.finishMirror('root');
    expect(sent()).toEqual([
      { execute: 'block-job-cancel', arguments: { device: 'mig-root' } },
      { execute: 'blockdev-del', arguments: { 'node-name': 'mig-root' } },
    ]);
  });

  it('fails with ABORTED, keeping the node, when the job completed with an error', async () => {
    server.handle('block-job-cancel', thenEvent('BLOCK_JOB_COMPLETED', { device: 'mig-root', error: 'No space left on device' }));
    const err = await rejection(monitor.finishMirror('root'));
    expect(err.code).toBe('ABORTED');
    expect(err.message).toContain('No space left on device');
    expect(sent().map((c) => c.execute)).toEqual(['block-job-cancel']);
  });

  it('fails with DEADLINE_EXCEEDED when the job does not end in time', async () => {
    const err = await rejection(monitor.finishMirror('root', 50));
    expect(err.code).toBe('DEADLINE_EXCEEDED');
    expect(err.message).toBe('the mirror of disk root did not complete within 0.05 s');
    expect(sent().map((c) => c.execute)).toEqual(['block-job-cancel']);
  });

  it('fails with the cancel error when there is no such job', async () => {
    server.handle('block-job-cancel', error('DeviceNotActive', "Block job 'mig-root' not found"));
    const err = (await rejection(monitor.finishMirror('root'))) as QmpError;
    expect(err.code).toBe('FAILED_PRECONDITION');
    expect(sent().map((c) => c.execute)).toEqual(['block-job-cancel']);
  });
});

describe('abandonMirror', () => {
  it('force-cancels the job and deletes the node only once the job ended', async () => {
    let jobEnded = false;
    server.handle('block-job-cancel', (cmd, conn) => {
      void conn
        .reply(cmd, { return: {} })
        .then(() => delay(GUEST_MS))
        .then(() => (jobEnded = true))
        .then(() => conn.event('BLOCK_JOB_CANCELLED', { device: 'mig-root' }));
      return undefined;
    });
    server.handle('blockdev-del', () => (jobEnded ? { return: {} } : error('GenericError', "Node 'mig-root' is busy")));
    await monitor.abandonMirror('root');
    expect(sent()).toEqual([
      { execute: 'block-job-cancel', arguments: { device: 'mig-root', force: true } },
      { execute: 'blockdev-del', arguments: { 'node-name': 'mig-root' } },
    ]);
  });

  it('ignores a job and a node that are already gone', async () => {
    server
      .handle('block-job-cancel', error('DeviceNotActive', "Block job 'mig-root' not found"))
      .handle('blockdev-del', error('GenericError', "Failed to find node with node-name='mig-root'"));
    await monitor.abandonMirror('root');
    expect(sent().map((c) => c.execute)).toEqual(['block-job-cancel', 'blockdev-del']);
  });

  it('still deletes the node when the cancel fails otherwise, then throws that failure', async () => {
    server.handle('block-job-cancel', error('GenericError', 'Job is not in a state to be cancelled'));
    const err = (await rejection(monitor.abandonMirror('root'))) as QmpError;
    expect(err.desc).toBe('Job is not in a state to be cancelled');
    expect(sent().map((c) => c.execute)).toEqual(['block-job-cancel', 'blockdev-del']);
  });

  it('throws when the node cannot be deleted', async () => {
    server.handle('block-job-cancel', error('DeviceNotActive', "Block job 'mig-root' not found"));
    server.handle('blockdev-del', error('GenericError', "Node 'mig-root' is busy"));
    const err = (await rejection(monitor.abandonMirror('root'))) as QmpError;
    expect(err.desc).toBe("Node 'mig-root' is busy");
  });
});

describe('exportDisk', () => {
  it('exports the disk node, writable, under the disk name', async () => {
    await expect(monitor.exportDisk('root')).resolves.toBe('root');
    expect(sent()).toEqual([{ execute: 'block-export-add', arguments: { type: 'nbd', id: 'mig-root', 'node-name': 'drive-root', name: 'root', writable: true } }]);
  });

  it('exports the EFI variables store flash node under efi_vars', async () => {
    await expect(monitor.exportDisk('efi_vars')).resolves.toBe('efi_vars');
    expect(sent()).toEqual([{ execute: 'block-export-add', arguments: { type: 'nbd', id: 'mig-efi_vars', 'node-name': 'fw-vars', name: 'efi_vars', writable: true } }]);
  });
});
