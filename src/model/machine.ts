/** What the domain learns from a running QEMU, in its own words (no QMP names). */

/** Something the guest or QEMU did between operations. */
export type MachineEvent =
  | { kind: 'paused' }
  | { kind: 'resumed' }
  | { kind: 'reset'; guest: boolean }
  | { kind: 'io-error'; detail: Record<string, unknown> }
  | { kind: 'panicked'; detail: Record<string, unknown> }
  | { kind: 'shutdown'; guest: boolean; reason: string };

/** Why QEMU went away, when it said so before its monitor closed. */
export interface ShutdownCause {
  guest: boolean;
  reason: string;
}

/** QEMU's run state (query-status), e.g. `running`, `paused`, `prelaunch`, `inmigrate`, `postmigrate`. */
export type RunState = string;

/** Progress of an outgoing or incoming migration, as QEMU reports it. */
export interface MigrationProgress {
  status: string;
  totalBytes?: number;
  transferredBytes?: number;
  remainingBytes?: number;
  downtimeMs?: number;
  totalTimeMs?: number;
  error?: string;
}

/** Where a disk of a migrating VM is mirrored to: an NBD export on the target. */
export interface DiskExport {
  disk: string;
  host: string;
  port: number;
  name: string;
}

/** Migration capabilities vmlet sets on both sides. */
export interface MigrationCapabilities {
  events: boolean;
  pauseBeforeSwitchover?: boolean;
  autoConverge?: boolean;
  postcopyRam: boolean;
}
