/**
 * The raw side's wait for a guest agent: connect to QEMU's chardev socket, `guest-sync-delimited`,
 * and on no answer close and try again, until the agent answers. While a sync waits, QEMU holds
 * it in the socket (the guest's port is closed) and hands it over the moment the agent opens the
 * port, so the agent is seen as it comes up; only the short gap between attempts is blind.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { GuestAgentClient } from '../src/qemu/guest-agent.js';
import { errorText } from './util.js';

export interface AgentPollOptions {
  /** Each attempt's sync deadline. */
  syncTimeoutMs: number;
  /** Pause between a failed attempt and the next. */
  retryMs: number;
  timeoutMs: number;
  /** Gives up at once when this says why (QEMU exited). */
  stopIf?: () => string | undefined;
}

/** Resolves when an agent answers a sync on `socket`: the time it answered and how many attempts it took. */
export async function waitForAgentSync(socket: string, o: AgentPollOptions): Promise<{ at: number; attempts: number }> {
  const deadline = Date.now() + o.timeoutMs;
  for (let attempts = 1; ; attempts++) {
    const stop = o.stopIf?.();
    if (stop) throw new Error(`guest agent on ${socket}: ${stop}`);
    let client: GuestAgentClient | undefined;
    try {
      client = await GuestAgentClient.connect(socket, o.syncTimeoutMs);
      await client.sync(o.syncTimeoutMs);
      return { at: performance.now(), attempts };
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`no guest agent answered on ${socket} within ${o.timeoutMs} ms (last: ${errorText(err)})`, { cause: err });
    } finally {
      client?.close();
    }
    await delay(o.retryMs);
  }
}
