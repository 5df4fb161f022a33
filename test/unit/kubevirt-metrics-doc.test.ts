/**
 * The series vmlet shares with KubeVirt, held against KubeVirt's metric documentation (an excerpt
 * in fixtures/kubevirt-metrics.md): name, type and help text of the table, and of what a scrape
 * really writes, with KubeVirt's label sets.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { AgentMetrics } from '../../src/metrics/agent-metrics.js';
import { KUBEVIRT_SERIES } from '../../src/metrics/kubevirt-series.js';
import type { QmpQuerier, ScrapeTarget } from '../../src/metrics/vmi-collector.js';
import { parseMetrics } from '../support/metrics-text.js';
import { promtoolCheckMetrics } from '../support/prometheus.js';

interface DocRow {
  type: string;
  description: string;
}

/** `| name | Metric | Type | Description |` rows; a description may itself hold `|` only escaped, which KubeVirt's do not. */
function docRows(markdown: string): Map<string, DocRow> {
  const rows = new Map<string, DocRow>();
  for (const line of markdown.split('\n')) {
    const m = /^\| (kubevirt_[a-z0-9_]+) \| Metric \| (Counter|Gauge|Histogram) \| (.*) \|$/.exec(line);
    if (m) rows.set(m[1]!, { type: m[2]!.toLowerCase(), description: m[3]! });
  }
  return rows;
}

const DOC = docRows(readFileSync(new URL('./fixtures/kubevirt-metrics.md', import.meta.url), 'utf8'));
const TABLE = Object.values(KUBEVIRT_SERIES);

describe('the shared series against KubeVirt\'s documentation', () => {
  it('the fixture holds a row for every series of the table', () => {
    expect(DOC.size).toBe(TABLE.length);
    expect(TABLE.filter((s) => !DOC.has(s.name)).map((s) => s.name)).toEqual([]);
  });

  it.each(TABLE.map((s) => [s.name, s] as const))('%s: type and help as KubeVirt documents them', (name, s) => {
    const row = DOC.get(name)!;
    expect(s.type).toBe(row.type);
    expect(s.help).toBe(row.description);
  });

  it('vmlet writes another TYPE only for KubeVirt counters that promtool rejects (no _total), and says gauge', () => {
    const differing = TABLE.filter((s) => s.exposedType !== undefined);
    expect(differing.map((s) => s.name).sort()).toEqual(
      ['starting', 'running', 'migrating', 'non_running', 'error'].map((g) => `kubevirt_vm_${g}_status_last_transition_timestamp_seconds`).sort(),
    );
    for (const s of differing) {
      expect(s.type).toBe('counter');
      expect(s.name.endsWith('_total')).toBe(false);
    }
  });
});

/** A QEMU as the collector sees it, answering every query a scrape sends. */
const qmp: QmpQuerier = {
  execute: async <T>(command: string): Promise<T> => {
    const answers: Record<string, unknown> = {
      'query-cpus-fast': [{ 'cpu-index': 0, 'thread-id': process.pid }],
      'query-blockstats': [{ 'node-name': 'drive-root', stats: { rd_operations: 1, wr_operations: 1, rd_bytes: 512, wr_bytes: 512 } }],
      'query-balloon': { actual: 64 * 1024 * 1024 },
      'qom-get': {
        stats: {
          'stat-total-memory': 60e6,
          'stat-available-memory': 40e6,
          'stat-free-memory': 30e6,
          'stat-disk-caches': 5e6,
          'stat-swap-in': 0,
          'stat-swap-out': 0,
          'stat-major-faults': 3,
          'stat-minor-faults': 300,
        },
        'last-update': 1,
      },
    };
    if (!(command in answers)) throw new Error(`unexpected ${command}`);
    return answers[command] as T;
  },
};

describe('what a scrape writes under KubeVirt\'s names', () => {
  let dir: string;
  let text: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vmlet-kv-doc-'));
    const disk = join(dir, 'root.raw');
    await writeFile(disk, Buffer.alloc(4096));
    const base = {
      vcpus: 2,
      memoryBytes: 64 * 1024 * 1024,
      createdAt: '2026-01-01T00:00:00Z',
      lastTransitionAt: '2026-01-01T00:01:00Z',
      disks: ['root'],
      diskFiles: [{ name: 'root', path: disk, format: 'raw' as const }],
    };
    const targets: ScrapeTarget[] = [
      {
        ...base,
        id: 'on',
        labels: { 'vmlet.io/namespace': 'team-a' },
        phase: 'Running',
        cpuLimitCores: 1.5,
        qemu: { pid: process.pid, qmp },
        nics: [{ name: 'eth0', tap: 'tap-on', mac: '02:00:00:00:00:01' }],
        guestInterfaces: [{ name: 'enp1s0', mac: '02:00:00:00:00:01', ipAddresses: ['10.0.0.5'] }],
        guest: {
          arch: 'x86_64',
          filesystems: [{ device: 'vda1', mountPoint: '/', type: 'ext4', totalBytes: 2e9, usedBytes: 1e9 }],
          load: { load1m: 0.5, load5m: 0.25, load15m: 0.125 },
        },
      },
      { ...base, id: 'off', labels: {}, phase: 'Stopped', nics: [] },
    ];
    const metrics = new AgentMetrics();
    metrics.collectVms({
      node: 'node-a',
      targets: () => targets,
      readNetDev: async () => 'tap-on: 1 1 0 0 0 0 0 0 2 1 0 0 0 0 0 0\n',
      memoryOverheadBytes: ({ vcpus }) => (200 + vcpus * 8) * 1024 * 1024,
      migrations: {
        migrationFigures: (id) =>
          id === 'on'
            ? { uid: 'm-1', dataTotalBytes: 10, dataProcessedBytes: 10, dataRemainingBytes: 0, succeeded: false, failed: true, startedAtSeconds: 100, endedAtSeconds: 110 }
            : id === 'off'
              ? { uid: 'm-0', dataTotalBytes: 10, dataProcessedBytes: 10, dataRemainingBytes: 0, succeeded: true, failed: false, startedAtSeconds: 50, endedAtSeconds: 60 }
              : undefined,
      },
    });
    metrics.observeTransition({ id: 'on', from: 'Pending', to: 'Starting', reason: '', seconds: 5 }, 0);
    metrics.observeTransition({ id: 'on', from: 'Starting', to: 'Running', reason: '', seconds: 3 }, 3000);
    metrics.guestPanics.inc({ namespace: 'team-a', name: 'on', type: 'unknown', bugcheck_code: 'unknown' });
    text = await metrics.render();
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('passes promtool', async () => {
    expect(await promtoolCheckMetrics(text)).toEqual({ code: 0, problems: '' });
  });

  it('every series of the table is written, with KubeVirt\'s help and type (or the documented gauge)', () => {
    const help = new Map([...text.matchAll(/^# HELP (\S+) (.*)$/gm)].map((m) => [m[1]!, m[2]!]));
    const type = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
    for (const s of TABLE) {
      expect(help.get(s.name), s.name).toBe(DOC.get(s.name)!.description);
      expect(type.get(s.name), s.name).toBe(s.exposedType ?? DOC.get(s.name)!.type);
    }
  });

  it('each sample carries exactly KubeVirt\'s labels, plus kubernetes_vmi_label_* where virt-handler has them too', () => {
    const lines = parseMetrics(text);
    for (const s of TABLE) {
      const family = lines.filter((l) => l.name === s.name || (s.type === 'histogram' && [`${s.name}_bucket`, `${s.name}_sum`, `${s.name}_count`].includes(l.name)));
      expect(family.length, s.name).toBeGreaterThan(0);
      for (const l of family) {
        const names = Object.keys(l.labels).filter((k) => !k.startsWith('kubernetes_vmi_label_') && !(l.name.endsWith('_bucket') && k === 'le'));
        expect(names.sort(), `${l.name} ${JSON.stringify(l.labels)}`).toEqual([...s.labels].sort());
      }
    }
  });

  it('namespace follows the rule: the vmlet.io/namespace label, else the default', () => {
    const info = parseMetrics(text).filter((l) => l.name === 'kubevirt_vm_info');
    expect(info.map((l) => [l.labels.name, l.labels.namespace])).toEqual([
      ['off', 'default'],
      ['on', 'team-a'],
    ]);
  });
});
