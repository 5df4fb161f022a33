import * as grpc from '@grpc/grpc-js';
import { UsageError } from './args.js';
import { SpecInputError } from './spec-input.js';
import type { CliIo } from './io.js';

/** What a failed verb prints, and its exit code: 2 for usage, 1 for everything else. */

export function isServiceError(err: unknown): err is grpc.ServiceError {
  return err instanceof Error && typeof (err as Partial<grpc.ServiceError>).code === 'number' && 'details' in err && 'metadata' in err;
}

export const codeName = (code: grpc.status): string => grpc.status[code] ?? `CODE_${code}`;

/** grpc-js's wording when a call found no usable connection. */
const CONNECT_DETAILS = /No connection established/;

/** An UNAVAILABLE (or a deadline) before the daemon was ever reached: the endpoint is wrong or vmlet is down. */
function isConnectFailure(err: grpc.ServiceError, connected: boolean): boolean {
  if (err.code === grpc.status.UNAVAILABLE) return !connected || CONNECT_DETAILS.test(err.details);
  if (err.code === grpc.status.DEADLINE_EXCEEDED) return !connected;
  return false;
}

/** grpc-js's "No connection established. Last error: Error: connect ENOENT /x. Resolution note: " → "connect ENOENT /x". */
function connectReason(err: grpc.ServiceError): string {
  const m = /Last error: (?:Error: )?(.*?)(?:\.? Resolution note:.*)?$/s.exec(err.details);
  return (m?.[1] || err.details || codeName(err.code)).trim();
}

export interface FailureContext {
  verb: string;
  usage: string;
  endpoint?: string;
  /** Whether the channel had reached the daemon when the error arrived. */
  connected?: boolean;
}

const isParseArgsError = (err: unknown): err is Error => {
  const code: unknown = err instanceof Error ? (err as Error & { code?: unknown }).code : undefined;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS');
};

export function reportFailure(err: unknown, io: CliIo, ctx: FailureContext): number {
  const prefix = ctx.verb ? `vmlet ${ctx.verb}` : 'vmlet';
  if (err instanceof UsageError || isParseArgsError(err) || (err instanceof SpecInputError && err.origin === 'flag')) {
    const message = err.message.replace(/\. To specify a positional argument.*$/s, '');
    io.stderr(`${prefix}: ${message}\n\n${ctx.usage}\n`);
    return 2;
  }
  if (err instanceof SpecInputError) {
    io.stderr(`${prefix}: ${err.message}\n`);
    return 2;
  }
  if (isServiceError(err)) {
    if (ctx.endpoint && isConnectFailure(err, ctx.connected ?? false)) {
      io.stderr(
        `vmlet: cannot reach the vmlet daemon at ${ctx.endpoint} (${connectReason(err)})\n` +
          `  Is it running? Start it with \`vmlet daemon\` (or \`npm start\`), or point at another one with --endpoint ADDR or VMLET_ENDPOINT.\n`,
      );
      return 1;
    }
    io.stderr(`vmlet: ${codeName(err.code)}: ${err.details || err.message}\n`);
    return 1;
  }
  const message = err instanceof Error ? err.message : String(err);
  io.stderr(`${prefix}: ${message}\n`);
  return 1;
}
