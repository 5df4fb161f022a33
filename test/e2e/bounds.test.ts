import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { TestDaemon } from '../support/daemon.js';
import { guestSpec, READY_LINE, waitForFileText } from '../support/guest.js';
import { expectCode, rpc, watchVms } from '../support/rpc.js';
import { isAlive } from '../../src/host/process.js';

describe('bounds: oversized input is refused at once, a forced delete is never held up', () => {
  let d: TestDaemon;
  let api: ReturnType<typeof rpc>;

  beforeAll(async () => {
    d = await TestDaemon.start({ extraArgs: ['--max-watchers', '2'] });
    api = rpc(d.clients);
  });
  afterAll(async () => {
    await d?.cleanup();
  });

  it('a 1 MiB label selector gets INVALID_ARGUMENT, counted, while /healthz keeps answering', async () => {
    await api.list('');
    const huge = `a${' '.repeat(1024 * 1024)}b`;
    // Answers that the event loop was free: /healthz asked before, during and after the refusals.
    const health = Array.from({ length: 5 }, () => fetch(`${d.httpAddress}/healthz`).then((r) => r.status));
    for (let i = 0; i < 3; i++) {
      const details = await expectCode(() => api.list(huge), status.INVALID_ARGUMENT);
      expect(details).toMatch(/^label_selector: is 1048578 bytes long: at most 4096/);
    }
    health.push(fetch(`${d.httpAddress}/healthz`).then((r) => r.status));
    expect(await Promise.all(health)).toEqual(Array(6).fill(200));
    const metrics = await (await fetch(`${d.httpAddress}/metrics`)).text();
    expect(metrics).toMatch(/^vmlet_input_rejected_total\{bound="label_selector_size"\} 3$/m);
  });

  it('a request beyond the 4 MiB message bound is RESOURCE_EXHAUSTED', async () => {
    await expectCode(() => api.list('x'.repeat(5 * 1024 * 1024)), status.RESOURCE_EXHAUSTED);
    expect((await fetch(`${d.httpAddress}/healthz`)).status).toBe(200);
  });

  it('a watch beyond --max-watchers is RESOURCE_EXHAUSTED; a place freed is taken again', async () => {
    await api.create(guestSpec('watched'), false);
    /** Opens a watch: 'open' once it delivers the current VMs, or the error's code. */
    const tryWatch = () => {
      const stream = d.clients.vms.watchVms({ id: '', labelSelector: '' });
      const outcome = new Promise<string>((resolve) => {
        stream.once('data', () => resolve('open'));
        stream.once('error', (e: { code: number }) => resolve(status[e.code] ?? String(e.code)));
      });
      return { stream, outcome };
    };
    const first = watchVms(d.clients);
    const second = watchVms(d.clients);
    await Promise.all([first, second].map((w) => w.until((e) => e.vm?.spec?.id === 'watched')));
    expect(await tryWatch().outcome).toBe('RESOURCE_EXHAUSTED');
    first.close();
    const deadline = Date.now() + 10_000;
    for (;;) {
      const again = tryWatch();
      const outcome = await again.outcome;
      if (outcome === 'open') {
        again.stream.cancel();
        break;
      }
      expect(outcome).toBe('RESOURCE_EXHAUSTED');
      if (Date.now() > deadline) throw new Error('the watch place was never given back');
      await delay(50);
    }
    second.close();
    const metrics = await (await fetch(`${d.httpAddress}/metrics`)).text();
    expect(metrics).toMatch(/^vmlet_input_rejected_total\{bound="watchers"\} [1-9]\d*$/m);
    await api.delete('watched');
  });

  it('a grace period beyond an hour is INVALID_ARGUMENT', async () => {
    await api.create(guestSpec('grace'), false);
    expect(await expectCode(() => api.stop('grace', 3601), status.INVALID_ARGUMENT)).toMatch(/^grace_period_seconds: /);
    await api.delete('grace');
  });

  it('a forced delete during the graceful stop of a guest that ignores ACPI returns promptly', async () => {
    const id = 'deaf';
    // acpi=off: the guest has no power button, as a guest that ignores it.
    const spec = guestSpec(id);
    const running = await api.create({ ...spec, kernel: { ...spec.kernel!, cmdline: `${spec.kernel!.cmdline} acpi=off` } }, true);
    const pid = running.status!.pid;
    await waitForFileText(join(d.stateDir, 'vms', id, 'console.log'), READY_LINE);
    const stopping = api.stop(id, 3600).then(
      (vm) => vm,
      (err: unknown) => err,
    );
    const deadline = Date.now() + 30_000;
    while ((await api.get(id)).status?.phase !== 'PHASE_STOPPING') {
      if (Date.now() > deadline) throw new Error('the VM never reached Stopping');
      await delay(50);
    }
    const started = performance.now();
    await api.delete(id, true);
    const seconds = (performance.now() - started) / 1000;
    // Cut grace, then quit (bounded at 5 s), then the delete itself: not an hour of grace.
    expect(seconds).toBeLessThan(10);
    await expectCode(() => api.get(id), status.NOT_FOUND);
    expect(await isAlive(pid)).toBe(false);
    const stopped = await stopping;
    expect(stopped).toMatchObject({ status: { phase: 'PHASE_STOPPED', reason: expect.stringMatching(/^stopped by request \((quit|killed)\)$/) } });
  });
});
