import { describe, expect, it } from 'vitest';
import { driveCounters, driveOf } from '../../src/metrics/blockstats.js';

const stats = (n: number) => ({
  rd_operations: n,
  wr_operations: n + 1,
  rd_bytes: n * 512,
  wr_bytes: (n + 1) * 512,
  rd_total_time_ns: n * 1e6,
  wr_total_time_ns: 2e9,
  flush_operations: 3,
  flush_total_time_ns: 5e8,
  timed_stats: [],
  account_invalid: true,
});

// Shaped like QEMU 7.2's answer for -blockdev disks (argv.ts naming): no `device`, the root
// node `drive-<disk>`, the device `/machine/peripheral/disk-<disk>/virtio-backend`.
const BLOCKSTATS = [
  { device: '', 'node-name': 'drive-root', qdev: '/machine/peripheral/disk-root/virtio-backend', stats: stats(10), parent: { 'node-name': 'file-root', stats: stats(99) } },
  { device: '', qdev: '/machine/peripheral/disk-data/virtio-backend', stats: stats(20) },
  { device: '', 'node-name': 'something-else', stats: stats(30) },
];

describe('driveCounters', () => {
  it('maps query-blockstats to per-disk counters, times in seconds, by the spec disk name', () => {
    const m = driveCounters(BLOCKSTATS, ['root', 'data']);
    expect([...m.keys()]).toEqual(['root', 'data']);
    expect(m.get('root')).toEqual({
      readOps: 10,
      writeOps: 11,
      readBytes: 5120,
      writeBytes: 5632,
      readSeconds: 0.01,
      writeSeconds: 2,
      flushOps: 3,
      flushSeconds: 0.5,
    });
    expect(m.get('data')?.readOps).toBe(20);
  });

  it('ignores entries of no spec disk and answers that are not arrays', () => {
    expect(driveCounters(BLOCKSTATS, []).size).toBe(0);
    expect(driveCounters({ return: 1 }, ['root']).size).toBe(0);
  });

  it('driveOf: node name, then qdev path, then legacy device name', () => {
    expect(driveOf({ 'node-name': 'drive-a' }, ['a'])).toBe('a');
    expect(driveOf({ qdev: '/machine/peripheral/disk-b' }, ['b'])).toBe('b');
    expect(driveOf({ qdev: '/machine/peripheral/disk-b/virtio-backend' }, ['a'])).toBeUndefined();
    expect(driveOf({ device: 'c' }, ['c'])).toBe('c');
  });

  it('missing or odd numbers become 0', () => {
    const m = driveCounters([{ 'node-name': 'drive-x', stats: { rd_operations: 'many' } }], ['x']);
    expect(m.get('x')).toEqual({ readOps: 0, writeOps: 0, readBytes: 0, writeBytes: 0, readSeconds: 0, writeSeconds: 0, flushOps: 0, flushSeconds: 0 });
  });
});
