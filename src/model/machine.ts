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

/** The node's certificate, key and CA (PEM files), for QEMU's migration and NBD streams. */
export interface TlsFiles {
  ca: string;
  cert: string;
  key: string;
}

/**
 * TLS on a migration's streams (RAM and NBD), with the node's certificate. The target is the
 * server and lets in only a peer whose certificate subject is one of `peerSubjects`; the source
 * is the client and checks that the target's certificate names `hostname`.
 */
export type StreamTls =
  | { role: 'server'; files: TlsFiles; peerSubjects: string[] }
  | { role: 'client'; files: TlsFiles; hostname: string };

/** Migration capabilities vmlet sets on both sides. */
export interface MigrationCapabilities {
  events: boolean;
  pauseBeforeSwitchover?: boolean;
  autoConverge?: boolean;
  postcopyRam: boolean;
}

/** What a scrape asks a QEMU: three QMP queries and the balloon's `guest-stats` (a qom-get). */
export type MetricsQuery = 'query-cpus-fast' | 'query-blockstats' | 'query-balloon' | 'balloon-guest-stats';
