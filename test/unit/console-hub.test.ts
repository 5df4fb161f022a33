import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConsoleHub } from '../../src/console/hub.js';
import { DEFAULT_CONSOLE_LIMITS, type ConsoleLimits } from '../../src/console/limits.js';
import { VmletError } from '../../src/model/errors.js';
import { silentLogger } from '../../src/host/log.js';
import { FakeSerial } from '../support/fake-serial.js';
import { FakeVms, isRun, line, lineNumbers, RecordingSink } from '../support/console-fakes.js';

const LIMITS: ConsoleLimits = { ...DEFAULT_CONSOLE_LIMITS, historyBytes: 1000, clientMaxPendingBytes: 160 * 1024, connectRetryMs: 10 };
const ID = 'web-1';

/** Emits lines [from, to) a few at a time, yielding to the event loop in between; calls `at(n)` before line n. */
async function emitLines(fake: FakeSerial, from: number, to: number, at: (n: number) => void | Promise<void> = () => undefined): Promise<void> {
  for (let n = from; n < to; n++) {
    await at(n);
    fake.emit(line(n));
    if (n % 7 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('ConsoleHub with a fake QEMU serial socket', () => {
  let fake: FakeSerial;
  let vms: FakeVms;
  let hub: ConsoleHub;

  beforeEach(async () => {
    fake = await FakeSerial.create();
    vms = new FakeVms();
    hub = new ConsoleHub(vms, silentLogger(), LIMITS).start();
  });
  afterEach(async () => {
    await hub.close();
    await fake.remove();
  });

  const attach = async (stuck = false): Promise<RecordingSink> => {
    const sink = new RecordingSink(stuck);
    await hub.attachable(ID).attach(hub.client(sink));
    return sink;
  };
  /** QEMU exits, then the manager records the stop. */
  const stopVm = async (): Promise<void> => {
    await fake.stop();
    vms.set(ID, fake.paths, 'Stopped', 0);
  };

  it('history (the log from before the connection, then what came since), then live: no byte twice, none lost', async () => {
    fake.earlierLog(Array.from({ length: 300 }, (_, n) => line(n)).join('')); // printed before vmlet connected: only in console.log
    vms.set(ID, fake.paths, 'Running');
    // The first client waits for vmlet's connection; nothing is printed meanwhile (nobody would read it: lost).
    const sinks: Promise<RecordingSink>[] = [attach()];
    await sinks[0];
    await emitLines(fake, 300, 3000, (n) => {
      if (n === 301 || n === 305 || n === 1200 || n === 2999) sinks.push(attach());
    });
    const attached = await Promise.all(sinks);
    fake.emit(line(3000));
    await stopVm();
    for (const sink of attached) {
      expect(await sink.ended).toEqual({ kind: 'end' });
      const numbers = lineNumbers(sink.text);
      expect(isRun(numbers, numbers[0]!, 3000), `lines ${numbers[0]}..${numbers.at(-1)}: ${numbers.length} of them`).toBe(true);
    }
    // History is bounded (1000 bytes = 125 whole lines of 8 bytes) and starts at a line start.
    const first = lineNumbers(attached[0]!.text);
    expect(first[0]).toBe(300 - 125);
  });

  it('fans out to every attached client; input from any reaches the guest', async () => {
    vms.set(ID, fake.paths, 'Running');
    await fake.connected();
    const a = await attach();
    const b = await attach();
    hub.attachable(ID).input(Buffer.from('echo hi\r'));
    await fake.waitForInput('echo hi\r');
    fake.emit('hi\r\n# ');
    await Promise.all([a.until('hi\r\n# '), b.until('hi\r\n# ')]);
    expect(fake.connections).toBe(1);
  });

  it('refuses a client beyond maxClients with RESOURCE_EXHAUSTED, and takes one again once a client left', async () => {
    await hub.close();
    hub = new ConsoleHub(vms, silentLogger(), { ...LIMITS, maxClients: 2 }).start();
    vms.set(ID, fake.paths, 'Running');
    await fake.connected();
    const first = hub.client(new RecordingSink());
    await hub.attachable(ID).attach(first);
    await hub.attachable(ID).attach(hub.client(new RecordingSink()));
    const refused = hub.attachable(ID).attach(hub.client(new RecordingSink()));
    await expect(refused).rejects.toMatchObject({ code: 'RESOURCE_EXHAUSTED', message: expect.stringMatching(/2 clients, the most it allows/) });
    first.detach();
    await hub.attachable(ID).attach(hub.client(new RecordingSink()));
  });

  it('a client that never takes its output is dropped with RESOURCE_EXHAUSTED; the others keep receiving', async () => {
    vms.set(ID, fake.paths, 'Running');
    await fake.connected();
    const stuck = await attach(true);
    const healthy = await attach();
    const chunk = 'x'.repeat(1023) + '\n';
    for (let i = 0; i < 300; i++) fake.emit(chunk);
    fake.emit('END\n');
    await healthy.until('END\n');
    const end = await stuck.ended;
    expect(end.kind).toBe('fail');
    expect(end.kind === 'fail' && end.error.code).toBe('RESOURCE_EXHAUSTED');
    expect(stuck.bytes.length).toBeLessThanOrEqual(LIMITS.clientMaxPendingBytes);
    expect(healthy.text.split(chunk).length - 1).toBe(300);
  });

  it('refuses an unknown VM (NOT_FOUND) and one that is not running (FAILED_PRECONDITION)', () => {
    const code = (fn: () => unknown): string => {
      try {
        fn();
      } catch (err) {
        return (err as VmletError).code;
      }
      return 'OK';
    };
    expect(code(() => hub.attachable('nope'))).toBe('NOT_FOUND');
    vms.set(ID, fake.paths, 'Stopped', 0);
    expect(code(() => hub.attachable(ID))).toBe('FAILED_PRECONDITION');
    vms.set(ID, fake.paths, 'Paused');
    expect(code(() => hub.attachable(ID))).toBe('OK');
  });

  it('ends clients cleanly when the VM stops, after its last output', async () => {
    vms.set(ID, fake.paths, 'Running');
    const sink = await attach();
    fake.emit('reboot: Power down\r\n');
    await stopVm();
    expect(await sink.ended).toEqual({ kind: 'end' });
    expect(sink.text).toContain('reboot: Power down');
    expect(() => hub.attachable(ID)).toThrow(/Stopped/);
  });

  it('opens consoles of VMs already running when it starts (adoption)', async () => {
    vms.set(ID, fake.paths, 'Running');
    await fake.connected();
    fake.emit('before restart\r\n');
    await fake.logged('before restart\r\n');
    await hub.close();
    hub = new ConsoleHub(vms, silentLogger(), LIMITS).start();
    const sink = await attach();
    expect(sink.text).toBe('before restart\r\n');
    fake.emit('after\r\n');
    await sink.until('after\r\n');
  });

  it('a migration target connects while QEMU waits for the stream and keeps the connection once it runs', async () => {
    vms.set(ID, fake.paths, 'Incoming');
    await fake.connected();
    expect(() => hub.attachable(ID)).toThrow(/Incoming/);
    vms.set(ID, fake.paths, 'Running');
    fake.emit('resumed\r\n');
    const sink = await attach();
    await sink.until('resumed\r\n');
    expect(fake.connections).toBe(1);
  });

  it('daemon shutdown ends clients with UNAVAILABLE', async () => {
    vms.set(ID, fake.paths, 'Running');
    const sink = await attach();
    await hub.close();
    const end = await sink.ended;
    expect(end.kind === 'fail' && end.error.code).toBe('UNAVAILABLE');
  });

  it('serves the log, its last lines, and follows it until the VM stops', async () => {
    vms.set(ID, fake.paths, 'Running');
    await fake.connected();
    await emitLines(fake, 0, 50);
    await fake.logged(line(49));
    const whole = new RecordingSink();
    await hub.streamLog({ id: ID, tailLines: 0, follow: false }, hub.client(whole));
    expect(await whole.ended).toEqual({ kind: 'end' });
    expect(isRun(lineNumbers(whole.text), 0, 49)).toBe(true);

    const follower = new RecordingSink();
    let following: Promise<void> | undefined;
    await emitLines(fake, 50, 2000, async (n) => {
      if (n !== 700) return;
      await fake.logged(line(699));
      following = hub.streamLog({ id: ID, tailLines: 10, follow: true }, hub.client(follower));
    });
    await following;
    await follower.until(line(1999));
    await stopVm();
    expect(await follower.ended).toEqual({ kind: 'end' });
    // It started 10 lines before the end as it was when the request was read (output went on meanwhile).
    const followed = lineNumbers(follower.text);
    expect(followed[0]).toBeGreaterThanOrEqual(690);
    expect(isRun(followed, followed[0]!, 1999), `lines ${followed[0]}..${followed.at(-1)}: ${followed.length} of them`).toBe(true);

    // A stopped VM: the log is still there.
    const after = new RecordingSink();
    await hub.streamLog({ id: ID, tailLines: 2, follow: true }, hub.client(after));
    expect(after.text).toBe(line(1998) + line(1999));
    expect(await after.ended).toEqual({ kind: 'end' });
  });
});

describe('ConsoleHub connecting to the serial socket', () => {
  it('gives up (UNAVAILABLE) after the bounded attempts when there is no socket', async () => {
    const fake = await FakeSerial.create(false);
    const vms = new FakeVms();
    const hub = new ConsoleHub(vms, silentLogger(), { ...LIMITS, connectAttempts: 2 }).start();
    try {
      vms.set(ID, fake.paths, 'Running');
      const refused = new RecordingSink();
      await expect(hub.attachable(ID).attach(hub.client(refused))).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    } finally {
      await hub.close();
      await fake.remove();
    }
  });

  it('retries until the socket appears', async () => {
    const fake = await FakeSerial.create(false);
    const vms = new FakeVms();
    const hub = new ConsoleHub(vms, silentLogger(), LIMITS).start();
    try {
      vms.set(ID, fake.paths, 'Running');
      const sink = new RecordingSink();
      const attaching = hub.attachable(ID).attach(hub.client(sink));
      await delay(25); // let the first attempts fail: the socket is not there yet
      await fake.listen();
      await attaching;
      fake.emit('late\r\n');
      await sink.until('late\r\n');
    } finally {
      await hub.close();
      await fake.remove();
    }
  });
});
