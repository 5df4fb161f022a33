/** QEMU's MigrationStatus: `query-migrate`'s status and the MIGRATION event's `status`. */
export type MigrationStatus =
  | 'none'
  | 'setup'
  | 'cancelling'
  | 'cancelled'
  | 'active'
  | 'postcopy-active'
  | 'postcopy-paused'
  | 'postcopy-recover'
  | 'completed'
  | 'failed'
  | 'colo'
  | 'pre-switchover'
  | 'device'
  | 'wait-unplug';

/** The part of QMP `query-migrate`'s MigrationInfo that vmlet reads. */
export interface QueryMigrate {
  status?: MigrationStatus;
  ram?: { total?: number; transferred?: number; remaining?: number };
  /** ms, once the migration completed. */
  downtime?: number;
  'total-time'?: number;
  'error-desc'?: string;
}

/** The migration capabilities vmlet sets (`migrate-set-capabilities`). */
export type MigrationCapability = 'events' | 'pause-before-switchover' | 'auto-converge' | 'postcopy-ram';

/** The migration parameters vmlet sets (`migrate-set-parameters`); absent ones keep QEMU's value. */
export interface MigrationParameters {
  /** Bytes per second. */
  'max-bandwidth'?: number;
  /** Milliseconds. */
  'downtime-limit'?: number;
  /** The id of a tls-creds-x509 object: the stream runs over TLS. */
  'tls-creds'?: string;
  /** Source: the name the target's certificate must carry (default: the URI's host). */
  'tls-hostname'?: string;
  /** Target: the id of an authz object naming who may connect. */
  'tls-authz'?: string;
}
