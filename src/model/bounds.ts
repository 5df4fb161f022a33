/**
 * Upper bounds on what a caller may send or hold, and the hook that counts each refusal
 * (`vmlet_input_rejected_total{bound}`). Pure: the metrics side subscribes with onBoundRejected.
 */
import { VmletError, type ErrorCode } from './errors.js';

export const MAX_LABEL_SELECTOR_BYTES = 4096;
export const MAX_LABELS_PER_VM = 64;
export const MAX_GRACE_PERIOD_SECONDS = 3600;
export const DEFAULT_MAX_VMS = 256;
/** Open WatchVms and WatchMigration streams, all callers together. */
export const MAX_WATCHERS = 128;
/** Outgoing migrations at once: each streams a guest's RAM and disks over the same links. */
export const MAX_MIGRATIONS_IN_FLIGHT = 4;
/** Default gRPC max receive message size. */
export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/** The bounds, as the `bound` label of vmlet_input_rejected_total names them. */
export const BOUNDS = [
  'label_selector_size',
  'labels_per_vm',
  'label_syntax',
  'vms_per_node',
  'watchers',
  'console_clients',
  'migrations_in_flight',
  'grace_period',
] as const;
export type Bound = (typeof BOUNDS)[number];

type Listener = (bound: Bound) => void;
const listeners = new Set<Listener>();

/** Calls `fn` for every refusal; returns the unsubscribe. */
export function onBoundRejected(fn: Listener): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** The error for an input beyond `bound`, counted. */
export function boundExceeded(bound: Bound, code: Extract<ErrorCode, 'INVALID_ARGUMENT' | 'RESOURCE_EXHAUSTED'>, message: string): VmletError {
  for (const fn of listeners) fn(bound);
  return new VmletError(code, message);
}
