import { describe, expect, it } from 'vitest';
import { performance } from 'node:perf_hooks';
import { VmletError } from '../../src/model/errors.js';
import { MAX_LABEL_SELECTOR_BYTES, onBoundRejected, type Bound } from '../../src/model/bounds.js';
import { Slots } from '../../src/model/slots.js';
import { parseLabelSelector } from '../../src/vm/label-selector.js';
import { validateSpec } from '../../src/vm/validate.js';
import { parseDaemonArgs } from '../../src/config.js';
import { AgentMetrics } from '../../src/metrics/agent-metrics.js';
import { fakeDomain, phaseReached, specOf } from '../support/fake-ports.js';

function errorOf(fn: () => unknown): VmletError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(VmletError);
    return e as VmletError;
  }
  throw new Error('did not throw');
}

/** The bounds refused while `fn` runs. */
async function refusals(fn: () => unknown): Promise<Bound[]> {
  const seen: Bound[] = [];
  const stop = onBoundRejected((b) => seen.push(b));
  try {
    await fn();
  } catch {
    // the refusal is what is looked at
  } finally {
    stop();
  }
  return seen;
}

describe('label selector bounds', () => {
  it('accepts 4 KiB and refuses one byte more, counted, as INVALID_ARGUMENT', async () => {
    const term = 'a=b,';
    const fits = term.repeat(MAX_LABEL_SELECTOR_BYTES / term.length).slice(0, -1);
    expect(parseLabelSelector(fits).requirements).toHaveLength(MAX_LABEL_SELECTOR_BYTES / term.length);
    const over = `${fits},c`;
    expect(Buffer.byteLength(over)).toBe(MAX_LABEL_SELECTOR_BYTES + 1);
    const err = errorOf(() => parseLabelSelector(over));
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(err.message).toMatch(/^label_selector: is 4097 bytes long: at most 4096/);
    expect(await refusals(() => parseLabelSelector(over))).toEqual(['label_selector_size']);
  });

  it('counts bytes, not characters', () => {
    const fits = 'é'.repeat(MAX_LABEL_SELECTOR_BYTES / 2);
    expect(() => parseLabelSelector(fits)).toThrow(/key name/);
    expect(() => parseLabelSelector(`${fits}x`)).toThrow(/4097 bytes/);
  });

  it('refuses a 1 MiB selector at once', () => {
    const huge = `a${' '.repeat(1024 * 1024)}b`;
    const started = performance.now();
    expect(() => parseLabelSelector(huge)).toThrow(/at most 4096/);
    expect(performance.now() - started).toBeLessThan(50);
  });

  // The former regular expression's lazy key against \s* went quadratic on a long blank run
  // without an operator; 4 KiB of it took some ms, linear parsing takes microseconds.
  it('parses the worst case of the former regular expression in linear time', () => {
    const worst = (n: number) => `a${' '.repeat(n)}b`;
    for (const s of [worst(MAX_LABEL_SELECTOR_BYTES - 2), `${'x'.repeat(4000)}!`, `!${' '.repeat(4000)}=`]) {
      const started = performance.now();
      expect(() => parseLabelSelector(s)).toThrow(VmletError);
      expect(performance.now() - started).toBeLessThan(5);
    }
    expect(parseLabelSelector(`k=${' '.repeat(4000)}v`).requirements).toEqual([{ key: 'k', op: 'eq', value: 'v' }]);
  });

  it('keeps the former splits on whitespace and line terminators around the operator', () => {
    expect(parseLabelSelector('a \t== \n b').requirements).toEqual([{ key: 'a', op: 'eq', value: 'b' }]);
    expect(parseLabelSelector('a\n!=b').requirements).toEqual([{ key: 'a', op: 'neq', value: 'b' }]);
    expect(() => parseLabelSelector('a=b\nc')).toThrow(/key name "a=b\nc"/);
    expect(() => parseLabelSelector('a!b')).toThrow(/key name "a!b"/);
  });
});

describe('label bounds', () => {
  const withLabels = (labels: Record<string, string>) => specOf('vm', { labels });

  it('allows 64 labels and refuses 65, counted', async () => {
    const labels = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`l${i}`, 'v']));
    expect(Object.keys(validateSpec(withLabels(labels(64))).labels)).toHaveLength(64);
    const err = errorOf(() => validateSpec(withLabels(labels(65))));
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(err.message).toBe('spec.labels: has 65 labels: at most 64');
    expect(await refusals(() => validateSpec(withLabels(labels(65))))).toEqual(['labels_per_vm']);
  });

  it('allows keys of 317 bytes (253-byte prefix, 63-byte name) and values of 63, no more', async () => {
    const prefix = `${'p'.repeat(63)}.${'q'.repeat(63)}.${'r'.repeat(63)}.${'s'.repeat(61)}`;
    expect(prefix).toHaveLength(253);
    const key = `${prefix}/${'n'.repeat(63)}`;
    expect(Buffer.byteLength(key)).toBe(317);
    expect(validateSpec(withLabels({ [key]: 'v'.repeat(63) })).labels).toEqual({ [key]: 'v'.repeat(63) });
    expect(() => validateSpec(withLabels({ [`${prefix}s/n`]: 'v' }))).toThrow(/prefix/);
    expect(() => validateSpec(withLabels({ [`${prefix}/${'n'.repeat(64)}`]: 'v' }))).toThrow(/key name/);
    expect(() => validateSpec(withLabels({ a: 'v'.repeat(64) }))).toThrow(/value/);
    expect(await refusals(() => validateSpec(withLabels({ a: 'v'.repeat(64) })))).toEqual(['label_syntax']);
  });
});

describe('node bounds', () => {
  it('refuses the VM beyond --max-vms with RESOURCE_EXHAUSTED, also when creates race', async () => {
    const d = fakeDomain({ maxVms: 2 });
    const results = await Promise.allSettled(['a', 'b', 'c'].map((id) => d.manager.create(specOf(id), false)));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected']);
    const err = (results[2] as PromiseRejectedResult).reason as VmletError;
    expect(err.code).toBe('RESOURCE_EXHAUSTED');
    expect(err.message).toMatch(/--max-vms 2/);
    expect(d.manager.has('c')).toBe(false);
    expect(d.store.durable.has('c')).toBe(false);
    // Idempotent create of an existing VM still answers at the limit.
    await expect(d.manager.create(specOf('a'), false)).resolves.toMatchObject({ spec: { id: 'a' } });
    await d.manager.delete('b', false);
    await expect(d.manager.create(specOf('c'), false)).resolves.toMatchObject({ spec: { id: 'c' } });
  });

  it('refuses grace_period_seconds beyond 3600 before touching the VM', async () => {
    const d = fakeDomain();
    await d.manager.create(specOf('vm'), true);
    expect(await refusals(() => d.manager.stop('vm', 3601, false))).toEqual(['grace_period']);
    await expect(d.manager.stop('vm', 3601, false)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/^grace_period_seconds: is 3601: at most 3600/) });
    expect(d.manager.get('vm').status.phase).toBe('Running');
    await expect(d.manager.stop('vm', 3600, true)).resolves.toMatchObject({ status: { phase: 'Stopped' } });
  });

  it('Slots hands out at most max places and takes each back once', () => {
    const s = new Slots('watchers', 2, 'watch streams');
    const a = s.take();
    s.take();
    const err = errorOf(() => s.take());
    expect(err.code).toBe('RESOURCE_EXHAUSTED');
    expect(err.message).toMatch(/2 watch streams are open, the most this node allows \(2\)/);
    a();
    a();
    expect(s.inUse).toBe(1);
    expect(() => s.take()).not.toThrow();
  });
});

describe('forced delete during a graceful stop', () => {
  it('cuts the grace period short: the delete does not wait for a guest that ignores ACPI', async () => {
    const d = fakeDomain();
    d.hypervisor.prepare = (m) => {
      m.guest = 'ignores-acpi';
      // A real grace period: waiting for the exit takes as long as asked, i.e. until cut.
      m.waitExit = (): Promise<boolean> => (m.closed ? Promise.resolve(true) : new Promise<boolean>(() => undefined));
    };
    await d.manager.create(specOf('vm'), true);
    const stopping = d.manager.stop('vm', 3600, false);
    await phaseReached(d.manager, 'vm', 'Stopping');
    await d.manager.delete('vm', true);
    expect(d.manager.has('vm')).toBe(false);
    await expect(stopping).resolves.toMatchObject({ status: { reason: 'stopped by request (quit)' } });
    expect(d.hypervisor.machines[0]!.calls).toContain('quit');
  });

  it('a forced stop cuts it short too', async () => {
    const d = fakeDomain();
    d.hypervisor.prepare = (m) => {
      m.guest = 'ignores-acpi';
      m.waitExit = (): Promise<boolean> => (m.closed ? Promise.resolve(true) : new Promise<boolean>(() => undefined));
    };
    await d.manager.create(specOf('vm'), true);
    const stopping = d.manager.stop('vm', 3600, false);
    await phaseReached(d.manager, 'vm', 'Stopping');
    await expect(d.manager.stop('vm', 0, true)).resolves.toMatchObject({ status: { phase: 'Stopped' } });
    await expect(stopping).resolves.toMatchObject({ status: { phase: 'Stopped', reason: 'stopped by request (quit)' } });
  });
});

describe('config and metric', () => {
  it('reads --max-vms, --max-watchers and --grpc-max-message-bytes with their defaults', () => {
    expect(parseDaemonArgs([])).toMatchObject({ maxVms: 256, maxWatchers: 128, grpcMaxMessageBytes: 4 * 1024 * 1024 });
    expect(parseDaemonArgs(['--max-vms', '3', '--max-watchers', '5', '--grpc-max-message-bytes', '1048576'])).toMatchObject({ maxVms: 3, maxWatchers: 5, grpcMaxMessageBytes: 1048576 });
    expect(() => parseDaemonArgs(['--max-vms', '0'])).toThrow(/--max-vms: must be a whole number of VMs >= 1/);
    expect(() => parseDaemonArgs(['--max-watchers', '1.5'])).toThrow(/--max-watchers/);
  });

  it('counts refusals in vmlet_input_rejected_total{bound}', async () => {
    const metrics = new AgentMetrics();
    try {
      expect(() => parseLabelSelector('x'.repeat(5000))).toThrow();
      const text = await metrics.registry.metrics();
      expect(text).toMatch(/^vmlet_input_rejected_total\{bound="label_selector_size"\} 1$/m);
      expect(text).toMatch(/^vmlet_input_rejected_total\{bound="watchers"\} 0$/m);
    } finally {
      metrics.stopCountingBounds();
    }
  });
});
