import type { Socket } from 'node:net';
import { loadAddon } from './native-addon.js';

/** Who is at the other end of a unix socket, as the kernel recorded it at connect(). */
export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

type Addon = { peercred(fd: number): PeerCredentials };
const load = (): Addon | null => loadAddon<Addon>('peercred');

/** Whether peer credentials can be read here (the addon is built). */
export const peerCredentialsAvailable = (): boolean => load() !== null;

/** SO_PEERCRED of a connected unix socket; undefined when the addon is missing or the socket has no fd. */
export function peerCredentials(socket: Socket): PeerCredentials | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  const a = load();
  if (!a || typeof fd !== 'number' || fd < 0) return undefined;
  return a.peercred(fd);
}

/** The supplementary groups on the `Groups:` line of a /proc/<pid>/status text (it may be empty). */
export function supplementaryGroups(statusText: string): number[] {
  const line = /^Groups:[ \t]*(.*)$/m.exec(statusText)?.[1] ?? '';
  return line.split(/\s+/).filter((g) => /^\d+$/.test(g)).map(Number);
}
