import type { MigrationHooks, VmRecord } from '../vm/manager.js';
import { errorMessage } from '../model/errors.js';
import { killHard } from '../qemu/launcher.js';
import { isAlive } from '../host/process.js';
import type { IncomingMigrations } from './target.js';
import type { OutgoingMigrations, SourceContext } from './source.js';
import { connectAgent } from './agent-client.js';

/**
 * After a restart in the middle of a migration, each side ends in one consistent outcome:
 * a committed source finishes on the target; an uncommitted one rolls back and resumes (the
 * target never ran the guest, since it only runs it when a committed source says so); a target
 * keeps waiting for the source's word while its QEMU lives, and discards a dead one.
 */
export function migrationHooks(ctx: SourceContext, incoming: IncomingMigrations, outgoing: OutgoingMigrations): MigrationHooks {
  const { manager, registry } = ctx;
  return {
    async reconcile(record: VmRecord, runState: string | undefined): Promise<void> {
      const marker = record.status.migration!;
      const id = record.spec.id;
      try {
        if (marker.role === 'target') {
          if (!runState) return await incoming.discard(record, 'incoming QEMU exited while vmlet was down');
          if (runState === 'running') {
            manager.setPhase(record, 'Running', `migrated from ${marker.peer}`, { migration: undefined });
            return;
          }
          if (record.status.phase !== 'Incoming') manager.setPhase(record, 'Incoming', `adopted; waiting for ${marker.peer} to finish the migration`);
          record.log.info({ runState }, 'adopted incoming VM; waiting for the source');
          return;
        }
        registry.begin({ id, uid: marker.uid, source: ctx.nodeName, target: marker.peer });
        const agent = connectAgent(marker.peer, ctx.tls);
        if (marker.committed) {
          record.log.info('migration was committed before the restart: finishing it on the target');
          void record.queue.run(async () => {
            try {
              await outgoing.finishOnTarget(record, agent, marker.uid, marker.wasRunning ?? true);
              await outgoing.retireSource(record, `migrated to ${marker.peer}`);
            } finally {
              agent.close();
            }
          });
          return;
        }
        record.log.warn({ runState }, 'migration was interrupted by a vmlet restart before it committed: rolling back');
        const qmp = record.instance?.qmp;
        if (qmp) {
          await qmp.execute('migrate_cancel').catch(() => undefined);
          for (const d of record.spec.disks) {
            await qmp.execute('block-job-cancel', { device: `mig-${d.name}`, force: true }).catch(() => undefined);
            await qmp.execute('blockdev-del', { 'node-name': `mig-${d.name}` }).catch(() => undefined);
          }
        }
        // Not committed: the target never ran the guest, so resuming here is safe whether or not
        // the target hears about it now; telling it must not hold up the daemon's start.
        void outgoing.abortOnTarget(agent, marker.uid, id, 'source vmlet restarted before the migration committed').finally(() => agent.close());
        if (qmp && marker.wasRunning) await qmp.execute('cont').catch(() => undefined);
        const reason = 'migration interrupted by a vmlet restart; rolled back';
        if (qmp) manager.setPhase(record, marker.wasRunning ? 'Running' : 'Paused', reason, { migration: undefined });
        else {
          const pid = record.status.pid;
          if (pid && (await isAlive(pid))) await killHard(pid).catch(() => undefined);
          await manager.lifecycle.cleanupHost(record, record.status.nics);
          manager.setPhase(record, 'Failed', `QEMU exited during a migration while vmlet was down`, { migration: undefined, pid: 0, nics: [] });
        }
        registry.update(id, { phase: 'Failed', reason });
      } catch (err) {
        record.log.error({ err }, 'could not resolve the interrupted migration');
        manager.update(record, { reason: `interrupted migration not resolved: ${errorMessage(err)}` });
      }
    },
  };
}
