import { run } from '../host/run.js';

export type ImageFormat = 'raw' | 'qcow2';

/**
 * The format qemu-img detects; anything but qcow2 is opened as raw. The whole backing chain is
 * opened too, so an image whose backing file is missing is refused here, not when QEMU starts.
 */
export async function inspectImage(qemuImg: string, path: string): Promise<{ format: ImageFormat; backingFiles: string[] }> {
  const { stdout } = await run(qemuImg, ['info', '--backing-chain', '--output=json', '-U', path], { timeoutMs: 30_000 });
  const chain = JSON.parse(stdout) as { format?: string; filename?: string }[];
  return { format: chain[0]?.format === 'qcow2' ? 'qcow2' : 'raw', backingFiles: chain.slice(1).map((c) => c.filename ?? '') };
}

/** A copy-on-write qcow2 on top of `backing`, with the backing format given explicitly (no probing at open). */
export async function createOverlay(qemuImg: string, overlay: string, backing: string, backingFormat: ImageFormat): Promise<void> {
  await run(qemuImg, ['create', '-q', '-f', 'qcow2', '-F', backingFormat, '-b', backing, overlay], { timeoutMs: 60_000 });
}
