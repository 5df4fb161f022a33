import type { RunState } from '../model/machine.js';
import { errorMessage } from '../model/errors.js';
import { EFI_VARS_MIRROR } from '../model/qemu-ids.js';
import type { VmRecord } from '../vm/manager.js';
import type { MigrationHooks } from '../vm/ops/reconcile.js';
import { RELEASED, releaseHost } from '../vm/ops/release.js';
import { followGuest } from '../vm/ops/guest-info.js';
import type { IncomingMigrations } from './target.js';
import type { OutgoingMigrations, SourceContext } from './source.js';

/**
 * After a restart in the middle of a migration, each side ends in one consistent outcome:
 * a committed source finishes on the target; an uncommitted one rolls back and resumes (the
 * target never ran the guest, since it only runs it when a committed source says so); a target
 * whose stream was complete keeps waiting for the source's word while its QEMU lives, and
 * discards any other.
 */
export function migrationHooks(ctx: SourceContext, incoming: IncomingMigrations, outgoing: OutgoingMigrations): MigrationHooks {
  const { manager, registry } = ctx;
  return {
    async reconcile(record: VmRecord, runState: RunState | undefined): Promise<void> {
      const marker = record.status.migration!;
      const id = record.id;
      try {
        if (marker.role === 'target') {
          if (!runState) return await incoming.discard(record, 'incoming QEMU exited while vmlet was down');
          if (runState === 'running') {
            manager.transition(record, 'Running', `migrated from ${marker.peer}`, { migration: undefined });
            if (record.machine) followGuest(manager.env, record, record.machine);
            return;
          }
          // The stream came through this daemon's gate, gone with the old process: unless it was
          // complete, it can never be, and the source (not committed) rolls back.
          const progress = await record.machine?.migrationProgress().catch(() => undefined);
          if (progress?.status !== 'completed') return await incoming.discard(record, 'the incoming stream was cut by a vmlet restart');
          if (record.status.phase !== 'Incoming') manager.transition(record, 'Incoming', `adopted; waiting for ${marker.peer} to finish the migration`);
          record.log.info({ runState }, 'adopted incoming VM; waiting for the source');
          return;
        }
        registry.begin({ id, uid: marker.uid, source: ctx.nodeName, target: marker.peer });
        const peer = ctx.connect(marker.peer);
        if (marker.committed) {
          record.log.info('migration was committed before the restart: finishing it on the target');
          void record.queue.run(async () => {
            try {
              await outgoing.finishOnTarget(record, peer, marker.uid, marker.wasRunning ?? true);
              await outgoing.retireSource(record, `migrated to ${marker.peer}`);
            } finally {
              peer.close();
            }
          });
          return;
        }
        record.log.warn({ runState }, 'migration was interrupted by a vmlet restart before it committed: rolling back');
        const machine = record.machine;
        if (machine) {
          await machine.cancelMigration();
          await machine.abandonMirrors([...record.spec.disks.map((d) => d.name), EFI_VARS_MIRROR]);
        }
        // Not committed: the target never ran the guest, so resuming here is safe whether or not
        // the target hears about it now; telling it must not hold up the daemon's start.
        void outgoing.abortOnTarget(peer, marker.uid, id, 'source vmlet restarted before the migration committed').finally(() => peer.close());
        const reason = 'migration interrupted by a vmlet restart; rolled back';
        if (machine) {
          if (marker.wasRunning) await machine.run().catch(() => undefined);
          manager.transition(record, marker.wasRunning ? 'Running' : 'Paused', reason, { migration: undefined });
        } else {
          const { hypervisor } = manager.env;
          const pid = record.status.pid;
          if (pid && (await hypervisor.isAlive(pid))) await hypervisor.kill(pid).catch(() => undefined);
          await releaseHost(manager.env, record, record.status.nics);
          manager.transition(record, 'Failed', 'QEMU exited during a migration while vmlet was down', { ...RELEASED, migration: undefined });
        }
        registry.update(id, { phase: 'Failed', reason });
      } catch (err) {
        record.log.error({ err }, 'could not resolve the interrupted migration');
        manager.update(record, { reason: `interrupted migration not resolved: ${errorMessage(err)}` });
      }
    },
  };
}
