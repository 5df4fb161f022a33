import { setTimeout as delay } from 'node:timers/promises';
import type { GuestInfo } from '../model/vm.js';
import type { GuestFigures } from '../model/guest-figures.js';
import { GuestAgentClient, readGuest, type GuestAnswers } from './guest-agent.js';

export interface GuestAgentWatchOptions {
  /** How often the info is read again while the agent answers. */
  refreshMs?: number;
  /** Wait before the first attempt and between attempts: the agent starts well after QEMU. */
  retryMs?: number;
  syncTimeoutMs?: number;
  /** Told the figures for metrics of every round, and undefined once the agent is lost. */
  onFigures?: (figures: GuestFigures | undefined) => void;
}

export const GUEST_INFO_REFRESH_MS = 10_000;
export const RETRY_MS = 3_000;
export const SYNC_TIMEOUT_MS = 2_000;
const CONNECT_TIMEOUT_MS = 1_000;
/**
 * Syncs in a row without an answer before the connection is made anew: a connection QEMU stopped
 * reading (made while the port could take no input, as on a migration's target before the guest
 * state arrives) is read again only once it is new.
 */
const MAX_UNANSWERED_SYNCS = 4;

/**
 * Keeps asking the guest agent on `socketPath`: the info on every (re)connect and every
 * `refreshMs`, told to `onInfo`; a lost agent (the guest restarted it, or never ran one) is told
 * once as `agentConnected: false` and tried again. Returns the function that stops it.
 */
export interface GuestAgentWatch {
  stop(): void;
  /** guest-shutdown through the connected agent; false when no agent is connected (or it failed to sync). */
  shutdown(): Promise<boolean>;
}

export function watchGuestAgent(socketPath: string, onInfo: (info: GuestInfo) => void, options: GuestAgentWatchOptions = {}): GuestAgentWatch {
  const stop = new AbortController();
  const { signal } = stop;
  let client: GuestAgentClient | undefined;
  let connected = false;
  // QEMU's chardev takes one connection: a command from outside waits for the round in progress.
  let turn: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = turn.then(fn, fn);
    turn = next.catch(() => undefined);
    return next;
  };
  const pause = (ms: number): Promise<void> => delay(ms, undefined, { signal }).catch(() => undefined);

  const lost = (): void => {
    if (connected && !signal.aborted) {
      options.onFigures?.(undefined);
      onInfo(DISCONNECTED);
    }
    connected = false;
  };

  void (async () => {
    while (!signal.aborted) {
      await pause(options.retryMs ?? RETRY_MS);
      if (signal.aborted) break;
      try {
        const c = await GuestAgentClient.connect(socketPath, CONNECT_TIMEOUT_MS);
        client = c;
        // The connection stays while QEMU keeps it: a sync that timed out may still be answered
        // on it, which tells the client how slow the agent is (a new connection would lose that).
        let unanswered = 0;
        let answers: GuestAnswers | undefined;
        while (!signal.aborted) {
          let round: Awaited<ReturnType<typeof readGuest>>;
          try {
            // Each round starts in step: a late reply of the last round cannot answer this one.
            round = await exclusive(async () => {
              await c.sync(options.syncTimeoutMs ?? SYNC_TIMEOUT_MS);
              return readGuest(c, answers ? { previous: answers } : {});
            });
          } catch (err) {
            if (c.closed || ++unanswered >= MAX_UNANSWERED_SYNCS) throw err;
            lost();
            await pause(options.retryMs ?? RETRY_MS);
            continue;
          }
          if (signal.aborted) break;
          unanswered = 0;
          answers = round.answers;
          connected = true;
          options.onFigures?.(round.figures);
          onInfo(round.info);
          await pause(options.refreshMs ?? GUEST_INFO_REFRESH_MS);
        }
      } catch {
        lost();
      } finally {
        client?.close();
        client = undefined;
      }
    }
  })();
  return {
    stop: () => {
      stop.abort();
      client?.close();
    },
    shutdown: () =>
      exclusive(async () => {
        const c = client;
        if (!connected || !c || c.closed) return false;
        await c.post('guest-shutdown', options.syncTimeoutMs ?? SYNC_TIMEOUT_MS, { mode: 'powerdown' });
        return true;
      }).catch(() => false),
  };
}

export const DISCONNECTED: GuestInfo = { agentConnected: false, osName: '', osVersion: '', kernelRelease: '', hostname: '', interfaces: [] };
