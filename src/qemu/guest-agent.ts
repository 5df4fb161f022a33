/**
 * A client of the QEMU guest agent on its virtio-serial channel (QEMU listens on a unix socket).
 * QEMU accepts the connection whether or not an agent runs in the guest, and the channel may hold
 * a stale half-reply from an earlier session: every session begins with `guest-sync-delimited`,
 * whose reply the agent prefixes with a 0xFF byte, and only what follows it counts. Commands go
 * one at a time (the agent answers in order), each with its own deadline; bytes that do not form
 * a JSON reply are skipped. A sync answered after its deadline is not lost on a connection kept
 * open: its late reply proves the agent alive, holds the next sync open while the agent catches
 * up, and stretches the next deadlines to what the agent takes (a guest just moved under TCG
 * retranslates everything and may answer slower than the usual deadline for a while).
 */
import { connect, type Socket } from 'node:net';
import type { GuestInfo, GuestInterface } from '../model/vm.js';
import type { GuestFigures } from '../model/guest-figures.js';
import { guestFigures } from './guest-figures.js';

const SYNC_MARKER = 0xff;
const MAX_BUFFERED = 1 << 20;
/** Longest a sync deadline stretches to for a slow agent. */
const MAX_SYNC_TIMEOUT_MS = 30_000;

export class GuestAgentError extends Error {
  /** True when the agent did not answer in time (it may still be there, slow), not when it refused. */
  readonly unanswered: boolean;
  constructor(message: string, options: { unanswered?: boolean } = {}) {
    super(message);
    this.unanswered = options.unanswered ?? false;
  }
}

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
  /** Set while a guest-sync-delimited with this id waits. */
  syncId?: number;
  /** Starts the deadline again: the agent answered an earlier sync and is catching up. */
  rearm?(): void;
}

export class GuestAgentClient {
  private buffer = '';
  private pending: Pending | undefined;
  private synced = false;
  /** The line after a 0xFF: a sync's reply, ours or a late one. */
  private afterMarker = false;
  private closedWith: Error | undefined;
  /** Syncs sent on this connection and not answered yet: id → when. */
  private readonly syncsSent = new Map<number, number>();
  /** How long the agent last took to answer a sync. */
  private syncLatencyMs = 0;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (b: Buffer) => this.onData(b));
    socket.on('error', (err) => this.fail(new GuestAgentError(`guest agent channel: ${err.message}`)));
    socket.on('close', () => this.fail(new GuestAgentError('guest agent channel closed')));
  }

  static connect(path: string, timeoutMs: number): Promise<GuestAgentClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new GuestAgentError(`no connection to ${path} within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(new GuestAgentError(`cannot connect to ${path}: ${err.message}`));
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new GuestAgentClient(socket));
      });
    });
  }

  get closed(): boolean {
    return this.closedWith !== undefined;
  }

  /** False after a command got no answer in time: its late reply could be taken for the next one's. */
  get synchronised(): boolean {
    return this.synced;
  }

  /** The handshake: an agent is there and what it says from now on answers our commands. */
  async sync(timeoutMs: number): Promise<void> {
    this.synced = false;
    const id = Math.floor(Math.random() * 0x7fffffff);
    this.syncsSent.set(id, Date.now());
    const reply = await this.send({ execute: 'guest-sync-delimited', arguments: { id } }, this.syncDeadline(timeoutMs), id);
    if (reply !== id) throw new GuestAgentError(`guest-sync-delimited answered ${JSON.stringify(reply)}, expected ${id}`);
    // The agent answers in order: nothing sent before this sync is still to come.
    this.syncsSent.clear();
  }

  execute<T>(command: string, timeoutMs: number, args?: Record<string, unknown>): Promise<T> {
    if (!this.synced) return Promise.reject(new GuestAgentError(`${command}: not synchronised with the guest agent`));
    return this.send({ execute: command, ...(args ? { arguments: args } : {}) }, this.syncDeadline(timeoutMs)) as Promise<T>;
  }

  /**
   * Sends a command the agent does not answer when it works (guest-shutdown): written after a
   * fresh sync, and not waited for.
   */
  async post(command: string, syncTimeoutMs: number, args?: Record<string, unknown>): Promise<void> {
    await this.sync(syncTimeoutMs);
    this.socket.write(JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}) }) + '\n');
  }

  close(): void {
    this.fail(new GuestAgentError('guest agent client closed'));
  }

  private send(message: object, timeoutMs: number, syncId?: number): Promise<unknown> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    if (this.pending) return Promise.reject(new GuestAgentError('a guest agent command is already running'));
    const command = (message as { execute: string }).execute;
    return new Promise((resolve, reject) => {
      const expire = (ms: number) => () => {
        this.pending = undefined;
        // A late reply would be taken for the next command's: only a new sync may follow.
        this.synced = false;
        reject(new GuestAgentError(`${command}: no answer from the guest agent within ${ms} ms`, { unanswered: true }));
      };
      let timer = setTimeout(expire(timeoutMs), timeoutMs);
      this.pending = {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
        ...(syncId === undefined
          ? {}
          : {
              syncId,
              rearm: () => {
                clearTimeout(timer);
                const ms = this.syncDeadline(timeoutMs);
                timer = setTimeout(expire(ms), ms);
              },
            }),
      };
      if (syncId !== undefined) this.buffer = '';
      this.socket.write((syncId !== undefined ? '\xff' : '') + JSON.stringify(message) + '\n', 'latin1');
    });
  }

  private syncDeadline(timeoutMs: number): number {
    return Math.min(MAX_SYNC_TIMEOUT_MS, Math.max(timeoutMs, 2 * this.syncLatencyMs));
  }

  private onData(chunk: Buffer): void {
    for (let start = 0; ; ) {
      const marker = chunk.indexOf(SYNC_MARKER, start);
      if (this.synced || this.afterMarker) this.take(chunk.subarray(start, marker < 0 ? chunk.length : marker));
      if (marker < 0) return;
      // The agent writes 0xFF only before a sync's reply: whatever came before it is stale.
      this.buffer = '';
      this.afterMarker = true;
      if (this.pending?.syncId !== undefined) this.synced = true;
      start = marker + 1;
    }
  }

  private take(data: Buffer): void {
    this.buffer += data.toString('utf8');
    if (this.buffer.length > MAX_BUFFERED) this.buffer = this.buffer.slice(-MAX_BUFFERED);
    let nl: number;
    while ((this.synced || this.afterMarker) && (nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (line !== '') this.onLine(line);
    }
  }

  private onLine(line: string): void {
    let reply: { return?: unknown; error?: { class?: string; desc?: string } };
    try {
      reply = JSON.parse(line) as typeof reply;
    } catch {
      return;
    }
    if (typeof reply !== 'object' || reply === null) return;
    if (this.afterMarker) {
      this.afterMarker = false;
      if (this.lateSync(reply.return)) return;
    }
    const pending = this.pending;
    if (!pending) return;
    if ('return' in reply) {
      this.pending = undefined;
      pending.resolve(reply.return);
    } else if (reply.error) {
      this.pending = undefined;
      pending.reject(new GuestAgentError(`guest agent: ${reply.error.class ?? 'Error'}: ${reply.error.desc ?? 'no description'}`));
    }
  }

  /** Notes how long a sync took; true when it is an earlier one than the sync waiting, or none waits. */
  private lateSync(value: unknown): boolean {
    const sentAt = typeof value === 'number' ? this.syncsSent.get(value) : undefined;
    if (sentAt === undefined) return false;
    this.syncLatencyMs = Date.now() - sentAt;
    const pending = this.pending;
    if (pending?.syncId === value) return false;
    // The agent is there and answers in order: the sync waiting comes next.
    this.syncsSent.delete(value as number);
    if (pending?.syncId !== undefined) {
      this.synced = false;
      pending.rearm?.();
    }
    return true;
  }

  private fail(err: Error): void {
    if (this.closedWith) return;
    this.closedWith = err;
    this.synced = false;
    const pending = this.pending;
    this.pending = undefined;
    pending?.reject(err);
    this.socket.destroy();
  }
}

/** What vmlet asks the agent, each with this deadline. */
const COMMAND_TIMEOUT_MS = 5_000;

interface OsInfo {
  name?: string;
  'pretty-name'?: string;
  'version-id'?: string;
  version?: string;
  'kernel-release'?: string;
  machine?: string;
}
interface AgentInterface {
  name?: string;
  'hardware-address'?: string;
  'ip-addresses'?: { 'ip-address'?: string; prefix?: number }[];
}

/** What a round asks, in this order; each answer by the command's name. */
const ROUND = ['guest-get-osinfo', 'guest-get-host-name', 'guest-network-get-interfaces', 'guest-get-fsinfo', 'guest-get-load'] as const;
export type GuestAnswers = Partial<Record<(typeof ROUND)[number], unknown>>;

export interface ReadGuestOptions {
  commandTimeoutMs?: number;
  /** The last round's answers on this connection: a command the agent does not answer in time keeps its answer. */
  previous?: GuestAnswers;
}

/**
 * One round: OS, hostname and interfaces (the status) and the figures for metrics (file systems,
 * load). A command the agent lacks (an old or restricted agent) leaves its part empty; one it does
 * not answer in time (a slow guest: under TCG, one just moved retranslates everything) keeps the
 * last round's answer, and the next command goes out after a new sync, so one slow command does
 * not cost the round's others.
 */
export async function readGuest(client: GuestAgentClient, options: ReadGuestOptions = {}): Promise<{ info: GuestInfo; figures: GuestFigures; answers: GuestAnswers }> {
  const timeoutMs = options.commandTimeoutMs ?? COMMAND_TIMEOUT_MS;
  const answers: GuestAnswers = {};
  for (const command of ROUND) {
    try {
      if (!client.synchronised) await client.sync(timeoutMs);
      answers[command] = await client.execute<unknown>(command, timeoutMs);
    } catch (err) {
      if (client.closed) throw err;
      if (err instanceof GuestAgentError && err.unanswered && options.previous && command in options.previous) answers[command] = options.previous[command];
    }
  }
  const os = answers['guest-get-osinfo'] as OsInfo | undefined;
  const host = answers['guest-get-host-name'] as { 'host-name'?: string } | undefined;
  const ifaces = answers['guest-network-get-interfaces'] as AgentInterface[] | undefined;
  const text = (v: unknown): string => (typeof v === 'string' ? v : '');
  const interfaces: GuestInterface[] = (Array.isArray(ifaces) ? ifaces : [])
    .filter((i) => typeof i === 'object' && i !== null && text(i.name) !== 'lo')
    .map((i) => ({
      name: text(i.name),
      mac: text(i['hardware-address']),
      ipAddresses: (Array.isArray(i['ip-addresses']) ? i['ip-addresses'] : []).map((a) => text(a?.['ip-address'])).filter((a) => a !== ''),
    }));
  const info: GuestInfo = {
    agentConnected: true,
    osName: text(os?.name ?? os?.['pretty-name']),
    osVersion: text(os?.['version-id'] ?? os?.version),
    kernelRelease: text(os?.['kernel-release']),
    hostname: text(host?.['host-name']),
    interfaces,
  };
  return { info, figures: guestFigures(text(os?.machine), answers['guest-get-fsinfo'], answers['guest-get-load']), answers };
}
