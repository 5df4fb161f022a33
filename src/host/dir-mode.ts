import { chmodSync, chownSync, mkdirSync } from 'node:fs';

/**
 * `dir` (made with its parents if missing) with exactly `mode`, and `owner` when given, whatever
 * the umask and whatever an earlier run left: mkdir's mode is masked by the umask and does not
 * touch a directory that exists. Inline calls, like the open and write of small state files
 * (docs/atomic-writes.md): three metadata calls cost less than three pool round trips.
 */
export function dirWithMode(dir: string, mode: number, owner?: { uid: number; gid: number }): void {
  mkdirSync(dir, { recursive: true, mode });
  if (owner) chownSync(dir, owner.uid, owner.gid);
  chmodSync(dir, mode);
}
