import { status, type ServiceError, Metadata } from '@grpc/grpc-js';
import { asVmletError, type ErrorCode } from '../../model/errors.js';

const CODE: Record<ErrorCode, status> = {
  INVALID_ARGUMENT: status.INVALID_ARGUMENT,
  NOT_FOUND: status.NOT_FOUND,
  ALREADY_EXISTS: status.ALREADY_EXISTS,
  FAILED_PRECONDITION: status.FAILED_PRECONDITION,
  RESOURCE_EXHAUSTED: status.RESOURCE_EXHAUSTED,
  UNAVAILABLE: status.UNAVAILABLE,
  DEADLINE_EXCEEDED: status.DEADLINE_EXCEEDED,
  UNAUTHENTICATED: status.UNAUTHENTICATED,
  PERMISSION_DENIED: status.PERMISSION_DENIED,
  ABORTED: status.ABORTED,
  CANCELLED: status.CANCELLED,
  UNIMPLEMENTED: status.UNIMPLEMENTED,
  INTERNAL: status.INTERNAL,
};

export function toServiceError(err: unknown): Partial<ServiceError> & { code: status } {
  const e = asVmletError(err);
  return { code: CODE[e.code], details: e.message, metadata: new Metadata() };
}

/** 'OK', 'NOT_FOUND', … for logs and metric labels. */
export const codeName = (code: status): string => status[code] ?? String(code);
