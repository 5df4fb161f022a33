/**
 * Where a vmlet migration's time goes, from the two daemons' JSON logs (same host, same clock;
 * pino stamps whole milliseconds, so single segments are ±1 ms; read the medians):
 *
 *   A MigrateVm in ─ toPrepare ─▶ B PrepareIncoming in ─ prepare ─▶ out ─ stream ─▶ B FinishIncoming in
 *   ─ finish ─▶ out ─ retire ─▶ A "VM deleted" (registry SUCCEEDED right after)
 */
import { summarise, type Stats } from './stats.js';
import { loggedAt, parseLogLines, type LogLine } from './log-lines.js';

export interface MigrationBreakdown {
  /** A's MigrateVm handler in → B's PrepareIncoming handler in: phase Migrating persisted, a new gRPC channel to B (connect, HTTP/2). */
  toPrepareMs: Stats;
  /** B's PrepareIncoming, server side: checks, state files, target QEMU spawned with -incoming defer, QMP handshake, migrate-set-capabilities, migrate-incoming. */
  prepareMs: Stats;
  /** PrepareIncoming out → FinishIncoming in: reply to A, migrate-set-capabilities/-parameters, migrate, QEMU streaming, the query-migrate poll noticing completion, commit persisted. */
  streamMs: Stats;
  /** B's FinishIncoming, server side: query-migrate (completed), nbd-server-stop, cont, phase Running. */
  finishMs: Stats;
  /** FinishIncoming out → A's "VM deleted": reply to A, source QEMU quit and waited for, its files removed. */
  retireMs: Stats;
  /** A's MigrateVm handler in → A's "VM deleted". */
  serverTotalMs: Stats;
}

const at = loggedAt;
const begin = (l: LogLine | undefined): number | undefined => (l && typeof l.durationMs === 'number' ? at(l)! - l.durationMs : undefined);

/** undefined when a log lacks the lines (another log format, a changed message); the result then omits the breakdown. */
export function migrationBreakdown(sourceLog: string, targetLog: string, ids: readonly string[]): MigrationBreakdown | undefined {
  if (ids.length === 0) return undefined;
  const a = parseLogLines(sourceLog);
  const b = parseLogLines(targetLog);
  const cols: Record<keyof MigrationBreakdown, number[]> = { toPrepareMs: [], prepareMs: [], streamMs: [], finishMs: [], retireMs: [], serverTotalMs: [] };
  for (const id of ids) {
    const migrate = a.find((l) => l.vm === id && l.method === 'MigrateVm');
    const deleted = a.find((l) => l.vm === id && l.msg === 'VM deleted');
    const prepareIdx = b.findIndex((l) => l.vm === id && l.method === 'PrepareIncoming');
    const prepare = b[prepareIdx];
    // FinishIncoming's line names no VM: the first one after this VM's PrepareIncoming (runs are sequential).
    const finish = b.slice(prepareIdx + 1).find((l) => l.method === 'FinishIncoming');
    const t = [begin(migrate), begin(prepare), at(prepare), begin(finish), at(finish), at(deleted)];
    if (prepareIdx < 0 || t.some((x) => x === undefined)) return undefined;
    const [m0, p0, p1, f0, f1, d] = t as number[];
    cols.toPrepareMs.push(p0! - m0!);
    cols.prepareMs.push(p1! - p0!);
    cols.streamMs.push(f0! - p1!);
    cols.finishMs.push(f1! - f0!);
    cols.retireMs.push(d! - f1!);
    cols.serverTotalMs.push(d! - m0!);
  }
  return Object.fromEntries(Object.entries(cols).map(([k, v]) => [k, summarise(v)])) as unknown as MigrationBreakdown;
}
