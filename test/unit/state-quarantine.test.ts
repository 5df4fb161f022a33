import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StateStore } from '../../src/state/store.js';
import type { VmSpec, VmStatus } from '../../src/model/vm.js';

const spec = (id: string): VmSpec => ({ id, labels: {}, vcpus: 1, memoryMib: 64, disks: [], nics: [] });
const status = (phase: VmStatus['phase']): VmStatus => ({ phase, reason: '', pid: 0, nics: [], disks: [], accelerator: '', createdAt: 't', lastTransitionAt: 't', generation: 1 });

describe('StateStore: a spec that cannot be used', () => {
  let dir: string;
  let store: StateStore;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vmlet-quarantine-'));
    store = new StateStore(join(dir, 'state'), join(dir, 'run'));
    await store.init();
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('tells a truncated, a foreign and an unreadable spec apart from a missing one and from a good one', async () => {
    for (const id of ['good', 'cut', 'other', 'locked', 'half']) await store.create(spec(id), status('Stopped'));
    const specFile = (id: string): string => store.paths(id).specFile;
    const text = await readFile(specFile('cut'), 'utf8');
    await writeFile(specFile('cut'), text.slice(0, text.length / 2));
    await writeFile(specFile('other'), JSON.stringify(spec('someone-else')));
    // A spec.json that is a directory: reading it fails (EISDIR), whoever vmlet runs as.
    await rm(specFile('locked'));
    await mkdir(specFile('locked'));
    await rm(specFile('half'));
    const { vms, unfinished, unreadable } = await store.loadAll();
    expect(vms.map((v) => v.spec.id)).toEqual(['good']);
    expect(unfinished).toEqual(['half']);
    const why = Object.fromEntries(unreadable.map((u) => [u.id, u.reason]));
    expect(why.cut).toContain('spec.json is not valid JSON');
    expect(why.other).toBe('spec.json does not describe VM other');
    expect(why.locked).toContain('spec.json cannot be read: EISDIR');
    // The status still reads: it names the TAPs and QEMU that must not be swept.
    expect(unreadable.find((u) => u.id === 'cut')?.status).toEqual(status('Stopped'));
  });

  it('quarantine moves the whole directory, overlays included, and never overwrites an earlier one', async () => {
    await store.create(spec('vm'), status('Stopped'));
    const overlay = join(store.paths('vm').disksDir, 'root.qcow2');
    await writeFile(overlay, 'guest data');
    const at = new Date('2026-12-05T05:30:00.123Z');
    const first = await store.quarantine('vm', at);
    expect(first).toBe(join(dir, 'state', 'quarantine', 'vm-20261205T053000Z'));
    expect(await readFile(join(first, 'disks', 'root.qcow2'), 'utf8')).toBe('guest data');
    expect((await readdir(first)).sort()).toEqual(['disks', 'spec.json', 'status.json']);
    expect(await readdir(join(dir, 'state', 'vms'))).toEqual([]);

    await store.create(spec('vm'), status('Stopped'));
    const second = await store.quarantine('vm', at);
    expect(second).not.toBe(first);
    expect(await readFile(join(first, 'disks', 'root.qcow2'), 'utf8')).toBe('guest data');
  });

  it('a status copy of the wrong shape counts as lost; the other copy, if good, is used', async () => {
    await store.create(spec('vm'), status('Running'));
    await writeFile(store.paths('vm').statusFile, JSON.stringify({ ...status('Running'), nics: 5, generation: 9 }));
    expect((await store.loadAll()).vms[0]!.status).toBeUndefined();
    store.saveLiveStatus('vm', status('Paused'));
    expect((await store.loadAll()).vms[0]!.status).toEqual(status('Paused'));
    await writeFile(store.paths('vm').runtimeStatusFile, 'null');
    expect((await store.loadAll()).vms[0]!.status).toBeUndefined();
  });
});
