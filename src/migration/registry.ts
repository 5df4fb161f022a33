import { EventEmitter } from 'node:events';

export type MigrationPhase = 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Cancelled';
export const TERMINAL: ReadonlySet<MigrationPhase> = new Set(['Succeeded', 'Failed', 'Cancelled']);

/** What GetMigration/WatchMigration report, and what metrics read. */
export interface MigrationInfo {
  /** The VM id. */
  id: string;
  uid: string;
  phase: MigrationPhase;
  source: string;
  target: string;
  dataTotalBytes: number;
  dataProcessedBytes: number;
  dataRemainingBytes: number;
  diskTotalBytes: number;
  diskProcessedBytes: number;
  downtimeMs: number;
  totalTimeMs: number;
  reason: string;
  postCopy: boolean;
  startedAt: number;
}

/** The current or last migration of each VM on this node (source side). */
export class MigrationRegistry extends EventEmitter<{ update: [MigrationInfo] }> {
  private readonly byVm = new Map<string, MigrationInfo>();
  /** Migrations that ended on this node, for metrics. */
  readonly totals = { succeeded: 0, failed: 0, cancelled: 0 };

  get(id: string): MigrationInfo | undefined {
    const m = this.byVm.get(id);
    return m && { ...m };
  }

  all(): MigrationInfo[] {
    return [...this.byVm.values()].map((m) => ({ ...m }));
  }

  begin(info: Omit<MigrationInfo, 'phase' | 'dataTotalBytes' | 'dataProcessedBytes' | 'dataRemainingBytes' | 'diskTotalBytes' | 'diskProcessedBytes' | 'downtimeMs' | 'totalTimeMs' | 'reason' | 'postCopy' | 'startedAt'>): MigrationInfo {
    const m: MigrationInfo = {
      ...info,
      phase: 'Pending',
      dataTotalBytes: 0,
      dataProcessedBytes: 0,
      dataRemainingBytes: 0,
      diskTotalBytes: 0,
      diskProcessedBytes: 0,
      downtimeMs: 0,
      totalTimeMs: 0,
      reason: '',
      postCopy: false,
      startedAt: Date.now(),
    };
    this.byVm.set(info.id, m);
    this.emit('update', { ...m });
    return m;
  }

  update(id: string, change: Partial<MigrationInfo>): void {
    const m = this.byVm.get(id);
    if (!m || TERMINAL.has(m.phase)) return;
    Object.assign(m, change);
    // While running: the time so far. The terminal update keeps the last figure, which for a
    // completed migration is QEMU's own total-time (set with the completion).
    if (change.totalTimeMs === undefined && !TERMINAL.has(m.phase)) m.totalTimeMs = Date.now() - m.startedAt;
    if (change.phase === 'Succeeded') this.totals.succeeded++;
    if (change.phase === 'Failed') this.totals.failed++;
    if (change.phase === 'Cancelled') this.totals.cancelled++;
    this.emit('update', { ...m });
  }
}
