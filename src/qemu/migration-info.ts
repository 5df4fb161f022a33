/** The part of QMP `query-migrate`'s MigrationInfo that vmlet reads. */
export interface QueryMigrate {
  status?: string;
  ram?: { total?: number; transferred?: number; remaining?: number };
  /** ms, once the migration completed. */
  downtime?: number;
  'total-time'?: number;
  'error-desc'?: string;
}
