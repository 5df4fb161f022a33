import { chmod, mkdir, readdir, readFile, realpath, rename, rm, stat, writeFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import { dirWithMode } from '../host/dir-mode.js';
import { run } from '../host/run.js';
import { VmletError, errorMessage } from '../model/errors.js';
import type { ImportControl, ImportRequest, ImportResult, StoredImage } from '../model/image.js';
import { backingPath } from './chain.js';
import { headerBytes, headerFormat, parseQcow2Header } from './image-header.js';
import type { ImageRoots } from './image-roots.js';

/** Where an import writes before its image is complete and checked; swept at start. */
export const PARTIAL_DIR = '.importing';
const META_DIR = '.meta';
const IMAGE_FILE = /^([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)\.(qcow2|raw)$/;
/**
 * Each VM's QEMU runs as a uid of its own and opens its disk's image (or, through an overlay, the
 * image as backing file) itself: the store and its images are open to every uid, whatever the
 * daemon's umask. An import in progress is the daemon's alone.
 */
const STORE_DIR_MODE = 0o755;
const IMAGE_MODE = 0o644;
const PARTIAL_DIR_MODE = 0o700;

export interface ImageStoreOptions {
  /** `<first image root>/store`. */
  dir: string;
  importRoots: ImageRoots;
  qemuImg: string;
}

interface Meta {
  source: string;
  createdAt: string;
}

/**
 * The image store: `<dir>/<name>.qcow2|raw`, written under `<dir>/.importing/` and renamed into
 * place only once complete and checked, so no VM can name half an image; a sidecar in
 * `<dir>/.meta/` keeps where it came from.
 */
export class ImageStore {
  private size = 0;
  /** The store's real path once sweep made it: image paths are compared with VMs' real disk paths. */
  private realDir: string | undefined;

  constructor(private readonly options: ImageStoreOptions) {}

  get dir(): string {
    return this.realDir ?? this.options.dir;
  }

  /** The store exists from the first import on; a node that never imports gets no store directory. */
  private async ensureDirs(): Promise<void> {
    const { dir } = this.options;
    dirWithMode(dir, STORE_DIR_MODE);
    dirWithMode(join(dir, PARTIAL_DIR), PARTIAL_DIR_MODE);
    await mkdir(join(dir, META_DIR), { recursive: true, mode: STORE_DIR_MODE });
    this.realDir = await realpath(dir);
  }

  async sweep(): Promise<string[]> {
    this.realDir = await realpath(this.options.dir).catch(() => undefined);
    if (this.realDir === undefined) return [];
    const partial = await readdir(join(this.dir, PARTIAL_DIR)).catch(() => [] as string[]);
    await Promise.all(partial.map((f) => rm(join(this.dir, PARTIAL_DIR, f), { force: true, recursive: true })));
    await this.list();
    return partial;
  }

  async list(): Promise<StoredImage[]> {
    const names = (await readdir(this.dir).catch(() => [] as string[])).filter((f) => IMAGE_FILE.test(f));
    const images = (await Promise.all(names.map((f) => this.describe(f))))
      .filter((i): i is StoredImage => i !== undefined)
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    this.size = images.reduce((sum, i) => sum + i.actualSizeBytes, 0);
    return images;
  }

  async get(name: string): Promise<StoredImage | undefined> {
    for (const format of ['qcow2', 'raw'] as const) {
      const image = await this.describe(`${name}.${format}`);
      if (image) return image;
    }
    return undefined;
  }

  async remove(name: string): Promise<void> {
    const image = await this.get(name);
    if (!image) throw new VmletError('NOT_FOUND', `image ${name} not found`);
    await rm(image.path, { force: true });
    await rm(join(this.dir, META_DIR, `${name}.json`), { force: true });
    await this.list();
  }

  async chainOf(path: string): Promise<string[]> {
    const chain: string[] = [];
    let name = path;
    for (let depth = 0; depth < 33; depth++) {
      const real = await realpath(name).catch(() => undefined);
      if (real === undefined || chain.includes(real)) break;
      chain.push(real);
      const head = await headerBytes(real).catch(() => undefined);
      if (!head || headerFormat(head) !== 'qcow2') break;
      let backing: string;
      try {
        backing = parseQcow2Header(head).backingFile;
      } catch {
        break;
      }
      if (!backing) break;
      name = backingPath(name, backing);
    }
    return chain;
  }

  sizeBytes(): number {
    return this.size;
  }

  async importImage(request: ImportRequest, control: ImportControl): Promise<ImportResult> {
    const { qemuImg } = this.options;
    await this.ensureDirs();
    const partialDir = join(this.dir, PARTIAL_DIR);
    const written: string[] = [];
    try {
      // Read in at the first import: the OVF parser and its XML library are not needed to serve.
      const { importSources } = await import('./import/sources.js');
      const plan = await importSources(request, { importRoots: this.options.importRoots, qemuImg, signal: control.signal });
      const names = plan.disks.map((_, i) => (i === 0 ? request.name : `${request.name}-disk${i + 1}`));
      for (const name of names.slice(1)) {
        if (await this.get(name)) throw new VmletError('ALREADY_EXISTS', `image ${name} already exists (the OVA's disk ${names.indexOf(name) + 1}); delete it or import under another name`);
        control.claim(name);
      }
      const ext = request.outputFormat;
      const total = plan.disks.reduce((sum, d) => sum + d.weightBytes, 0);
      let before = 0;
      const temps = names.map((name) => join(partialDir, `${name}.${ext}`));
      for (const [i, disk] of plan.disks.entries()) {
        const temp = temps[i]!;
        written.push(temp);
        const report = (percent: number): void => {
          const done = before + (disk.weightBytes * percent) / 100;
          control.onProgress({ percent: total ? (100 * done) / total : percent, bytesDone: Math.round(done), bytesTotal: total, current: disk.label });
        };
        report(0);
        await disk.convert(temp, ext, report);
        if (ext === 'qcow2') await checkQcow2(qemuImg, temp, control.signal);
        await chmod(temp, IMAGE_MODE);
        before += disk.weightBytes;
      }
      const createdAt = new Date().toISOString();
      const images: StoredImage[] = [];
      for (const [i, name] of names.entries()) {
        const meta: Meta = { source: plan.disks[i]!.label, createdAt };
        await writeFile(join(this.dir, META_DIR, `${name}.json`), JSON.stringify(meta));
        await rename(temps[i]!, join(this.dir, `${name}.${ext}`));
      }
      await syncDir(this.dir);
      for (const name of names) {
        const image = await this.describe(`${name}.${ext}`);
        if (image) images.push(image);
      }
      // Counted in, not re-read: a listing costs a stat and a header read per stored image.
      this.size += images.reduce((sum, i) => sum + i.actualSizeBytes, 0);
      return {
        images,
        ...(plan.propose ? { proposedSpec: plan.propose(images) } : {}),
        warnings: plan.warnings,
        bytesRead: total,
      };
    } catch (err) {
      await Promise.all(written.map((f) => rm(f, { force: true })));
      if (control.signal.aborted) throw new VmletError('CANCELLED', `import of ${request.name} was cancelled; nothing was kept`);
      throw err;
    }
  }

  private async describe(file: string): Promise<StoredImage | undefined> {
    const m = IMAGE_FILE.exec(file);
    if (!m) return undefined;
    const path = join(this.dir, file);
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile()) return undefined;
    const name = m[1]!;
    const format = m[2] as 'qcow2' | 'raw';
    const meta = await readFile(join(this.dir, META_DIR, `${name}.json`), 'utf8')
      .then((t) => JSON.parse(t) as Meta)
      .catch(() => undefined);
    return {
      name,
      path,
      format,
      virtualSizeBytes: format === 'raw' ? info.size : await virtualSize(path).catch(() => 0),
      actualSizeBytes: info.blocks * 512,
      source: meta?.source ?? '',
      createdAt: meta?.createdAt ?? info.mtime.toISOString(),
    };
  }
}

/** A qcow2 header's virtual size (bytes 24-31): no qemu-img for a listing. */
async function virtualSize(path: string): Promise<number> {
  const head = await headerBytes(path);
  return head.length >= 32 ? Number(head.readBigUInt64BE(24)) : 0;
}

async function checkQcow2(qemuImg: string, path: string, signal: AbortSignal): Promise<void> {
  try {
    await run(qemuImg, ['check', '-q', '-f', 'qcow2', path], { timeoutMs: 30 * 60_000, signal });
  } catch (err) {
    if (err instanceof VmletError && err.code === 'CANCELLED') throw err;
    throw new VmletError('INTERNAL', `the converted image failed qemu-img check, so it was not kept: ${errorMessage(err)}`);
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
