import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dirWithMode } from '../../src/host/dir-mode.js';

describe('dirWithMode', () => {
  let root: string;
  let umask: number;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'vmlet-dirmode-'));
    umask = process.umask(0o077);
  });
  afterEach(async () => {
    process.umask(umask);
    await rm(root, { recursive: true, force: true });
  });

  it('makes the directory and its parents with the mode, whatever the umask', async () => {
    const dir = join(root, 'a', 'b');
    dirWithMode(dir, 0o755);
    expect((await stat(dir)).mode & 0o777).toBe(0o755);
  });

  it('sets the mode of a directory that exists with another', async () => {
    const dir = join(root, 'old');
    await mkdir(dir, { mode: 0o700 });
    dirWithMode(dir, 0o711);
    expect((await stat(dir)).mode & 0o777).toBe(0o711);
  });

  it.skipIf(process.getuid?.() !== 0)('gives it the owner when one is named', async () => {
    const dir = join(root, 'owned');
    dirWithMode(dir, 0o710, { uid: 65534, gid: 65533 });
    const st = await stat(dir);
    expect([st.uid, st.gid, st.mode & 0o777]).toEqual([65534, 65533, 0o710]);
  });
});
