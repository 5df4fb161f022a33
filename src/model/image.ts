import type { VmSpec } from './vm.js';

/** Types of the image store, shared by the domain (vm/images.ts) and the storage driver. */

/** An image of the store, as the store describes it. */
export interface StoredImage {
  name: string;
  /** Its real path: `<store>/<name>.<format>`. */
  path: string;
  format: 'qcow2' | 'raw';
  virtualSizeBytes: number;
  actualSizeBytes: number;
  /** What it was imported from. */
  source: string;
  /** ISO time of the import's end. */
  createdAt: string;
}

export interface ImportRequest {
  sourcePath: string;
  /** Checked by the domain: a DNS label, free in the store and among running imports. */
  name: string;
  /** A format the caller names; the file's header must agree. Absent: detected. */
  format?: string;
  outputFormat: 'qcow2' | 'raw';
  /** The bridge the proposed NICs name; empty: left for the operator (with a warning). */
  bridge: string;
}

export interface ImportUpdate {
  percent: number;
  bytesDone: number;
  bytesTotal: number;
  /** The disk being converted. */
  current: string;
}

export interface ImportResult {
  /** Every image made, the boot disk first. */
  images: StoredImage[];
  /** For an OVA or OVF: the VM the descriptor describes, on the imported images. */
  proposedSpec?: VmSpec;
  warnings: string[];
  /** Bytes of source converted. */
  bytesRead: number;
}

export interface ImportControl {
  /** Aborting kills the conversion and removes what it wrote. */
  signal: AbortSignal;
  onProgress(update: ImportUpdate): void;
  /** Every further store name the import needs (an OVA's second disk …); throws when one is taken. */
  claim(name: string): void;
}

