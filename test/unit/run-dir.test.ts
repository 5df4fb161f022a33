import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { prepareRunDir } from '../../src/qemu/launcher.js';
import { vmPaths } from '../../src/state/paths.js';

let root: string;

beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'vmlet-rundir-'));
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('prepareRunDir', () => {
  it('makes a missing run dir, parents included, readable only by vmlet and its group', async () => {
    const paths = vmPaths(path.join(root, 'state'), path.join(root, 'run'), 'vm1');
    prepareRunDir(paths);
    const s = await stat(paths.runDir);
    expect(s.isDirectory()).toBe(true);
    expect(s.mode & 0o777).toBe(0o750);
    expect(await readdir(paths.runDir)).toEqual([]);
  });

  it("removes an earlier QEMU's sockets and pid file from an existing run dir and keeps the rest", async () => {
    const paths = vmPaths(path.join(root, 'state'), path.join(root, 'run'), 'vm1');
    await mkdir(paths.runDir, { recursive: true });
    for (const f of [paths.qmpSocket, paths.serialSocket, paths.pidFile, paths.qemuLog]) await writeFile(f, 'old');
    prepareRunDir(paths);
    expect(await readdir(paths.runDir)).toEqual([path.basename(paths.qemuLog)]);
  });

  it.skipIf(process.getuid?.() !== 0)("hands the run dir to the VM's own user", async () => {
    const paths = vmPaths(path.join(root, 'state'), path.join(root, 'run'), 'vm1');
    prepareRunDir(paths, { uid: 2_000_123, gid: 2_000_123, groups: [] });
    const s = await stat(paths.runDir);
    expect([s.uid, s.gid]).toEqual([2_000_123, 2_000_123]);
  });
});
