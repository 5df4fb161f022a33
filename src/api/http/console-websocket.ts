import fastifyWebsocket from '@fastify/websocket';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { RawData, WebSocket } from 'ws';
import { status } from '@grpc/grpc-js';
import { checkConsoleAccess, type ConsoleAccessOptions, type ConsoleGrant } from './console-access.js';
import { asVmletError, VmletError } from '../../model/errors.js';
import type { Logger } from '../../host/log.js';
import { validateVmId } from '../../vm/validate.js';
import type { ConsoleSink } from '../../console/client.js';
import type { ConsoleHub } from '../../console/hub.js';

const CONSOLE_WEBSOCKET_PATH = '/v1/vms/:id/console';
/** Keepalive: a ping this often; a client that has not answered the previous one is cut. */
const DEFAULT_PING_INTERVAL_MS = 30_000;
const DROP_GRACE_MS = 5_000;
const MAX_INPUT_FRAME_BYTES = 64 * 1024;

export interface ConsoleWebsocketOptions {
  hub: ConsoleHub;
  /** Who may attach (token, client certificate) and which Host headers are accepted. */
  access: ConsoleAccessOptions;
  logger: Logger;
  pingIntervalMs?: number;
}

type ConsoleRequest = FastifyRequest<{ Params: { id: string } }>;

/** What each admitted upgrade request was granted, for the handler that serves it. */
const grants = new WeakMap<object, ConsoleGrant>();

const HTTP_STATUS: Partial<Record<VmletError['code'], number>> = { INVALID_ARGUMENT: 400, NOT_FOUND: 404, FAILED_PRECONDITION: 409 };

/** Close codes: 1000 when the VM stops; 4000 + the gRPC status code when the console ends on an error (4008: too slow). */
function closeCodeOf(err: VmletError): number {
  return 4000 + status[err.code];
}

/** A close reason fits in 123 bytes. */
const reasonOf = (message: string): string => (Buffer.byteLength(message) <= 123 ? message : `${Buffer.from(message).subarray(0, 120).toString('utf8')}...`);

/**
 * `GET /v1/vms/:id/console` upgraded to a websocket: binary frames of guest output (history tail,
 * then live) out, frames of input in. Refused before the upgrade with 404/409/400 like the gRPC
 * Console, with 401/403 for a caller without the token or a certificate with a role or with a
 * Host header not allowed, and with 403 for a browser page of another origin (websockets are not
 * bound by CORS). A viewer's console is read-only: its input is dropped.
 */
export async function registerConsoleWebsocket(app: FastifyInstance, options: ConsoleWebsocketOptions): Promise<void> {
  await app.register(async (scope) => {
    await scope.register(fastifyWebsocket, { options: { maxPayload: MAX_INPUT_FRAME_BYTES } });
    scope.get(CONSOLE_WEBSOCKET_PATH, { websocket: true, preValidation: (req: ConsoleRequest, reply) => refuse(options, req, reply) }, (socket, req: ConsoleRequest) =>
      serve(socket, req.params.id, options, grants.get(req)?.mode === 'read-only'),
    );
  });
}

async function refuse(options: ConsoleWebsocketOptions, req: ConsoleRequest, reply: FastifyReply): Promise<void> {
  const grant = checkConsoleAccess(options.access, req);
  if ('status' in grant) {
    options.logger.warn({ remote: req.ip, host: req.headers.host, reason: grant.message }, 'console websocket refused');
    if (grant.status === 401) void reply.header('www-authenticate', 'Bearer');
    await reply.code(grant.status).send({ code: grant.status === 401 ? 'UNAUTHENTICATED' : 'PERMISSION_DENIED', message: grant.message });
    return;
  }
  grants.set(req, grant);
  const hub = options.hub;
  const origin = req.headers.origin;
  if (origin !== undefined && !sameOrigin(origin, req.headers.host)) {
    await reply.code(403).send({ code: 'PERMISSION_DENIED', message: `websocket from origin ${origin} refused: only same-origin pages and non-browser clients may attach` });
    return;
  }
  try {
    hub.attachable(validateVmId(req.params.id, 'id'));
  } catch (err) {
    const e = asVmletError(err);
    await reply.code(HTTP_STATUS[e.code] ?? 500).send({ code: e.code, message: e.message });
  }
}

function sameOrigin(origin: string, host: string | undefined): boolean {
  try {
    return host !== undefined && new URL(origin).host === host;
  } catch {
    return false;
  }
}

function serve(socket: WebSocket, id: string, options: ConsoleWebsocketOptions, readOnly: boolean): void {
  const log = options.logger.child({ vm: id, transport: 'websocket' });
  const sink: ConsoleSink = {
    write: (chunk, flushed) => socket.send(chunk, { binary: true }, () => flushed()),
    end: () => socket.close(1000, 'VM stopped'),
    fail: (err) => {
      log.info({ error: err.message }, 'console websocket dropped');
      socket.close(closeCodeOf(err), reasonOf(err.message));
      // A client that does not read never sees the close frame: cut it after a grace.
      setTimeout(() => socket.terminate(), DROP_GRACE_MS).unref();
    },
  };
  const client = options.hub.client(sink);
  const stopKeepalive = keepalive(socket, options.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS);
  socket.on('close', () => {
    stopKeepalive();
    client.detach();
  });
  socket.on('error', (err) => log.debug({ err }, 'console websocket error'));
  try {
    const session = options.hub.attachable(id);
    if (!readOnly) socket.on('message', (data: RawData) => session.input(toBuffer(data)));
    session.attach(client).catch((err: unknown) => client.fail(asVmletError(err)));
  } catch (err) {
    client.fail(asVmletError(err));
  }
}

/** Pings every `intervalMs`; terminates a peer that did not answer the previous ping. Returns the stopper. */
function keepalive(socket: WebSocket, intervalMs: number): () => void {
  let answered = true;
  socket.on('pong', () => (answered = true));
  const timer = setInterval(() => {
    if (!answered) {
      socket.terminate();
      return;
    }
    answered = false;
    socket.ping();
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}
