/** The migration registry (src/migration/registry.ts) as the collector's MigrationFiguresSource. */
import type { MigrationFigures, MigrationFiguresSource } from './vmi-collector.js';

/** The part of a migration record the metrics use (structural, so metrics do not depend on migration internals). */
export interface MigrationRecordLike {
  phase: string;
  dataProcessedBytes: number;
  dataRemainingBytes: number;
}

/** `get(id)` gives the current or last migration of a VM on this node, without I/O. */
export function migrationFiguresFrom(registry: { get(id: string): MigrationRecordLike | undefined }): MigrationFiguresSource {
  return {
    migrationFigures(id: string): MigrationFigures | undefined {
      const m = registry.get(id);
      if (!m) return undefined;
      return {
        dataProcessedBytes: m.dataProcessedBytes,
        dataRemainingBytes: m.dataRemainingBytes,
        succeeded: m.phase === 'Succeeded',
        failed: m.phase === 'Failed',
      };
    },
  };
}
