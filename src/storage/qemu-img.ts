import { run } from '../host/run.js';
import type { ImageFormat } from './image-header.js';

export type { ImageFormat } from './image-header.js';

/** One image of a backing chain as `qemu-img info --backing-chain` describes it. */
export interface ChainImage {
  filename: string;
  format: string;
  /** Set when the image has a backing file. */
  backingFilename?: string;
  /** The recorded backing format; missing when the image has a backing file but no backing format. */
  backingFormat?: string;
  /** A qcow2 image's external data file. */
  dataFile?: string;
}

interface InfoJson {
  filename?: string;
  format?: string;
  'backing-filename'?: string;
  'backing-filename-format'?: string;
  'format-specific'?: { type?: string; data?: { 'data-file'?: string } };
}

/**
 * The image and its backing chain as qemu-img opens them, the image with `format` given (`-f`, so
 * qemu-img does not probe it; the backing files are opened with their recorded formats). Fails
 * when any file of the chain cannot be opened, so an image whose backing file is missing is
 * refused here, not when QEMU starts.
 */
export async function inspectImage(qemuImg: string, path: string, format: ImageFormat): Promise<ChainImage[]> {
  const { stdout } = await run(qemuImg, ['info', '-f', format, '--backing-chain', '--output=json', '-U', path], { timeoutMs: 30_000 });
  const chain = JSON.parse(stdout) as InfoJson[];
  return chain.map((c) => {
    const dataFile = c['format-specific']?.data?.['data-file'];
    return {
      filename: c.filename ?? '',
      format: c.format ?? '',
      ...(c['backing-filename'] === undefined ? {} : { backingFilename: c['backing-filename'] }),
      ...(c['backing-filename-format'] === undefined ? {} : { backingFormat: c['backing-filename-format'] }),
      ...(dataFile === undefined ? {} : { dataFile }),
    };
  });
}

/** A copy-on-write qcow2 on top of `backing`, with the backing format given explicitly (no probing at open). */
export async function createOverlay(qemuImg: string, overlay: string, backing: string, backingFormat: ImageFormat): Promise<void> {
  await run(qemuImg, ['create', '-q', '-f', 'qcow2', '-F', backingFormat, '-b', backing, overlay], { timeoutMs: 60_000 });
}
