import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { chmod, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { TestDaemon, tempDirForQemu } from '../support/daemon.js';
import { guestSpec, READY_LINE, waitForFileText } from '../support/guest.js';
import { expectCode, rpc } from '../support/rpc.js';
import { TestNetns } from '../support/netns.js';
import { until } from '../support/poll.js';
import { isVmletTapName } from '../../src/net/names.js';
import { isAlive } from '../../src/host/process.js';
import { qemuPidsOf } from '../support/processes.js';

const cmdline = (ipCidr: string, run?: string) => `console=ttyS0 panic=-1 vmlet.ip=${ipCidr}${run ? ` vmlet.run="${run}"` : ''}`;


describe('guest networking: TAPs on a bridge inside a test network namespace', () => {
  let ns: TestNetns;
  let d: TestDaemon;
  let api: ReturnType<typeof rpc>;

  beforeAll(async () => {
    ns = await TestNetns.create();
    await ns.addBridge('br0', '10.88.0.1/24');
    await ns.addBridge('br9');
    await ns.exec('ip', ['link', 'set', 'dev', 'br9', 'mtu', '1400']);
    d = await TestDaemon.start({ extraArgs: ['--netns', ns.name] });
    api = rpc(d.clients);
  });
  afterAll(async () => {
    await d?.cleanup();
    await ns?.delete();
  });

  it('two VMs on one bridge ping each other; TAPs are on the bridge with its MTU; stop removes them', async () => {
    const a = await api.create(guestSpec('net-a', { nics: [{ name: 'eth0', bridge: 'br0', mac: '' }], kernel: { ...guestSpec('x').kernel!, cmdline: cmdline('10.88.0.2/24') } }), true);
    const b = await api.create(
      guestSpec('net-b', { nics: [{ name: 'eth0', bridge: 'br0', mac: '02:00:00:00:88:03' }], kernel: { ...guestSpec('x').kernel!, cmdline: cmdline('10.88.0.3/24', 'ping -c 3 -w 60 10.88.0.2') } }),
      true,
    );
    const tapA = a.status!.nics[0]!;
    const tapB = b.status!.nics[0]!;
    expect(isVmletTapName(tapA.tap)).toBe(true);
    expect(tapA.mac).toMatch(/^02:/);
    expect(tapB.mac).toBe('02:00:00:00:88:03');
    const links = await ns.links();
    expect(links.find((l) => l.ifname === tapA.tap)?.master).toBe('br0');
    expect(links.find((l) => l.ifname === tapB.tap)?.master).toBe('br0');

    // b pings a from inside the guest; the result is read from b's console.
    const console = await waitForFileText(join(d.stateDir, 'vms', 'net-b', 'console.log'), /3 packets received/, 90_000);
    expect(console).toMatch(/0% packet loss/);
    // and the namespace (the "host") reaches a too.
    await ns.exec('ping', ['-c', '1', '-W', '5', '10.88.0.2']);

    await api.stop('net-a', 0, true);
    expect(await ns.linkNames()).not.toContain(tapA.tap);
    await api.delete('net-b', true);
    expect(await ns.linkNames()).not.toContain(tapB.tap);
    await api.delete('net-a');
  });

  it('multi-queue TAP with the bridge MTU for a 2-vCPU VM', async () => {
    const vm = await api.create(guestSpec('mq', { vcpus: 2, nics: [{ name: 'eth0', bridge: 'br9', mac: '' }] }), true);
    const tap = vm.status!.nics[0]!.tap;
    const link = (await ns.links()).find((l) => l.ifname === tap)!;
    expect(link.mtu).toBe(1400);
    const details = execFileSync('ip', ['-n', ns.name, '-details', 'link', 'show', 'dev', tap]).toString();
    expect(details).toContain('multi_queue');
    await api.delete('mq', true);
  });

  it('e1000e and vmxnet3 NICs: at start on a multi-queue TAP, hotplugged and unplugged on a running guest', async () => {
    const id = 'models';
    const vm = await api.create(guestSpec(id, { vcpus: 2, nics: [{ name: 'eth0', bridge: 'br0', mac: '', model: 'NIC_MODEL_E1000E' }] }), true);
    expect(vm.spec!.nics[0]!.model).toBe('NIC_MODEL_E1000E');
    const argv = readFileSync(`/proc/${vm.status!.pid}/cmdline`, 'utf8').split('\0');
    expect(argv.filter((a) => a.includes('"id":"nic-eth0"')).map((a) => (JSON.parse(a) as { driver: string }).driver)).toEqual(['e1000e']);
    await waitForFileText(join(d.stateDir, 'vms', id, 'console.log'), READY_LINE);
    const attached = await api.attachNic(id, { name: 'eth1', bridge: 'br0', mac: '', model: 'NIC_MODEL_VMXNET3' });
    expect(attached.spec!.nics.map((n) => [n.name, n.model])).toEqual([['eth0', 'NIC_MODEL_E1000E'], ['eth1', 'NIC_MODEL_VMXNET3']]);
    const tap = attached.status!.nics.find((n) => n.name === 'eth1')!.tap;
    expect((await ns.links()).find((l) => l.ifname === tap)?.master).toBe('br0');
    const detached = await api.detachNic(id, 'eth1');
    expect(detached.spec!.nics.map((n) => n.name)).toEqual(['eth0']);
    expect(await ns.linkNames()).not.toContain(tap);
    await api.delete(id, true);
  });

  it('refuses a missing bridge, a bad MAC and a duplicate MAC with the right codes, leaving nothing', async () => {
    const before = await ns.linkNames();
    expect(await expectCode(() => api.create(guestSpec('nb', { nics: [{ name: 'eth0', bridge: 'nope0', mac: '' }] })), status.FAILED_PRECONDITION)).toContain('nope0');
    expect(await expectCode(() => api.create(guestSpec('bm', { nics: [{ name: 'eth0', bridge: 'br0', mac: '03:00:00:00:00:01' }] })), status.INVALID_ARGUMENT)).toMatch(/^spec\.nics\[0\]\.mac/);
    await api.create(guestSpec('m1', { nics: [{ name: 'eth0', bridge: 'br0', mac: '02:aa:00:00:00:01' }] }));
    expect(await expectCode(() => api.create(guestSpec('m2', { nics: [{ name: 'eth0', bridge: 'br0', mac: '02:AA:00:00:00:01' }] })), status.ALREADY_EXISTS)).toContain('m1');
    await api.delete('m1');
    expect((await api.list()).map((v) => v.spec?.id)).toEqual([]);
    expect(await ns.linkNames()).toEqual(before);
  });

  it('hot-plugs a NIC into a running guest (seen inside it) and unplugs it again; the change survives restarts', async () => {
    const watchScript = 'until [ -e /sys/class/net/eth1 ]; do usleep 200000; done; echo HOTPLUG-SEEN-$(cat /sys/class/net/eth1/address); until [ ! -e /sys/class/net/eth1 ]; do usleep 200000; done; echo UNPLUG-SEEN';
    const id = 'hot';
    await api.create(guestSpec(id, { nics: [{ name: 'eth0', bridge: 'br0', mac: '' }], kernel: { ...guestSpec('x').kernel!, cmdline: cmdline('10.88.0.5/24', watchScript) } }), true);
    const log = join(d.stateDir, 'vms', id, 'console.log');
    await waitForFileText(log, READY_LINE);
    const attached = await api.attachNic(id, { name: 'eth1', bridge: 'br0', mac: '02:00:00:00:99:01' });
    const nic = attached.status!.nics.find((n) => n.name === 'eth1')!;
    expect(attached.spec!.nics.map((n) => n.name)).toEqual(['eth0', 'eth1']);
    expect((await ns.links()).find((l) => l.ifname === nic.tap)?.master).toBe('br0');
    await waitForFileText(log, 'HOTPLUG-SEEN-02:00:00:00:99:01');

    // Persisted: after a daemon restart the NIC is still in the spec and status.
    await d.kill9();
    await d.restart();
    const after = await rpc(d.clients).get(id);
    expect(after.status!.nics.map((n) => n.name)).toEqual(['eth0', 'eth1']);

    const api2 = rpc(d.clients);
    expect(await expectCode(() => api2.attachNic(id, { name: 'eth1', bridge: 'br0', mac: '' }), status.ALREADY_EXISTS)).toContain('eth1');
    const detached = await api2.detachNic(id, 'eth1');
    expect(detached.spec!.nics.map((n) => n.name)).toEqual(['eth0']);
    await waitForFileText(log, 'UNPLUG-SEEN');
    expect(await ns.linkNames()).not.toContain(nic.tap);
    expect(await expectCode(() => api2.detachNic(id, 'eth1'), status.NOT_FOUND)).toContain('eth1');
    await rpc(d.clients).delete(id, true);
  });
});

describe('networking failures leave nothing behind', () => {
  let ns: TestNetns;
  let fakeDir: string;

  beforeAll(async () => {
    ns = await TestNetns.create();
    await ns.addBridge('br0');
    fakeDir = await tempDirForQemu('vmlet-fakes-');
  });
  afterAll(async () => {
    await ns?.delete();
    await rm(fakeDir, { recursive: true, force: true });
  });

  it('--bridge creates a missing bridge; --allowed-bridge refuses NICs on any other', async () => {
    const d = await TestDaemon.start({ extraArgs: ['--netns', ns.name, '--bridge', 'brown0', '--allowed-bridge', 'brown0'] });
    try {
      const link = (await ns.links()).find((l) => l.ifname === 'brown0');
      expect(link?.linkinfo?.info_kind).toBe('bridge');
      const api = rpc(d.clients);
      const details = await expectCode(() => api.create(guestSpec('fenced', { nics: [{ name: 'eth0', bridge: 'br0', mac: '' }] })), status.INVALID_ARGUMENT);
      expect(details).toMatch(/^spec\.nics\[0\]\.bridge: br0 is not an allowed bridge \(allowed: brown0\)/);
      const vm = await api.create(guestSpec('fenced', { nics: [{ name: 'eth0', bridge: 'brown0', mac: '' }] }), true);
      expect((await ns.links()).find((l) => l.ifname === vm.status!.nics[0]!.tap)?.master).toBe('brown0');
      await api.delete('fenced', true);
    } finally {
      await d.cleanup();
    }
  });

  it('a failing `ip` (a fake on PATH) leaves no TAP, no QEMU and a clear error', async () => {
    const realIp = execFileSync('sh', ['-c', 'command -v ip']).toString().trim();
    await writeFile(
      join(fakeDir, 'ip'),
      `#!/bin/sh\ncase "$*" in *" master "*) echo "RTNETLINK answers: Operation not permitted (fake)" >&2; exit 2;; esac\nexec ${realIp} "$@"\n`,
    );
    await chmod(join(fakeDir, 'ip'), 0o755);
    const d = await TestDaemon.start({ extraArgs: ['--netns', ns.name], env: { PATH: `${fakeDir}:${process.env.PATH}` } });
    try {
      const api = rpc(d.clients);
      await api.create(guestSpec('ipfail', { nics: [{ name: 'eth0', bridge: 'br0', mac: '' }] }));
      const details = await expectCode(() => api.start('ipfail'), status.UNAVAILABLE);
      expect(details).toContain('Operation not permitted (fake)');
      const vm = await api.get('ipfail');
      expect(vm.status?.phase).toBe('PHASE_FAILED');
      expect(vm.status?.pid).toBe(0);
      expect((await ns.linkNames()).filter(isVmletTapName)).toEqual([]);
      await api.delete('ipfail');
    } finally {
      await d.cleanup();
    }
  });

  // --netns: vmlet lists TAPs with `ip -n`; the daemon itself in the namespace: from its sysfs.
  it.each([
    ['--netns', true],
    ['the daemon in the namespace', false],
  ])('kill -9 of the daemon in the middle of a start, then restart: no orphan TAP (%s)', async (_, byFlag) => {
    // A QEMU that never opens QMP keeps the start waiting after the TAP exists.
    // No exec: the shell keeps QEMU's command line (-name, -pidfile), as a real hung QEMU would.
    await writeFile(join(fakeDir, 'qemu-hang'), '#!/bin/sh\ncase "$*" in *--version*) echo "QEMU emulator version 7.2.0"; exit 0;; esac\nsleep 300\n');
    await chmod(join(fakeDir, 'qemu-hang'), 0o755);
    const extraArgs = [...(byFlag ? ['--netns', ns.name] : []), '--accel', 'tcg', '--qemu', join(fakeDir, 'qemu-hang')];
    const d = await TestDaemon.start({ extraArgs, ...(byFlag ? {} : { netns: ns.name }) });
    try {
      const api = rpc(d.clients);
      await api.create(guestSpec('crashy', { nics: [{ name: 'eth0', bridge: 'br0', mac: '' }] }));
      const starting = api.start('crashy').catch(() => undefined);
      const tap = await until('TAP created', async () => (await ns.linkNames()).find(isVmletTapName));
      // The TAP comes before QEMU's spawn: "in the middle" is once the hung QEMU runs too.
      await until('QEMU spawned', async () => ((await qemuPidsOf(['crashy'])).length === 1 ? true : undefined));
      await d.kill9();
      await starting;
      expect(await ns.linkNames()).toContain(tap);
      const hung = await qemuPidsOf(['crashy']);
      expect(hung).toHaveLength(1);
      extraArgs.splice(extraArgs.indexOf('--qemu'), 2);
      await d.restart();
      expect(await ns.linkNames()).not.toContain(tap);
      // The QEMU whose pid was never recorded is found by its command line and killed.
      expect(await isAlive(hung[0]!)).toBe(false);
      const vm = await rpc(d.clients).get('crashy');
      expect(vm.status?.phase).toBe('PHASE_FAILED');
      await rpc(d.clients).delete('crashy');
    } finally {
      await d.cleanup();
      try {
        execFileSync('pkill', ['-x', '-f', 'sleep 300'], { stdio: 'ignore' });
      } catch {
        // nothing left to kill
      }
    }
  });
});
