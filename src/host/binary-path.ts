import { access, constants } from 'node:fs/promises';
import { delimiter, isAbsolute, join, resolve } from 'node:path';

/** `qemu-system-x86_64` → the file PATH finds; a path with a slash → that path. Undefined when none is executable. */
export async function resolveBinary(binary: string, path = process.env.PATH ?? ''): Promise<string | undefined> {
  const candidates = binary.includes('/') ? [resolve(binary)] : path.split(delimiter).filter((d) => isAbsolute(d)).map((d) => join(d, binary));
  for (const file of candidates) {
    try {
      await access(file, constants.X_OK);
      return file;
    } catch {
      // next
    }
  }
  return undefined;
}
