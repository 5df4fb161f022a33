/**
 * A hung external tool must not hold up a VM (issue 17, point 6): a fake `ip`, first on the
 * daemon's PATH, passes every call to the real one except `tuntap add`, which hangs, or succeeds
 * while a grandchild that left its process group keeps its stdout open.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { chmod, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TestDaemon, tempDirForQemu } from '../support/daemon.js';
import { guestSpec } from '../support/guest.js';
import { expectCode, rpc } from '../support/rpc.js';
import { TestNetns } from '../support/netns.js';
import { isAlive, signal, waitForExit } from '../../src/host/process.js';
import { isVmletTapName } from '../../src/net/names.js';

/** vmlet's deadline for an `ip` call (net/ip.ts). */
const IP_DEADLINE_MS = 10_000;
const REAL_IP = '/usr/sbin/ip';

describe('hung tools: a deadline for every external command', () => {
  let ns: TestNetns;
  let d: TestDaemon;
  let bin: string;
  let api: ReturnType<typeof rpc>;
  const strays: number[] = [];

  beforeAll(async () => {
    bin = await tempDirForQemu('vmlet-fake-ip-');
    await writeFile(
      join(bin, 'ip'),
      `#!/bin/sh
mode=$(cat ${bin}/mode 2>/dev/null)
case " $* " in
*" tuntap add "*)
  case "$mode" in
  hang) sleep 600 & echo $! > ${bin}/child.pid; wait; exit 1 ;;
  grandchild) ${REAL_IP} "$@" || exit; setsid sleep 600 & echo $! > ${bin}/child.pid; exit 0 ;;
  esac ;;
esac
exec ${REAL_IP} "$@"
`,
    );
    await chmod(join(bin, 'ip'), 0o755);
    ns = await TestNetns.create();
    await ns.addBridge('br0');
    d = await TestDaemon.start({ extraArgs: ['--netns', ns.name], env: { PATH: `${bin}:${process.env.PATH}` } });
    api = rpc(d.clients);
  });
  afterAll(async () => {
    for (const pid of strays) signal(pid, 'SIGKILL');
    await d?.cleanup();
    await ns?.delete();
    if (bin) await rm(bin, { recursive: true, force: true });
  });

  const vmlTaps = async (): Promise<string[]> => (await ns.linkNames()).filter(isVmletTapName);

  for (const mode of ['hang', 'grandchild'] as const) {
    const what = mode === 'hang' ? 'an ip that hangs is killed with its process group' : 'an ip whose grandchild holds its stdout';
    it(`${what}: the create fails within the deadline, nothing is left, the next start goes through`, async () => {
      const id = `tool-${mode}`;
      await writeFile(join(bin, 'mode'), mode);
      const t0 = Date.now();
      const message = await expectCode(() => api.create(guestSpec(id, { nics: [{ name: 'eth0', bridge: 'br0', mac: '' }] }), true), status.UNAVAILABLE);
      const seconds = (Date.now() - t0) / 1000;
      expect(message).toContain('tuntap add');
      expect(message).toContain(mode === 'hang' ? `timed out after ${IP_DEADLINE_MS} ms` : `still held its output after ${IP_DEADLINE_MS} ms`);
      expect(seconds).toBeGreaterThanOrEqual(IP_DEADLINE_MS / 1000);
      expect(seconds).toBeLessThan(IP_DEADLINE_MS / 1000 + 5);
      const child = Number((await readFile(join(bin, 'child.pid'), 'utf8')).trim());
      if (mode === 'hang') {
        // The fake's own child was in its process group: killed with it.
        expect(await waitForExit(child, 5000)).toBe(true);
      } else {
        // setsid took it out of reach; the call returned all the same.
        strays.push(child);
        expect(await isAlive(child)).toBe(true);
      }
      const vm = await api.get(id);
      expect(vm.status?.phase).toBe('PHASE_FAILED');
      expect(vm.status?.pid).toBe(0);
      expect(await vmlTaps()).toEqual([]);

      // The VM's queue moved on: with ip behaving again, the next operation goes through.
      await writeFile(join(bin, 'mode'), '');
      const started = await api.start(id);
      expect(started.status?.phase).toBe('PHASE_RUNNING');
      expect(await vmlTaps()).toEqual([started.status!.nics[0]!.tap]);
      await api.delete(id, true);
      expect(await vmlTaps()).toEqual([]);
    });
  }
});
