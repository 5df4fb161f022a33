/** qcow2 images the way old or hostile tools make them, for tests of vmlet's chain checks. */
import { execFile } from 'node:child_process';
import { open } from 'node:fs/promises';
import { promisify } from 'node:util';

/** qemu-img with an argument array and a deadline. */
export const qemuImg = (...args: string[]) => promisify(execFile)('qemu-img', args, { timeout: 30_000 });

/** Renames the backing format header extension to a type QEMU ignores: an image as made by a qemu-img before 6.1 without -F. */
export async function dropBackingFormat(path: string): Promise<void> {
  const file = await open(path, 'r+');
  try {
    const buf = Buffer.alloc(4096);
    await file.read(buf, 0, buf.length, 0);
    for (let offset = buf.readUInt32BE(100); ; ) {
      const type = buf.readUInt32BE(offset);
      if (type === 0) throw new Error(`${path} has no backing format extension`);
      if (type === 0xe2792aca) {
        const renamed = Buffer.alloc(4);
        renamed.writeUInt32BE(0x0badf00d);
        await file.write(renamed, 0, 4, offset);
        return;
      }
      offset += 8 + Math.ceil(buf.readUInt32BE(offset + 4) / 8) * 8;
    }
  } finally {
    await file.close();
  }
}
