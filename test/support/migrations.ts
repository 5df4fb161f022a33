import type { Node } from './two-nodes.js';
import { unary } from '../../src/api/grpc/client.js';
import type { Migration__Output } from '../../src/api/grpc/generated/vmlet/v1/Migration.js';
import type { MigrationOptions } from '../../src/api/grpc/generated/vmlet/v1/MigrationOptions.js';

/** The MigrationService of a node, as promises. */
export function migrations(n: Node) {
  const m = n.daemon.clients.migrations;
  return {
    migrate: (id: string, target: string, options: MigrationOptions = {}) => unary<{ id: string; target: string; options: MigrationOptions }, Migration__Output>(m.migrateVm.bind(m), { id, target, options }),
    get: (id: string) => unary<{ id: string }, Migration__Output>(m.getMigration.bind(m), { id }),
    cancel: (id: string) => unary<{ id: string }, Migration__Output>(m.cancelMigration.bind(m), { id }),
    /** Resolves with the terminal Migration. */
    watch: (id: string): Promise<Migration__Output[]> =>
      new Promise((resolve, reject) => {
        const seen: Migration__Output[] = [];
        const s = m.watchMigration({ id });
        s.on('data', (x: Migration__Output) => seen.push(x));
        s.on('end', () => resolve(seen));
        s.on('error', reject);
      }),
  };
}
