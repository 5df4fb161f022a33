import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StateStore } from '../../src/state/store.js';
import { writeFilesAtomic } from '../../src/state/atomic-file.js';
import { vmPaths, MAX_UNIX_SOCKET_PATH, checkRunDirFits } from '../../src/state/paths.js';
import type { VmSpec, VmStatus } from '../../src/model/vm.js';

const spec = (id: string): VmSpec => ({ id, labels: {}, vcpus: 1, memoryMib: 64, disks: [], nics: [] });
const status = (phase: VmStatus['phase']): VmStatus => ({ phase, reason: '', pid: 0, nics: [], disks: [], accelerator: '', createdAt: 't', lastTransitionAt: 't', generation: 1 });

describe('StateStore', () => {
  let dir: string;
  let store: StateStore;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vmlet-store-'));
    store = new StateStore(join(dir, 'state'), join(dir, 'run'));
    await store.init();
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('round-trips spec and status and leaves no temp files', async () => {
    await store.create(spec('a'), status('Pending'));
    await store.saveStatus('a', status('Running'));
    const { vms, unfinished } = await store.loadAll();
    expect(unfinished).toEqual([]);
    expect(vms).toEqual([{ spec: spec('a'), status: status('Running') }]);
    expect((await readdir(join(dir, 'state/vms/a'))).sort()).toEqual(['disks', 'spec.json', 'status.json']);
  });

  it('keeps a live copy of the status in the run dir, making that dir when needed; loadAll takes the newer copy', async () => {
    await store.create(spec('l'), status('Pending'));
    const live = { ...status('Starting'), pid: 42, generation: 2 };
    store.saveLiveStatus('l', live);
    expect(JSON.parse(await readFile(join(dir, 'run/vms/l/status.json'), 'utf8'))).toEqual(live);
    expect((await readdir(join(dir, 'run/vms/l'))).sort()).toEqual(['status.json']);
    expect((await store.loadAll()).vms[0]!.status).toEqual(live);
    // A durable copy that is newer (the live one could not be written) wins; a tie goes to the live copy.
    const durable = { ...status('Failed'), generation: 3 };
    await store.saveStatus('l', durable);
    expect((await store.loadAll()).vms[0]!.status).toEqual(durable);
    store.saveLiveStatus('l', { ...live, generation: 3 });
    expect((await store.loadAll()).vms[0]!.status).toEqual({ ...live, generation: 3 });
  });

  it('either copy alone gives the VM its status; with neither readable it has none', async () => {
    await store.create(spec('m'), status('Pending'));
    await writeFile(join(dir, 'state/vms/m/status.json'), '{"phase": ');
    store.saveLiveStatus('m', status('Running'));
    expect((await store.loadAll()).vms[0]!.status).toEqual(status('Running'));
    await writeFile(join(dir, 'run/vms/m/status.json'), '');
    expect((await store.loadAll()).vms[0]!.status).toBeUndefined();
    await store.saveStatus('m', status('Stopped'));
    expect((await store.loadAll()).vms[0]!.status).toEqual(status('Stopped'));
  });

  it('a directory without spec.json is an unfinished create or delete', async () => {
    await mkdir(join(dir, 'state/vms/half/disks'), { recursive: true });
    await writeFile(join(dir, 'state/vms/half/status.json'), '{}');
    expect((await store.loadAll()).unfinished).toEqual(['half']);
  });

  it('a VM whose status is unreadable loads with status undefined', async () => {
    await store.create(spec('b'), status('Pending'));
    await writeFile(join(dir, 'state/vms/b/status.json'), '{"phase": ');
    expect((await store.loadAll()).vms).toEqual([{ spec: spec('b'), status: undefined }]);
  });

  it('remove deletes every file of the VM', async () => {
    await store.create(spec('c'), status('Pending'));
    await mkdir(store.paths('c').runDir, { recursive: true });
    await store.remove('c');
    expect(await readdir(join(dir, 'state/vms'))).toEqual([]);
    expect(await readdir(join(dir, 'run/vms'))).toEqual([]);
  });

  it('writeFilesAtomic leaves the old content when one file cannot be written', async () => {
    const a = join(dir, 'a.json');
    await writeFile(a, 'old');
    await expect(writeFilesAtomic([{ path: a, data: 'new' }, { path: join(dir, 'missing-dir', 'b.json'), data: 'x' }])).rejects.toThrow();
    expect(await readFile(a, 'utf8')).toBe('old');
    expect((await readdir(dir)).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });
});

describe('vmPaths', () => {
  it('uses the id for the runtime dir when the socket path fits, a hash otherwise', () => {
    expect(vmPaths('/s', '/run/vmlet', 'web').qmpSocket).toBe('/run/vmlet/vms/web/qmp.sock');
    const long = 'x'.repeat(63);
    const p = vmPaths('/s', '/tmp/' + 'd'.repeat(40), long);
    expect(Buffer.byteLength(p.serialSocket)).toBeLessThanOrEqual(MAX_UNIX_SOCKET_PATH);
    expect(p.runDir).not.toContain(long);
    expect(p.stateDir).toBe(`/s/vms/${long}`);
  });

  it('refuses a run dir too long even for hashed names', () => {
    expect(checkRunDirFits('/run/vmlet')).toBeUndefined();
    expect(checkRunDirFits('/' + 'r'.repeat(90))).toMatch(/too long/);
  });
});
