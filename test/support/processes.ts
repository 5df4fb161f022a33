import { readdir } from 'node:fs/promises';
import { processCmdline } from '../../src/host/process.js';

/** Pids of any QEMU on the machine whose -name marks it as one of these VMs. */
export async function qemuPidsOf(ids: string[]): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const cmd = await processCmdline(pid);
    const name = cmd?.[cmd.indexOf('-name') + 1];
    if (cmd?.includes('-name') && ids.some((id) => name === `guest=${id},debug-threads=on`)) found.push(pid);
  }
  return found;
}
