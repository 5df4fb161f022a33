/**
 * The one error type of vmlet. Its code maps 1:1 to a gRPC status (see api/grpc/status.ts);
 * the message says what was wrong and, where it helps, what to do.
 */
export type ErrorCode =
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'FAILED_PRECONDITION'
  | 'RESOURCE_EXHAUSTED'
  | 'UNAVAILABLE'
  | 'DEADLINE_EXCEEDED'
  | 'UNAUTHENTICATED'
  | 'PERMISSION_DENIED'
  | 'ABORTED'
  | 'CANCELLED'
  | 'UNIMPLEMENTED'
  | 'INTERNAL';

export class VmletError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'VmletError';
  }
}

export const invalidArgument = (field: string, problem: string): VmletError =>
  new VmletError('INVALID_ARGUMENT', `${field}: ${problem}`);

export const notFound = (what: string): VmletError => new VmletError('NOT_FOUND', `${what} not found`);

export const failedPrecondition = (message: string): VmletError => new VmletError('FAILED_PRECONDITION', message);

export const unavailable = (message: string, cause?: unknown): VmletError =>
  new VmletError('UNAVAILABLE', message, { cause });

/** Wraps anything thrown into a VmletError; unknown errors are INTERNAL (a bug). */
export function asVmletError(err: unknown): VmletError {
  if (err instanceof VmletError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new VmletError('INTERNAL', message, { cause: err });
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
