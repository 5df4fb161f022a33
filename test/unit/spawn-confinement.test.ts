import { mkdtemp, readFile, readlink, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../src/host/log.js';
import { Spawner } from '../../src/qemu/spawner.js';
import { TestNetns } from '../support/netns.js';

vi.setConfig({ testTimeout: 20_000 });

const isRoot = process.getuid?.() === 0;
const UID = 64_123;
const GID = 64_124;
const GROUP = 64_125;

/** The fields of /proc/<pid>/status that say who a process is and what it may do. */
function facts(status: string): Record<string, string> {
  const wanted = ['Uid', 'Gid', 'Groups', 'CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb', 'NoNewPrivs'];
  const out: Record<string, string> = {};
  for (const line of status.split('\n')) {
    const [key, value] = line.split(':\t');
    if (key && wanted.includes(key)) out[key] = value!.trim().replace(/\s+/g, ' ');
  }
  return out;
}

// Both ways the helper confines a child: between fork and exec (native/spawn), and with setpriv
// exec'd first when the addon is not there. The same facts must come out of each.
describe.skipIf(!isRoot).each([
  ['the native addon', undefined, true],
  ['setpriv, without the addon', 'off', false],
])('spawn helper confinement through %s', (_how, addonSetting, inProcess) => {
  let dir: string;
  let spawner: Spawner;
  let netns: TestNetns;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'vmlet-spawn-confine-'));
    netns = await TestNetns.create('vmlet-sp');
    const before = process.env.VMLET_SPAWN_ADDON;
    if (addonSetting) process.env.VMLET_SPAWN_ADDON = addonSetting;
    try {
      spawner = new Spawner(silentLogger()).start();
    } finally {
      if (before === undefined) delete process.env.VMLET_SPAWN_ADDON;
      else process.env.VMLET_SPAWN_ADDON = before;
    }
  });
  afterAll(async () => {
    spawner?.close();
    await netns?.delete();
    await rm(dir, { recursive: true, force: true });
  });

  it('runs the child as the given user and groups, with no capabilities and no_new_privs', async () => {
    const log = path.join(dir, 'status.log');
    const child = await spawner.spawn('/bin/cat', ['/proc/self/status'], log, { runAs: { uid: UID, gid: GID, groups: [GROUP] } });
    await expect(child.exited).resolves.toEqual({ code: 0, signal: null });
    expect(spawner.confinesInProcess).toBe(inProcess);
    expect(facts(await readFile(log, 'utf8'))).toEqual({
      Uid: `${UID} ${UID} ${UID} ${UID}`,
      Gid: `${GID} ${GID} ${GID} ${GID}`,
      Groups: `${GROUP}`,
      CapInh: '0000000000000000',
      CapPrm: '0000000000000000',
      CapEff: '0000000000000000',
      CapBnd: '0000000000000000',
      CapAmb: '0000000000000000',
      NoNewPrivs: '1',
    });
  });

  it('without a user, the child keeps root and its capabilities', async () => {
    const log = path.join(dir, 'root.log');
    const child = await spawner.spawn('/bin/cat', ['/proc/self/status'], log);
    await expect(child.exited).resolves.toEqual({ code: 0, signal: null });
    const f = facts(await readFile(log, 'utf8'));
    expect(f.Uid).toBe('0 0 0 0');
    expect(f.CapBnd).not.toBe('0000000000000000');
  });

  it('runs the child in the named network namespace', async () => {
    const log = path.join(dir, 'netns.log');
    const child = await spawner.spawn('/bin/readlink', ['/proc/self/ns/net'], log, { netns: netns.name, runAs: { uid: UID, gid: GID, groups: [] } });
    await expect(child.exited).resolves.toEqual({ code: 0, signal: null });
    const { ino } = await stat(path.join('/run/netns', netns.name));
    expect((await readFile(log, 'utf8')).trim()).toBe(`net:[${ino}]`);
    expect(await readlink('/proc/self/ns/net')).not.toBe(`net:[${ino}]`);
  });

  it('refuses a namespace name that is a path, and starts nothing', async () => {
    const log = path.join(dir, 'bad.log');
    await expect(spawner.spawn('/bin/true', [], log, { netns: '../x' })).rejects.toThrow(/not a network namespace name/);
    await expect(stat(log)).rejects.toThrow(/ENOENT/);
  });
});
