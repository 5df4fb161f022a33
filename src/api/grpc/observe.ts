import { status, type ServerUnaryCall, type sendUnaryData, type ServerWritableStream } from '@grpc/grpc-js';
import type { Logger } from '../../host/log.js';
import type { CallPeer } from '../authz/identity.js';
import { codeName, toServiceError } from './status.js';

/** Told about every finished call: metrics hook. */
export type CallObserver = (method: string, code: string, seconds: number) => void;

export interface CallContext {
  logger: Logger;
  observe?: CallObserver;
  /** Throws PERMISSION_DENIED when the caller may not call the method (see api/authz). */
  authorize?: (method: string, call: CallPeer) => void;
  /** The role authorize gave the call (undefined without authorization). */
  roleOf?: (call: object) => string | undefined;
}

function finish(ctx: CallContext, method: string, started: bigint, code: status, err?: unknown, vm?: string): void {
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const name = codeName(code);
  ctx.observe?.(method, name, seconds);
  const line = { method, code: name, durationMs: Math.round(seconds * 10000) / 10, ...(vm ? { vm } : {}) };
  if (code === status.INTERNAL || code === status.UNKNOWN) ctx.logger.error({ ...line, err }, 'gRPC call failed');
  else if (code !== status.OK && code !== status.CANCELLED) ctx.logger.info({ ...line, error: err instanceof Error ? err.message : String(err) }, 'gRPC call');
  else ctx.logger.info(line, 'gRPC call');
}

/** fn's promise; a handler that throws before it returns one rejects it the same way. */
function settle<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return fn();
  } catch (err) {
    return Promise.reject(err);
  }
}

/** Wraps a unary handler: maps errors to status codes, logs method, code and duration. */
export function unaryHandler<Req, Res>(ctx: CallContext, method: string, fn: (req: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res>) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
    const started = process.hrtime.bigint();
    const vm = (call.request as { id?: string; spec?: { id?: string } }).id || (call.request as { spec?: { id?: string } }).spec?.id;
    settle(() => {
      ctx.authorize?.(method, call as unknown as CallPeer);
      return fn(call.request, call);
    }).then(
      // The reply is handed over first; the log line and metrics follow. (The line is written
      // before grpc-js writes the reply, at the end of this turn, so its time stamp is the reply's.)
      (res) => {
        callback(null, res);
        finish(ctx, method, started, status.OK, undefined, vm);
      },
      (err: unknown) => {
        const e = toServiceError(err);
        callback(e);
        finish(ctx, method, started, e.code, err, vm);
      },
    );
  };
}

/** The parts of a server-streaming or bidi call that ending it needs. */
export interface StreamingCall extends CallPeer {
  readonly cancelled: boolean;
  end(): void;
  emit(event: 'error', error: unknown): boolean;
}

/**
 * Runs a streaming call to its end: `run` resolves when the stream is over (status OK, or
 * CANCELLED when the client left) or rejects, or throws, with the error whose status ends it.
 * The call is logged with method, code, duration and the VM `run` names, and measured.
 */
export function finishStreamingCall(ctx: CallContext, method: string, call: StreamingCall, run: (setVm: (id: string) => void) => Promise<void>): void {
  const started = process.hrtime.bigint();
  let vm: string | undefined;
  settle(() => {
    ctx.authorize?.(method, call);
    return run((id) => (vm = id));
  }).then(
    () => {
      finish(ctx, method, started, call.cancelled ? status.CANCELLED : status.OK, undefined, vm);
      if (!call.cancelled) call.end();
    },
    (err: unknown) => {
      const e = toServiceError(err);
      finish(ctx, method, started, e.code, err, vm);
      if (!call.cancelled) call.emit('error', e);
    },
  );
}

/** Wraps a server-streaming handler; the handler resolves when the stream is over. */
export function streamHandler<Req, Res>(ctx: CallContext, method: string, fn: (call: ServerWritableStream<Req, Res>) => Promise<void>) {
  return (call: ServerWritableStream<Req, Res>): void => {
    const id = (call.request as { id?: string }).id;
    finishStreamingCall(ctx, method, call, (setVm) => {
      if (id) setVm(id);
      return fn(call);
    });
  };
}
