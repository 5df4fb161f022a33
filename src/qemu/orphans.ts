import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { processCmdlineSync } from '../host/process.js';

export interface QemuProcess {
  pid: number;
  /** The VM id from `-name guest=<id>,…`. */
  id: string;
}

/**
 * Every process started by a vmlet with this run dir: its command line carries
 * `-pidfile <run-dir>/vms/…` and `-name guest=<id>,…`. Finds QEMUs that no VM record holds (a
 * crash between spawning QEMU and recording its pid).
 */
export async function qemusUnder(runDir: string): Promise<QemuProcess[]> {
  const prefix = join(runDir, 'vms') + '/';
  const found: QemuProcess[] = [];
  for (const entry of await readdir('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    // In one go: /proc never waits on a disk, and one file after another through the thread
    // pool took longer than the adoption it runs beside.
    const argv = processCmdlineSync(pid);
    if (!argv) continue;
    const pidfile = argv[argv.indexOf('-pidfile') + 1];
    const name = argv[argv.indexOf('-name') + 1];
    if (!argv.includes('-pidfile') || !argv.includes('-name') || !pidfile?.startsWith(prefix)) continue;
    const id = /^guest=([^,]+),/.exec(name ?? '')?.[1];
    if (id) found.push({ pid, id });
  }
  return found;
}
