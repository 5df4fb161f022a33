import { basename } from 'node:path';
import { invalidArgument, notFound, VmletError, failedPrecondition, errorMessage } from '../model/errors.js';
import type { ImportResult, ImportUpdate, StoredImage } from '../model/image.js';
import type { Vm } from '../model/vm.js';
import type { Logger } from '../host/log.js';
import type { ImageStorePort } from './image-ports.js';
import { validateVmId } from './validate.js';

/** An image with the VMs that use it. */
export interface ImageView extends StoredImage {
  usedBy: string[];
}

export interface ImportCall {
  sourcePath: string;
  name: string;
  format: string;
  outputFormat: string;
  bridge: string;
}

/** Told about every import's end: metrics. */
export interface ImportObserver {
  (result: string, bytesRead: number): void;
}

interface Running {
  controller: AbortController;
  done: Promise<unknown>;
  source: string;
  /** Every store name the import holds (an OVA's further disks too). */
  names: Set<string>;
}

/**
 * The image store's domain: one import per name at a time, cancellation, and which VMs use an
 * image (so none is deleted under a VM). The store driver does the files and the conversion.
 */
export class ImageImports {
  private readonly running = new Map<string, Running>();

  constructor(
    private readonly store: ImageStorePort,
    private readonly vms: () => readonly Vm[],
    private readonly log: Logger,
    private readonly observe?: ImportObserver,
  ) {}

  /** Removes what imports interrupted by a crash left. */
  async init(): Promise<void> {
    const removed = await this.store.sweep();
    if (removed.length) this.log.info({ removed }, 'removed partial images of interrupted imports');
  }

  storeBytes(): number {
    return this.store.sizeBytes();
  }

  /**
   * Imports a file; `onProgress` hears how far it is. Aborting `signal` (the client went away)
   * cancels it. ALREADY_EXISTS when the name is taken in the store or by a running import.
   */
  async import(call: ImportCall, signal: AbortSignal, onProgress: (u: ImportUpdate) => void): Promise<ImportResult & { images: ImageView[] }> {
    if (!call.sourcePath) throw invalidArgument('source_path', 'is required: a file under an --import-root directory');
    const name = validateVmId(call.name || defaultName(call.sourcePath), 'name');
    const outputFormat = call.outputFormat || 'qcow2';
    if (outputFormat !== 'qcow2' && outputFormat !== 'raw') throw invalidArgument('output_format', `"${outputFormat}" is not qcow2 or raw`);
    const holder = this.holderOf(name);
    if (holder) throw new VmletError('ALREADY_EXISTS', `an import of ${name} is running (from ${holder.source}); wait for it or cancel it`);
    const controller = new AbortController();
    const running: Running = { controller, done: Promise.resolve(), source: call.sourcePath, names: new Set([name]) };
    this.running.set(name, running);
    const onAbort = (): void => controller.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) controller.abort();
    const work = (async () => {
      if (await this.store.get(name)) throw new VmletError('ALREADY_EXISTS', `image ${name} already exists; delete it or import under another name`);
      return this.store.importImage(
        { sourcePath: call.sourcePath, name, ...(call.format ? { format: call.format } : {}), outputFormat, bridge: call.bridge },
        {
          signal: controller.signal,
          onProgress,
          claim: (extra) => {
            const other = this.holderOf(extra);
            if (other && other !== running) throw new VmletError('ALREADY_EXISTS', `an import of ${extra} is running; wait for it or cancel it`);
            running.names.add(extra);
          },
        },
      );
    })();
    running.done = work.catch(() => undefined);
    try {
      const result = await work;
      this.observe?.('ok', result.bytesRead);
      this.log.info({ image: name, source: call.sourcePath, images: result.images.map((i) => i.name), warnings: result.warnings.length }, 'image imported');
      return { ...result, images: result.images.map((i) => ({ ...i, usedBy: [] })) };
    } catch (err) {
      const code = err instanceof VmletError ? err.code : 'INTERNAL';
      this.observe?.(code === 'CANCELLED' ? 'cancelled' : 'error', 0);
      this.log.info({ image: name, source: call.sourcePath, code, error: errorMessage(err) }, 'image import failed');
      throw err;
    } finally {
      signal.removeEventListener('abort', onAbort);
      this.running.delete(name);
    }
  }

  /** Stops the import of `name`; resolves once its files are gone. NOT_FOUND when none runs. */
  async cancel(name: string): Promise<{ name: string; source: string }> {
    const running = this.running.get(validateVmId(name, 'name'));
    if (!running) throw notFound(`running import of ${name}`);
    running.controller.abort();
    await running.done;
    return { name, source: running.source };
  }

  async list(): Promise<ImageView[]> {
    const images = await this.store.list();
    const users = await this.users(images);
    return images.map((i) => ({ ...i, usedBy: users.get(i.path) ?? [] }));
  }

  async get(name: string): Promise<ImageView> {
    const image = await this.store.get(validateVmId(name, 'name'));
    if (!image) throw notFound(`image ${name}`);
    return { ...image, usedBy: (await this.users([image])).get(image.path) ?? [] };
  }

  /** FAILED_PRECONDITION while a VM uses the image (or an import writes it). */
  async delete(name: string): Promise<void> {
    const image = await this.get(name);
    if (this.holderOf(image.name)) throw failedPrecondition(`image ${name} is being imported; cancel the import first`);
    if (image.usedBy.length) {
      throw failedPrecondition(`image ${name} is used by VM${image.usedBy.length > 1 ? 's' : ''} ${image.usedBy.join(', ')} (as a disk or a disk's backing file); delete those VMs or their disks first`);
    }
    await this.store.remove(image.name);
    this.log.info({ image: name }, 'image deleted');
  }

  private holderOf(name: string): Running | undefined {
    for (const r of this.running.values()) if (r.names.has(name)) return r;
    return undefined;
  }

  /** Image path → the VMs whose disks open it, directly or down their backing chains. */
  private async users(images: readonly StoredImage[]): Promise<Map<string, string[]>> {
    const wanted = new Set(images.map((i) => i.path));
    const users = new Map<string, string[]>();
    if (wanted.size === 0) return users;
    for (const vm of this.vms()) {
      const paths = new Set([...vm.spec.disks.map((d) => d.imagePath), ...vm.status.disks.map((d) => d.path)]);
      const opened = new Set((await Promise.all([...paths].map((p) => this.store.chainOf(p)))).flat());
      for (const path of opened) {
        if (!wanted.has(path)) continue;
        const list = users.get(path) ?? [];
        if (!list.includes(vm.spec.id)) list.push(vm.spec.id);
        users.set(path, list);
      }
    }
    return users;
  }
}

/** An image name from a file name: without its extension, made a DNS label. */
export function defaultName(sourcePath: string): string {
  const base = basename(sourcePath).replace(/\.(ova|ovf|vmdk|qcow2|img|raw|vhdx|vdi)$/i, '');
  const label = base
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+/, '')
    .slice(0, 63)
    .replace(/-+$/, '');
  return label || 'image';
}
