/** The bounds of the console service, in one place. */
export interface ConsoleLimits {
  /** History a client receives when it attaches: at most this much of the end of console.log. */
  historyBytes: number;
  /**
   * Output sent to one client that its transport has not taken yet; beyond it the client is
   * dropped. Must be well above historyBytes + batchBytes, or a healthy client could be dropped.
   */
  clientMaxPendingBytes: number;
  /** Largest chunk read from console.log and sent as one message. */
  readChunkBytes: number;
  /**
   * Output is fanned out at most once per this many ms (the first byte after a quiet spell at
   * once): QEMU sends a byte per write, and one message per byte would keep vmlet too busy to
   * read the socket, which throttles the guest.
   */
  batchMs: number;
  /** A batch this large goes out at once. */
  batchBytes: number;
  /** Client input held while the serial socket is (re)connecting or the guest does not read; beyond it input is dropped. */
  inputMaxPendingBytes: number;
  /** Attempts to connect to a serial socket before giving up until the next attach. */
  connectAttempts: number;
  /** Pause between two connect attempts. */
  connectRetryMs: number;
  /**
   * console.log is rotated to console.log.1 before it would grow past this (daemon flag
   * --console-log-max-bytes): a VM's console log takes at most twice this on disk.
   */
  logMaxBytes: number;
  /** Clients of one VM's console at once (attached and following); absent: DEFAULT_MAX_CONSOLE_CLIENTS. */
  maxClients?: number;
  /** Output waiting for the disk, per VM; beyond it (a disk slower than a flooding guest) output is dropped, and the log says how much. */
  logBufferBytes: number;
}

export const DEFAULT_MAX_CONSOLE_CLIENTS = 16;

export const DEFAULT_CONSOLE_LIMITS: ConsoleLimits = {
  historyBytes: 64 * 1024,
  clientMaxPendingBytes: 1024 * 1024,
  readChunkBytes: 64 * 1024,
  batchMs: 5,
  batchBytes: 64 * 1024,
  inputMaxPendingBytes: 64 * 1024,
  connectAttempts: 50,
  connectRetryMs: 100,
  logMaxBytes: 1024 * 1024,
  logBufferBytes: 256 * 1024,
};

/** Human form of a byte count for messages: 1 MiB, 64 KiB, 300 bytes. */
export function formatBytes(n: number): string {
  if (n >= 1024 * 1024 && n % (1024 * 1024) === 0) return `${n / (1024 * 1024)} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} bytes`;
}
