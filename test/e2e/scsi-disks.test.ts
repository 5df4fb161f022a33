import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, TestDaemon } from '../support/daemon.js';
import { guestSpec, waitForFileText } from '../support/guest.js';
import { parseMetrics } from '../support/metrics-text.js';
import { until } from '../support/poll.js';
import { rpc } from '../support/rpc.js';

const exec = promisify(execFile);
const ID = 'scsi-1';

/**
 * Run in the guest: waits for both scsi disks, prints each one's name, serial (VPD page 0x80:
 * the disk's name in vmlet) and read-only flag, then mounts the one with serial `data`, prints
 * the marker it was made with and writes a file to it.
 */
const GUEST_SCRIPT = `
i=0; while [ "$(ls /sys/block | grep -c '^sd')" -lt 2 ] && [ $i -lt 200 ]; do usleep 100000; i=$((i+1)); done
for b in /sys/block/sd*; do
  n=\${b##*/}; s=$(tr -dc a-z0-9 <"$b/device/vpd_pg80")
  echo "SCSI $n $s ro=$(cat "$b/ro") vendor=$(cat "$b/device/vendor")"
  if [ "$s" = data ]; then mount /dev/$n /mnt && echo "MARKER $(cat /mnt/marker)" && echo hello >/mnt/written && sync && echo WROTE; fi
done
echo SCSI-DONE
`;

describe('scsi disks: scsi-hd on a virtio-scsi controller', () => {
  let d: TestDaemon;
  let api: ReturnType<typeof rpc>;
  let images: string;

  beforeAll(async () => {
    d = await TestDaemon.start();
    api = rpc(d.clients);
    images = join(d.root, 'images');
    const content = await mkdtemp(join(tmpdir(), 'vmlet-scsi-'));
    try {
      await writeFile(join(content, 'marker'), 'scsi-marker-42\n');
      await mkdir(images, { recursive: true });
      for (const name of ['data.raw', 'ro.raw']) {
        await exec('truncate', ['-s', '16M', join(images, name)]);
        await exec('mkfs.ext2', ['-q', '-F', '-d', content, join(images, name)]);
      }
    } finally {
      await rm(content, { recursive: true, force: true });
    }
  });
  afterAll(async () => {
    await api?.delete(ID, true).catch(() => undefined);
    await d?.cleanup();
  });

  it('the guest sees both disks as SCSI (one read-only), reads and writes the overlay one; status, vmlet get, metrics and adoption after kill -9 know them', async () => {
    const run = `echo ${Buffer.from(GUEST_SCRIPT).toString('base64')} | base64 -d | sh`;
    const spec = guestSpec(ID, {
      disks: [
        { name: 'data', imagePath: join(images, 'data.raw'), overlay: true, readonly: false, bus: 'DISK_BUS_SCSI' },
        { name: 'ro', imagePath: join(images, 'ro.raw'), overlay: false, readonly: true, bus: 'DISK_BUS_SCSI' },
      ],
    });
    const created = await api.create({ ...spec, kernel: { ...spec.kernel!, cmdline: `${spec.kernel!.cmdline} vmlet.run="${run}"` } }, true);
    expect(created.spec!.disks.map((x) => x.bus)).toEqual(['DISK_BUS_SCSI', 'DISK_BUS_SCSI']);

    const console = await waitForFileText(join(d.stateDir, 'vms', ID, 'console.log'), /^SCSI-DONE\r?$/m, 120_000);
    // The guest's own view: sd devices from QEMU's SCSI emulation, found by their serial.
    expect(console).toMatch(/SCSI sd[a-z] data ro=0 vendor=QEMU\s*\r?$/m);
    expect(console).toMatch(/SCSI sd[a-z] ro ro=1 vendor=QEMU\s*\r?$/m);
    expect(console).toMatch(/^MARKER scsi-marker-42\r?$/m);
    expect(console).toMatch(/^WROTE\r?$/m);
    expect(console).toMatch(/virtio_scsi|scsi host0: Virtio SCSI HBA/);

    const vm = await api.get(ID);
    expect(vm.status!.disks.map((x) => x.name)).toEqual(['data', 'ro']);
    const argv = (await readFile(`/proc/${vm.status!.pid}/cmdline`, 'utf8')).split('\0');
    expect(argv.filter((a) => a.includes('"scsi-hd"')).length).toBe(2);
    expect(argv.filter((a) => a.includes('"virtio-scsi-pci"')).length).toBe(1);
    expect(argv.some((a) => a.includes('virtio-blk-pci'))).toBe(false);

    const { stdout } = await exec(process.execPath, [CLI, '--endpoint', d.socket, 'get', ID]);
    expect(stdout).toMatch(/^\s+data\s+\S+data\.raw\s+yes\s+no\s+scsi\s/m);
    expect(stdout).toMatch(/^\s+ro\s+\S+ro\.raw\s+no\s+yes\s+scsi\s/m);

    // Block statistics find the scsi devices by their node: the guest's reads and its write show.
    await until('storage metrics of the scsi disks', async () => {
      const lines = parseMetrics(await (await fetch(`${d.httpAddress}/metrics`)).text());
      const v = (name: string, drive: string) => lines.find((l) => l.name === name && l.labels.name === ID && l.labels.drive === drive)?.value ?? 0;
      return v('kubevirt_vmi_storage_iops_read_total', 'data') > 0 && v('kubevirt_vmi_storage_iops_write_total', 'data') > 0 && v('kubevirt_vmi_storage_iops_read_total', 'ro') > 0 ? true : undefined;
    });

    // A restarted daemon adopts it with its scsi disks (kill -9: no clean handover).
    await d.kill9();
    await d.restart();
    api = rpc(d.clients);
    const adopted = await api.get(ID);
    expect(adopted.status).toMatchObject({ phase: 'PHASE_RUNNING', pid: vm.status!.pid });
    expect(adopted.status!.disks).toEqual(vm.status!.disks);

    // A clean stop and start boots it again on the same controller.
    await api.stop(ID, 10);
    const restarted = await api.start(ID);
    expect(restarted.status!.phase).toBe('PHASE_RUNNING');
  }, 240_000);
});
