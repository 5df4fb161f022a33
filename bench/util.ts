import { chmod, mkdtemp, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

/** True if `p` settles within `ms`; the timer is cancelled either way, so it never holds the process open. */
export async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  const ac = new AbortController();
  try {
    return await Promise.race([p.then(() => true), delay(ms, false, { signal: ac.signal })]);
  } finally {
    ac.abort();
  }
}

export const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** A temp dir (under `base`) that the daemon's unprivileged QEMUs may pass through to their own files; mkdtemp's are 0700. */
export async function benchDir(base: string, prefix: string): Promise<string> {
  const dir = await mkdtemp(join(base, prefix));
  await chmod(dir, 0o711);
  return dir;
}

/** Polls `file` until it holds `text` (a guest's ready line in its console log), with a deadline. */
export async function waitForText(file: string, text: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ((await readFile(file, 'utf8').catch(() => '')).includes(text)) return;
    if (Date.now() > deadline) throw new Error(`${text} not in ${file} within ${timeoutMs} ms`);
    await delay(100);
  }
}
