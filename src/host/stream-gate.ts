import { createConnection, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP listener in front of a unix socket that lets a connection through only when it comes
 * from an allowed address and its first bytes look like the stream expected. QEMU's incoming
 * migration listener stops its main loop while a TLS handshake waits for a client that says
 * nothing; behind the gate, QEMU sees only peers that already spoke.
 */
export interface StreamGateOptions {
  host: string;
  port: number;
  /** Remote addresses allowed through (IPv4-mapped IPv6 forms match their IPv4 address). */
  allowFrom: readonly string[];
  /** Where allowed connections go. */
  upstream: string;
  /** Whether the buffered first bytes are a complete, plausible opening; 'more' waits for more. */
  opening: (head: Buffer) => 'ok' | 'more' | 'bad';
  /** How long a client may take to send its opening. */
  openingTimeoutMs: number;
  onRefused?: (remote: string, reason: string) => void;
}

export interface StreamGate {
  readonly port: number;
  close(): Promise<void>;
}

const MAX_OPENING_BYTES = 64 * 1024;

const bareAddress = (a: string): string => a.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1');

export async function openStreamGate(o: StreamGateOptions): Promise<StreamGate> {
  const allowed = new Set(o.allowFrom.map(bareAddress));
  const sockets = new Set<Socket>();
  const server: Server = createServer({ pauseOnConnect: false }, (client) => {
    sockets.add(client);
    client.once('close', () => sockets.delete(client));
    client.on('error', () => client.destroy());
    const remote = bareAddress(client.remoteAddress ?? '');
    const refuse = (reason: string): void => {
      o.onRefused?.(remote, reason);
      client.destroy();
    };
    if (!allowed.has(remote)) return refuse('address not allowed');
    let head = Buffer.alloc(0);
    const timer = setTimeout(() => refuse('no opening in time'), o.openingTimeoutMs);
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const verdict = head.length > MAX_OPENING_BYTES ? 'bad' : o.opening(head);
      if (verdict === 'more') return;
      clearTimeout(timer);
      client.off('data', onData);
      if (verdict === 'bad') return refuse('not the expected stream');
      client.pause();
      splice(client, head, o.upstream, sockets);
    };
    client.on('data', onData);
    client.once('close', () => clearTimeout(timer));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: o.host, port: o.port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as { port: number }).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * Connects the admitted client to the upstream socket, replaying what the gate read. A side
 * that hangs up cleanly has its last bytes delivered before the other side is ended (a
 * migration stream's final device state is in flight when the source closes); only an error
 * tears the other side down at once.
 */
function splice(client: Socket, head: Buffer, upstream: string, sockets: Set<Socket>): void {
  const up = createConnection(upstream);
  sockets.add(up);
  up.once('close', (hadError) => {
    sockets.delete(up);
    if (hadError) client.destroy();
    else client.end();
  });
  client.once('close', (hadError) => {
    if (hadError) up.destroy();
    else up.end();
  });
  up.on('error', () => up.destroy());
  up.once('connect', () => {
    up.write(head);
    client.pipe(up);
    up.pipe(client);
    client.resume();
  });
}

/** A TLS handshake record (content type 22, version 3.x), complete. */
export function tlsOpening(head: Buffer): 'ok' | 'more' | 'bad' {
  if (head.length >= 1 && head[0] !== 0x16) return 'bad';
  if (head.length >= 2 && head[1] !== 0x03) return 'bad';
  if (head.length < 5) return 'more';
  return head.length >= 5 + head.readUInt16BE(3) ? 'ok' : 'more';
}

const QEMU_VM_FILE_MAGIC = Buffer.from('QEVM');

/** The start of a plaintext QEMU migration stream. */
export function qemuStreamOpening(head: Buffer): 'ok' | 'more' | 'bad' {
  const n = Math.min(head.length, QEMU_VM_FILE_MAGIC.length);
  if (!head.subarray(0, n).equals(QEMU_VM_FILE_MAGIC.subarray(0, n))) return 'bad';
  return n === QEMU_VM_FILE_MAGIC.length ? 'ok' : 'more';
}
