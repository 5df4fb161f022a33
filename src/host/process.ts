import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';

const splitCmdline = (raw: Buffer): string[] => raw.toString('utf8').split('\0').filter((s) => s.length > 0);

/** True while the process exists and is not a zombie. */
export async function isAlive(pid: number): Promise<boolean> {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The state letter follows the parenthesised command name, which may itself contain ')'.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

export async function processCmdline(pid: number): Promise<string[] | undefined> {
  try {
    return splitCmdline(await readFile(`/proc/${pid}/cmdline`));
  } catch {
    return undefined;
  }
}

/** processCmdline without the thread pool, for a scan of every process. */
export function processCmdlineSync(pid: number): string[] | undefined {
  try {
    return splitCmdline(readFileSync(`/proc/${pid}/cmdline`));
  } catch {
    return undefined;
  }
}

/** Polls /proc with a deadline (a process that is not our child gives us no exit event). */
export async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  // Most exits follow within milliseconds of the request: start polling fast, back off to 20 ms.
  let interval = 1;
  while (await isAlive(pid)) {
    if (Date.now() >= deadline) return false;
    await delay(interval);
    interval = Math.min(20, interval * 2);
  }
  return true;
}

export function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}
