import { VmletError } from '../../errors.js';
import type { MigrationServiceHandlers } from './generated/vmlet/v1/MigrationService.js';
import { type CallContext, streamHandler, unaryHandler } from './observe.js';

const unimplemented = (what: string) => async (): Promise<never> => {
  throw new VmletError('UNIMPLEMENTED', `${what}: live migration is not implemented by this vmlet yet`);
};

export function migrationServiceHandlers(ctx: CallContext): MigrationServiceHandlers {
  return {
    MigrateVm: unaryHandler(ctx, 'MigrateVm', unimplemented('MigrateVm')),
    GetMigration: unaryHandler(ctx, 'GetMigration', unimplemented('GetMigration')),
    CancelMigration: unaryHandler(ctx, 'CancelMigration', unimplemented('CancelMigration')),
    WatchMigration: streamHandler(ctx, 'WatchMigration', unimplemented('WatchMigration')),
  };
}
