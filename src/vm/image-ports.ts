import type { ImportControl, ImportRequest, ImportResult, StoredImage } from '../model/image.js';

/** The image store (storage driver): files under `<first image root>/store`. */
export interface ImageStorePort {
  /** Removes what an interrupted import left; returns the files removed. Called once at start. */
  sweep(): Promise<string[]>;
  list(): Promise<StoredImage[]>;
  get(name: string): Promise<StoredImage | undefined>;
  remove(name: string): Promise<void>;
  importImage(request: ImportRequest, control: ImportControl): Promise<ImportResult>;
  /** The real paths QEMU opens for a disk: the file and its backing files; empty when it is gone. */
  chainOf(path: string): Promise<string[]>;
  /** Bytes the store's images take on disk, as of the last list, import or removal. */
  sizeBytes(): number;
}
