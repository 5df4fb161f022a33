import { execFile } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestDaemon } from '../support/daemon.js';
import { guestSpec, READY_LINE, waitForFileText } from '../support/guest.js';
import { rpc } from '../support/rpc.js';

const exec = promisify(execFile);
const ID = 'seeded-1';
const USER_DATA = '#cloud-config\nruncmd:\n  - echo seeded > /run/seeded\n';

describe('cloud-init NoCloud seed', () => {
  let d: TestDaemon;
  let api: ReturnType<typeof rpc>;
  let seed: string;

  beforeAll(async () => {
    d = await TestDaemon.start();
    api = rpc(d.clients);
    seed = join(d.stateDir, 'vms', ID, 'cidata.iso');
  });
  afterAll(async () => {
    await api?.delete(ID, true).catch(() => undefined);
    await d?.cleanup();
  });

  it('refuses user_data over 64 KiB with INVALID_ARGUMENT and leaves nothing behind', async () => {
    const big = guestSpec('too-big', { cloudInit: { userData: 'x'.repeat(64 * 1024 + 1), metaData: '', networkConfig: '' } });
    await expect(api.create(big)).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, details: expect.stringMatching(/spec\.cloud_init\.user_data: is 65537 bytes/) });
    await expect(stat(join(d.stateDir, 'vms', 'too-big'))).rejects.toThrow(/ENOENT/);
  });

  it('writes the seed at create, attaches it as a read-only virtio disk, and the guest still boots', async () => {
    const created = await api.create(guestSpec(ID, { cloudInit: { userData: USER_DATA, metaData: '', networkConfig: '' } }), true);
    expect(created.spec!.cloudInit).toEqual({ userData: USER_DATA, metaData: '', networkConfig: '' });
    const { stdout: header } = await exec('isoinfo', ['-d', '-i', seed]);
    expect(header).toMatch(/^Volume id: cidata$/m);
    expect((await exec('isoinfo', ['-R', '-i', seed, '-x', '/user-data'])).stdout).toBe(USER_DATA);
    expect((await exec('isoinfo', ['-R', '-i', seed, '-x', '/meta-data'])).stdout).toBe(`instance-id: iid-${ID}\nlocal-hostname: ${ID}\n`);
    expect((await stat(seed)).uid).toBe(created.status!.uid);

    await waitForFileText(join(d.stateDir, 'vms', ID, 'console.log'), READY_LINE, 120_000);
    const { pid } = (await api.get(ID)).status!;
    const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    expect(argv).toContain(JSON.stringify({ driver: 'virtio-blk-pci', drive: 'cidata', id: 'cidata', serial: 'cidata' }));
    expect(argv.some((a) => a.includes(seed) && a.includes('"read-only":true'))).toBe(true);
  }, 180_000);

  it('removes the seed with the VM', async () => {
    await api.delete(ID, true);
    await expect(stat(seed)).rejects.toThrow(/ENOENT/);
  }, 60_000);
});
