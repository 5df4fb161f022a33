/** `query-blockstats` → per-drive counters, named by the VM's disk name. Pure. */
import { diskNodeName } from '../model/qemu-ids.js';

export interface DriveCounters {
  readOps: number;
  writeOps: number;
  readBytes: number;
  writeBytes: number;
  readSeconds: number;
  writeSeconds: number;
  flushOps: number;
  flushSeconds: number;
}

interface BlockStatsEntry {
  device?: string;
  'node-name'?: string;
  qdev?: string;
  stats?: Record<string, unknown>;
}

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

/**
 * Which disk of the spec an entry is: its root node is `drive-<disk>` (model/qemu-ids.ts), or its device
 * is `/machine/peripheral/disk-<disk>/…`; undefined for anything else.
 */
export function driveOf(entry: BlockStatsEntry, disks: readonly string[]): string | undefined {
  const byNode = disks.find((d) => entry['node-name'] === diskNodeName(d));
  if (byNode !== undefined) return byNode;
  const m = /^\/machine\/peripheral\/disk-([^/]+)(\/|$)/.exec(entry.qdev ?? '');
  if (m && disks.includes(m[1]!)) return m[1];
  return entry.device && disks.includes(entry.device) ? entry.device : undefined;
}

export function driveCounters(blockstats: unknown, disks: readonly string[]): Map<string, DriveCounters> {
  const out = new Map<string, DriveCounters>();
  if (!Array.isArray(blockstats)) return out;
  for (const entry of blockstats as BlockStatsEntry[]) {
    const drive = driveOf(entry, disks);
    const s = entry.stats;
    if (drive === undefined || !s || out.has(drive)) continue;
    out.set(drive, {
      readOps: num(s.rd_operations),
      writeOps: num(s.wr_operations),
      readBytes: num(s.rd_bytes),
      writeBytes: num(s.wr_bytes),
      readSeconds: num(s.rd_total_time_ns) / 1e9,
      writeSeconds: num(s.wr_total_time_ns) / 1e9,
      flushOps: num(s.flush_operations),
      flushSeconds: num(s.flush_total_time_ns) / 1e9,
    });
  }
  return out;
}
