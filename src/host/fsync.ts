import { fsync, open, close } from 'node:fs';
import { promisify } from 'node:util';

const openAsync = promisify(open);
const fsyncAsync = promisify(fsync);
const closeAsync = promisify(close);

/**
 * Flushes a file, or a directory's entries, to the disk (fsync(2)): after a power loss a file
 * written and synced is whole, and a directory synced still lists what was created in it.
 */
export async function fsyncPath(path: string): Promise<void> {
  const fd = await openAsync(path, 'r');
  try {
    await fsyncAsync(fd);
  } finally {
    await closeAsync(fd);
  }
}
