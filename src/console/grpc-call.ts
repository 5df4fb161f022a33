import { status } from '@grpc/grpc-js';
import type { CallContext } from '../api/grpc/observe.js';
import { codeName, toServiceError } from '../api/grpc/status.js';

/** The parts of a server-streaming or bidi call that ending it needs. */
export interface StreamingCall {
  readonly cancelled: boolean;
  end(): void;
  emit(event: 'error', error: unknown): boolean;
}

/**
 * Runs a streaming call to its end like observe.ts does for the other RPCs: `run` resolves when
 * the stream is over (status OK, or CANCELLED when the client left) or rejects with the error
 * whose status ends it; the call is logged with method, code, duration and VM, and measured.
 */
export function finishStreamingCall(ctx: CallContext, method: string, call: StreamingCall, run: (setVm: (id: string) => void) => Promise<void>): void {
  const started = process.hrtime.bigint();
  let vm: string | undefined;
  const done = (code: status, err?: unknown): void => {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const name = codeName(code);
    ctx.observe?.(method, name, seconds);
    const line = { method, code: name, durationMs: Math.round(seconds * 10000) / 10, ...(vm ? { vm } : {}) };
    if (code === status.INTERNAL || code === status.UNKNOWN) ctx.logger.error({ ...line, err }, 'gRPC call failed');
    else if (code !== status.OK && code !== status.CANCELLED) ctx.logger.info({ ...line, error: err instanceof Error ? err.message : String(err) }, 'gRPC call');
    else ctx.logger.info(line, 'gRPC call');
  };
  run((id) => (vm = id)).then(
    () => {
      done(call.cancelled ? status.CANCELLED : status.OK);
      if (!call.cancelled) call.end();
    },
    (err: unknown) => {
      const e = toServiceError(err);
      done(e.code, err);
      if (!call.cancelled) call.emit('error', e);
    },
  );
}
