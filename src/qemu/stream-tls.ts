/**
 * The files of QEMU's tls-creds-x509 object: a directory holding the CA and this endpoint's
 * certificate and key under the names QEMU looks for. QEMU runs as the VM's own user, which may
 * not read the node's key where the operator keeps it, so the VM gets a copy in its run dir,
 * readable by it alone, removed with the run dir's other files.
 */
import { chown, copyFile, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { TlsFiles } from '../model/machine.js';

export const tlsDirOf = (runDir: string): string => join(runDir, 'tls');

export async function writeTlsDir(runDir: string, files: TlsFiles, endpoint: 'server' | 'client', owner: { uid: number; gid: number } | undefined): Promise<string> {
  const dir = tlsDirOf(runDir);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { mode: 0o700 });
  const copies: [string, string][] = [
    [files.ca, 'ca-cert.pem'],
    [files.cert, `${endpoint}-cert.pem`],
    [files.key, `${endpoint}-key.pem`],
  ];
  for (const [from, name] of copies) await copyFile(from, join(dir, name));
  if (owner) {
    for (const [, name] of copies) await chown(join(dir, name), owner.uid, owner.gid);
    await chown(dir, owner.uid, owner.gid);
  }
  return dir;
}
