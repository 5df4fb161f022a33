/** The migration registry (src/migration/registry.ts) as the collector's MigrationFiguresSource. */
import type { MigrationFigures, MigrationFiguresSource } from './vmi-collector.js';

/** The part of a migration record the metrics use (structural, so metrics do not depend on migration internals). */
export interface MigrationRecordLike {
  uid: string;
  phase: string;
  dataTotalBytes: number;
  dataProcessedBytes: number;
  dataRemainingBytes: number;
  /** Epoch ms. */
  startedAt: number;
  /** Once it ended, its whole duration. */
  totalTimeMs: number;
}

const ENDED = new Set(['Succeeded', 'Failed', 'Cancelled']);

/** `get(id)` gives the current or last migration of a VM on this node, without I/O. */
export function migrationFiguresFrom(registry: { get(id: string): MigrationRecordLike | undefined }): MigrationFiguresSource {
  return {
    migrationFigures(id: string): MigrationFigures | undefined {
      const m = registry.get(id);
      if (!m) return undefined;
      return {
        uid: m.uid,
        dataTotalBytes: m.dataTotalBytes,
        dataProcessedBytes: m.dataProcessedBytes,
        dataRemainingBytes: m.dataRemainingBytes,
        succeeded: m.phase === 'Succeeded',
        failed: m.phase === 'Failed',
        startedAtSeconds: Math.floor(m.startedAt / 1000),
        ...(ENDED.has(m.phase) ? { endedAtSeconds: Math.floor((m.startedAt + m.totalTimeMs) / 1000) } : {}),
      };
    },
  };
}
