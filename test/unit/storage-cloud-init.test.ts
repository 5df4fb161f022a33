import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CloudInit, VmSpec } from '../../src/model/vm.js';
import { vmPaths } from '../../src/state/paths.js';
import { writeSeed } from '../../src/storage/cloud-init.js';

const exec = promisify(execFile);
const noSync = async (): Promise<void> => undefined;

/** One file of the ISO as cloud-init sees it (Rock Ridge names). */
async function isoFile(iso: string, name: string): Promise<string> {
  return (await exec('isoinfo', ['-R', '-i', iso, '-x', `/${name}`])).stdout;
}

describe('the cloud-init NoCloud seed', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vmlet-seed-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const paths = () => vmPaths(join(dir, 'state'), join(dir, 'run'), 'web-1');
  const spec = (cloudInit?: Partial<CloudInit>): VmSpec => ({
    id: 'web-1', labels: {}, vcpus: 1, memoryMib: 64, disks: [], nics: [],
    ...(cloudInit ? { cloudInit: { userData: '', metaData: '', networkConfig: '', ...cloudInit } } : {}),
  });

  it('is an ISO 9660 volume labelled cidata with user-data and vmlet default meta-data, and no network-config when none is given', async () => {
    const userData = '#cloud-config\nruncmd:\n  - echo hello > /run/hello\n';
    expect(await writeSeed(spec({ userData }), paths(), { sync: noSync })).toBe(true);
    const iso = paths().cloudInitSeed;
    const { stdout: header } = await exec('isoinfo', ['-d', '-i', iso]);
    expect(header).toMatch(/^Volume id: cidata$/m);
    const { stdout: listing } = await exec('isoinfo', ['-R', '-f', '-i', iso]);
    expect(listing.split('\n').filter(Boolean).sort()).toEqual(['/meta-data', '/user-data']);
    expect(await isoFile(iso, 'user-data')).toBe(userData);
    expect(await isoFile(iso, 'meta-data')).toBe('instance-id: iid-web-1\nlocal-hostname: web-1\n');
    // Nothing else is left in the state dir: no temporary files, only the seed and what it was made from.
    expect((await readdir(paths().stateDir)).sort()).toEqual(['cidata.iso', 'cidata.iso.sha256']);
  });

  it('carries the given meta-data and network-config verbatim', async () => {
    const metaData = 'instance-id: mine\nlocal-hostname: other\n';
    const networkConfig = 'version: 2\nethernets:\n  eth0:\n    dhcp4: true\n';
    await writeSeed(spec({ userData: '#cloud-config\n', metaData, networkConfig }), paths(), { sync: noSync });
    expect(await isoFile(paths().cloudInitSeed, 'meta-data')).toBe(metaData);
    expect(await isoFile(paths().cloudInitSeed, 'network-config')).toBe(networkConfig);
  });

  it('is remade only when what it is made from changes, and removed when the spec has no cloud_init', async () => {
    await writeSeed(spec({ userData: 'one' }), paths(), { sync: noSync });
    const first = (await stat(paths().cloudInitSeed)).ino;
    expect(await writeSeed(spec({ userData: 'one' }), paths(), { sync: noSync })).toBe(false);
    expect((await stat(paths().cloudInitSeed)).ino).toBe(first);
    expect(await writeSeed(spec({ userData: 'two' }), paths(), { sync: noSync })).toBe(true);
    expect(await isoFile(paths().cloudInitSeed, 'user-data')).toBe('two');
    await writeSeed(spec(), paths(), { sync: noSync });
    expect(await readdir(paths().stateDir)).toEqual([]);
  });

  it('a failing genisoimage leaves the previous seed and no temporary files, and says why', async () => {
    await writeSeed(spec({ userData: 'one' }), paths(), { sync: noSync });
    await expect(writeSeed(spec({ userData: 'two' }), paths(), { sync: noSync, genisoimage: 'false' })).rejects.toThrow(/false -output .* failed \(exit 1\)/);
    expect(await isoFile(paths().cloudInitSeed, 'user-data')).toBe('one');
    expect((await readdir(paths().stateDir)).sort()).toEqual(['cidata.iso', 'cidata.iso.sha256']);
  });
});
