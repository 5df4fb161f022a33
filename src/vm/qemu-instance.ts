import { setTimeout as delay } from 'node:timers/promises';
import { QmpClient, type QmpConnectOptions, type QmpEvent } from '../qemu/qmp.js';
import { waitForExit } from '../host/process.js';

/** One running QEMU process of a VM and its QMP connection. */
export class QemuInstance {
  /** Resolves when QMP reaches EOF (QEMU exited or closed its monitor), never when we detach. */
  readonly exited: Promise<void>;
  /** Set from the SHUTDOWN event: why QEMU is going away. */
  shutdown?: { guest: boolean; reason: string };
  private detaching = false;

  private constructor(
    readonly pid: number,
    readonly qmp: QmpClient,
  ) {
    this.exited = new Promise((resolve) => {
      qmp.once('close', () => {
        if (!this.detaching) resolve();
      });
    });
    qmp.on('event', (e: QmpEvent) => {
      if (e.event === 'SHUTDOWN') {
        this.shutdown = { guest: e.data.guest === true, reason: String(e.data.reason ?? 'unknown') };
      }
    });
  }

  static async connect(pid: number, qmpSocket: string, options: QmpConnectOptions): Promise<QemuInstance> {
    return new QemuInstance(pid, await QmpClient.connect(qmpSocket, options));
  }

  /** A QEMU whose QMP connection is already open (its handshake may still be under way). */
  static of(pid: number, qmp: QmpClient): QemuInstance {
    return new QemuInstance(pid, qmp);
  }

  /** Waits for QMP EOF and then for the pid to disappear, within one deadline. True if it exited. */
  async waitExit(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    const ac = new AbortController();
    const eof = await Promise.race([
      this.exited.then(() => true),
      delay(timeoutMs, false, { signal: ac.signal }).catch(() => false),
    ]);
    ac.abort();
    if (!eof) return false;
    return waitForExit(this.pid, Math.max(0, deadline - Date.now()) + 2000);
  }

  /** Lets go of QEMU without affecting it (daemon shutdown). */
  detach(): void {
    this.detaching = true;
    this.qmp.close();
  }
}
