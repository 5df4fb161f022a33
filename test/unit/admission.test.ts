import { describe, expect, it } from 'vitest';
import { Admission } from '../../src/vm/admission.js';
import { fakeDomain, phaseReached, specOf } from '../support/fake-ports.js';

describe('admission', () => {
  it('lets `limit` in at once, the rest in arrival order, each told how many are ahead', async () => {
    const a = new Admission(2);
    const first = await a.enter();
    const second = await a.enter();
    const told: number[] = [];
    const order: string[] = [];
    const third = a.enter((n) => told.push(n)).then((release) => (order.push('third'), release));
    const fourth = a.enter((n) => told.push(n)).then((release) => (order.push('fourth'), release));
    expect(told).toEqual([1, 2]);
    expect(a.load).toEqual({ running: 2, waiting: 2 });
    first();
    first(); // a second release of the same slot changes nothing
    (await third)();
    second();
    (await fourth)();
    expect(order).toEqual(['third', 'fourth']);
    expect(a.load).toEqual({ running: 0, waiting: 0 });
  });

  it('refuses a limit below one', () => {
    expect(() => new Admission(0)).toThrow(/positive integer/);
  });

  it('a start beyond the limit waits in Starting with its place as the reason, then runs', async () => {
    const d = fakeDomain({ maxParallelStarts: 1 });
    // The first start hangs in its handshake until released.
    let releaseFirst!: () => void;
    const held = new Promise<void>((resolve) => (releaseFirst = resolve));
    let launched = 0;
    d.hypervisor.prepare = (m) => {
      if (launched++ === 0) m.readyGate = held;
    };
    await d.manager.create(specOf('a'), false);
    await d.manager.create(specOf('b'), false);
    const a = d.manager.start('a');
    await phaseReached(d.manager, 'a', 'Starting');
    const b = d.manager.start('b');
    await phaseReached(d.manager, 'b', 'Starting');
    await new Promise((r) => setImmediate(r));
    expect(d.manager.get('b').status.reason).toBe('queued (1 ahead)');
    expect(d.hypervisor.launches).toHaveLength(1);
    releaseFirst();
    await Promise.all([a, b]);
    expect(d.manager.get('b').status.phase).toBe('Running');
    expect(d.hypervisor.launches).toHaveLength(2);
  });
});
