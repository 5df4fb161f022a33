import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Socket } from 'node:net';

/** Who is at the other end of a unix socket, as the kernel recorded it at connect(). */
export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

const ADDON = join('native', 'peercred', 'build', 'Release', 'peercred.node');

type Addon = { peercred(fd: number): PeerCredentials };
let addon: Addon | null | undefined;

/** The addon built by scripts/setup.sh, found above this module (src/ or dist/src/). */
function load(): Addon | null {
  if (addon !== undefined) return addon;
  for (let dir = import.meta.dirname; dirname(dir) !== dir; dir = dirname(dir)) {
    const file = join(dir, ADDON);
    if (existsSync(file)) return (addon = createRequire(import.meta.url)(file) as Addon);
  }
  return (addon = null);
}

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
