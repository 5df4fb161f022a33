import type { Migration__Output } from '../../api/grpc/generated/vmlet/v1/Migration.js';
import type { MigrateVmRequest } from '../../api/grpc/generated/vmlet/v1/MigrateVmRequest.js';
import { parseCount } from '../args.js';
import { oneLine, toJson } from '../format.js';
import type { Session } from '../session.js';
import { positionals, runClientVerb, type ClientVerbContext, type Verb } from '../verb.js';

const MiB = 1024 * 1024;

/** `web-1  RUNNING  42.0/256.0 MiB  1200 ms  reason` */
function migrationLine(m: Migration__Output): string {
  const phase = m.phase.replace(/^MIGRATION_PHASE_/, '');
  const data = m.dataTotalBytes ? `${(m.dataProcessedBytes / MiB).toFixed(1)}/${(m.dataTotalBytes / MiB).toFixed(1)} MiB` : '-';
  const extra = [m.downtimeMs ? `downtime ${m.downtimeMs} ms` : '', m.postCopy ? 'post-copy' : '', m.reason ? oneLine(m.reason) : ''].filter(Boolean).join(', ');
  return `${m.id}  ${phase}  ${m.source} -> ${m.target}  ${data}  ${m.totalTimeMs} ms${extra ? `  ${extra}` : ''}\n`;
}

/** Streams WatchMigration lines until a terminal phase; exit 0 only when it succeeded. */
function follow(ctx: ClientVerbContext, session: Session, id: string): Promise<number> {
  return new Promise((resolve, reject) => {
    let last: Migration__Output | undefined;
    const stream = session.migrations.watchMigration({ id });
    stream.on('data', (m: Migration__Output) => {
      last = m;
      ctx.io.stdout(ctx.globals.output === 'json' ? toJson(m, false) : migrationLine(m));
    });
    stream.on('end', () => resolve(last?.phase === 'MIGRATION_PHASE_SUCCEEDED' ? 0 : 1));
    stream.on('error', reject);
  });
}

export const migrateVerb: Verb = {
  name: 'migrate',
  summary: 'live-migrate a VM to the vmlet at HOST:PORT',
  usage: `Usage: vmlet migrate ID TARGET [options]
  TARGET                    HOST:PORT of the target node's vmlet
  --bandwidth BYTES         max bandwidth in bytes per second (default: QEMU's)
  --downtime MS             max downtime at switch-over in ms (default: QEMU's, 300)
  --auto-converge           throttle the guest's vCPUs when the migration does not converge
  --post-copy               switch to post-copy instead of failing on a timeout
  --progress-timeout S      abort after S seconds without progress (default 150)
  --timeout-per-gib S       abort after S seconds per GiB of memory (default 150)
  --wait                    print progress until the migration ends; exit 1 unless it succeeded`,
  run: (argv, io) =>
    runClientVerb(
      migrateVerb,
      argv,
      io,
      {
        bandwidth: { type: 'string' },
        downtime: { type: 'string' },
        'auto-converge': { type: 'boolean' },
        'post-copy': { type: 'boolean' },
        'progress-timeout': { type: 'string' },
        'timeout-per-gib': { type: 'string' },
        wait: { type: 'boolean' },
      },
      ({ values, positionals: rest }) => {
        const [id = '', target = ''] = positionals(rest, ['ID', 'TARGET']);
        const count = (flag: string, raw: string | undefined) => (raw === undefined ? 0 : parseCount(flag, raw, Number.MAX_SAFE_INTEGER));
        const options = {
          maxBandwidthBytesPerSecond: count('--bandwidth', values.bandwidth),
          downtimeLimitMs: count('--downtime', values.downtime),
          allowAutoConverge: values['auto-converge'] ?? false,
          allowPostCopy: values['post-copy'] ?? false,
          progressTimeoutSeconds: count('--progress-timeout', values['progress-timeout']),
          completionTimeoutPerGibSeconds: count('--timeout-per-gib', values['timeout-per-gib']),
        };
        return async (ctx) => {
          const m = await ctx.session.callMigration<MigrateVmRequest, Migration__Output>((c) => c.migrateVm.bind(c), { id, target, options }, 120);
          if (values.wait) return follow(ctx, ctx.session, id);
          ctx.io.stdout(ctx.globals.output === 'json' ? toJson(m) : migrationLine(m));
          return 0;
        };
      },
    ),
};

export const migrationVerb: Verb = {
  name: 'migration',
  summary: "show (or follow, or cancel) a VM's current or last migration",
  usage: `Usage: vmlet migration ID [--watch | --cancel]
  --watch   print progress until the migration ends
  --cancel  cancel it; the guest keeps running on this node`,
  run: (argv, io) =>
    runClientVerb(migrationVerb, argv, io, { watch: { type: 'boolean' }, cancel: { type: 'boolean' } }, ({ values, positionals: rest }) => {
      const [id = ''] = positionals(rest, ['ID']);
      return async (ctx) => {
        if (values.watch) return follow(ctx, ctx.session, id);
        const m = values.cancel
          ? await ctx.session.callMigration<{ id: string }, Migration__Output>((c) => c.cancelMigration.bind(c), { id }, 60)
          : await ctx.session.callMigration<{ id: string }, Migration__Output>((c) => c.getMigration.bind(c), { id });
        ctx.io.stdout(ctx.globals.output === 'json' ? toJson(m) : migrationLine(m));
        return 0;
      };
    }),
};
