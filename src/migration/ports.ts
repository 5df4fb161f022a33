/** What the migration code needs of the other node's vmlet; implemented over gRPC (api/grpc/migration-peer.ts). */
import type { DiskExport } from '../model/machine.js';
import type { NicStatus, VmSpec } from '../model/vm.js';

/** The source asks the target to get an Incoming VM ready. */
export interface PrepareIncoming {
  uid: string;
  spec: VmSpec;
  /** The NICs as plugged on the source: the target recreates MACs and root ports. */
  nics: NicStatus[];
  pciPorts: number;
  /** Disks whose per-VM overlay is mirrored to the target over NBD; EFI_VARS_MIRROR for a UEFI VM's variables store. */
  mirroredDisks: string[];
  sourceNode: string;
  allowPostCopy: boolean;
  /** The subject of the source's certificate (its DN forms); the only peer let into the streams under TLS. */
  sourceSubjects?: string[];
  /** The address the source called from; the migration stream is let in only from there. Absent: loopback only. */
  sourceAddress?: string;
}

/** Where the target listens: the migration stream's URI and one NBD export per mirrored disk. */
export interface IncomingReady {
  migrationUri: string;
  exports: DiskExport[];
}

/**
 * The target node's vmlet, as the source sees it. Errors are VmletErrors whose code is the one
 * the target answered with (UNAVAILABLE or DEADLINE_EXCEEDED when it could not be reached).
 */
export interface MigrationPeer {
  prepareIncoming(request: PrepareIncoming): Promise<IncomingReady>;
  /** Tells the target to run (or keep paused) the guest it received. */
  finishIncoming(uid: string, vmId: string, resume: boolean): Promise<void>;
  abortIncoming(uid: string, vmId: string, reason: string): Promise<void>;
  close(): void;
}

/** Opens a peer for `target` (HOST:PORT of its vmlet). */
export type PeerConnector = (target: string) => MigrationPeer;
