import { setTimeout as delay } from 'node:timers/promises';
import type { GuestInfo } from '../model/vm.js';
import { GuestAgentClient, readGuestInfo } from './guest-agent.js';

export interface GuestAgentWatchOptions {
  /** How often the info is read again while the agent answers. */
  refreshMs?: number;
  /** Wait before the first attempt and between attempts: the agent starts well after QEMU. */
  retryMs?: number;
  syncTimeoutMs?: number;
}

export const GUEST_INFO_REFRESH_MS = 10_000;
const RETRY_MS = 3_000;
const SYNC_TIMEOUT_MS = 2_000;
const CONNECT_TIMEOUT_MS = 1_000;

/**
 * Keeps asking the guest agent on `socketPath`: the info on every (re)connect and every
 * `refreshMs`, told to `onInfo`; a lost agent (the guest restarted it, or never ran one) is told
 * once as `agentConnected: false` and tried again. Returns the function that stops it.
 */
export function watchGuestAgent(socketPath: string, onInfo: (info: GuestInfo) => void, options: GuestAgentWatchOptions = {}): () => void {
  const stop = new AbortController();
  const { signal } = stop;
  let client: GuestAgentClient | undefined;
  const pause = (ms: number): Promise<void> => delay(ms, undefined, { signal }).catch(() => undefined);

  void (async () => {
    let connected = false;
    while (!signal.aborted) {
      await pause(options.retryMs ?? RETRY_MS);
      if (signal.aborted) break;
      try {
        client = await GuestAgentClient.connect(socketPath, CONNECT_TIMEOUT_MS);
        if (signal.aborted) break;
        await client.sync(options.syncTimeoutMs ?? SYNC_TIMEOUT_MS);
        for (;;) {
          const info = await readGuestInfo(client);
          if (signal.aborted) break;
          connected = true;
          onInfo(info);
          await pause(options.refreshMs ?? GUEST_INFO_REFRESH_MS);
          if (signal.aborted) break;
          // Each round starts in step: a late reply of the last round cannot answer this one.
          await client.sync(options.syncTimeoutMs ?? SYNC_TIMEOUT_MS);
        }
      } catch {
        if (connected && !signal.aborted) onInfo(DISCONNECTED);
        connected = false;
      } finally {
        client?.close();
        client = undefined;
      }
    }
  })();
  return () => {
    stop.abort();
    client?.close();
  };
}

export const DISCONNECTED: GuestInfo = { agentConnected: false, osName: '', osVersion: '', kernelRelease: '', hostname: '', interfaces: [] };
