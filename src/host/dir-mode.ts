import { chmod, chown, mkdir } from 'node:fs/promises';

/**
 * `dir` (made with its parents if missing) with exactly `mode`, and `owner` when given, whatever
 * the umask and whatever an earlier run left: mkdir's mode is masked by the umask and does not
 * touch a directory that exists.
 */
export async function dirWithMode(dir: string, mode: number, owner?: { uid: number; gid: number }): Promise<void> {
  await mkdir(dir, { recursive: true, mode });
  if (owner) await chown(dir, owner.uid, owner.gid);
  await chmod(dir, mode);
}
