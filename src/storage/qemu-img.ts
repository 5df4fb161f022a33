import { run } from '../host/run.js';

export type ImageFormat = 'raw' | 'qcow2';

/** The format qemu-img detects; anything but qcow2 is opened as raw. */
export async function detectFormat(qemuImg: string, path: string): Promise<ImageFormat> {
  const { stdout } = await run(qemuImg, ['info', '--output=json', '-U', path], { timeoutMs: 30_000 });
  const info = JSON.parse(stdout) as { format?: string };
  return info.format === 'qcow2' ? 'qcow2' : 'raw';
}

/** A copy-on-write qcow2 on top of `backing`, with the backing format given explicitly (no probing at open). */
export async function createOverlay(qemuImg: string, overlay: string, backing: string, backingFormat: ImageFormat): Promise<void> {
  await run(qemuImg, ['create', '-q', '-f', 'qcow2', '-F', backingFormat, '-b', backing, overlay], { timeoutMs: 60_000 });
}
