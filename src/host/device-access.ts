import { stat } from 'node:fs/promises';

/** True when a user who is neither the owner nor in the group may read and write the device. */
export async function othersMayOpen(device: string): Promise<boolean> {
  const info = await stat(device).catch(() => undefined);
  return info !== undefined && (info.mode & 0o006) === 0o006;
}

/** The device's group as a supplementary group for an unprivileged process, when that group may read and write it. */
export async function groupsFor(device: string): Promise<number[]> {
  const info = await stat(device).catch(() => undefined);
  return info && info.gid !== 0 && (info.mode & 0o060) === 0o060 ? [info.gid] : [];
}
