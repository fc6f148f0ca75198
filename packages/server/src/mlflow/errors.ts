import {
  ConflictError,
  isMlplaneError,
  NotFoundError,
  PermissionDeniedError,
  UnavailableError,
  ValidationError,
  VetoedError,
} from '@mlplane/core';
import { HttpError } from '../http/errors.js';

/**
 * MLflow's error codes (databricks.proto) that this API answers with, and the HTTP status MLflow gives each
 * (mlflow/exceptions.py ERROR_CODE_TO_HTTP_STATUS): note RESOURCE_ALREADY_EXISTS is 400, not 409.
 */
export const MLFLOW_ERROR_STATUS = Object.freeze({
  INVALID_PARAMETER_VALUE: 400,
  RESOURCE_ALREADY_EXISTS: 400,
  RESOURCE_DOES_NOT_EXIST: 404,
  ENDPOINT_NOT_FOUND: 404,
  RESOURCE_CONFLICT: 409,
  UNAUTHENTICATED: 401,
  PERMISSION_DENIED: 403,
  REQUEST_LIMIT_EXCEEDED: 429,
  TEMPORARILY_UNAVAILABLE: 503,
  INTERNAL_ERROR: 500,
});
export type MlflowErrorCode = keyof typeof MLFLOW_ERROR_STATUS;

/** The body every MLflow error answers with. */
export interface MlflowErrorBody {
  readonly error_code: MlflowErrorCode;
  readonly message: string;
}

/** An error this API raises itself in MLflow's terms (an unknown endpoint, a bad artifact path). */
export class MlflowApiError extends Error {
  constructor(
    readonly errorCode: MlflowErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'MlflowApiError';
  }
}

/**
 * The MLflow code and status an error answers with. A ConflictError means "the name is taken" on creates and
 * renames (`conflict` says so per endpoint: RESOURCE_ALREADY_EXISTS) and "this change is not allowed" elsewhere
 * (re-logging a param with another value, writing to a deleted run), which MLflow answers INVALID_PARAMETER_VALUE.
 * A veto by a `model.beforePromote` policy is a refusal the caller cannot retry its way past: PERMISSION_DENIED.
 * Limits of the HTTP layer keep their status (413 body too large, 415 not JSON) under INVALID_PARAMETER_VALUE.
 */
export function mlflowError(
  err: unknown,
  conflict: MlflowErrorCode = 'INVALID_PARAMETER_VALUE',
): { status: number; body: MlflowErrorBody; unexpected: boolean; headers?: Readonly<Record<string, string>> } {
  const answer = (code: MlflowErrorCode, message: string, status: number = MLFLOW_ERROR_STATUS[code]) => ({
    status,
    body: { error_code: code, message },
    unexpected: false,
  });
  if (err instanceof MlflowApiError) return answer(err.errorCode, err.message);
  if (err instanceof HttpError) {
    const code: MlflowErrorCode =
      err.status === 401
        ? 'UNAUTHENTICATED'
        : err.status === 403
          ? 'PERMISSION_DENIED'
          : err.status === 404
            ? 'RESOURCE_DOES_NOT_EXIST'
            : err.status === 429
              ? 'REQUEST_LIMIT_EXCEEDED'
              : err.status === 503
                ? 'TEMPORARILY_UNAVAILABLE'
                : err.status >= 500
                  ? 'INTERNAL_ERROR'
                  : 'INVALID_PARAMETER_VALUE';
    return { ...answer(code, err.message, err.status), ...(err.headers ? { headers: err.headers } : {}) };
  }
  if (err instanceof ValidationError) return answer('INVALID_PARAMETER_VALUE', err.message);
  if (err instanceof NotFoundError) return answer('RESOURCE_DOES_NOT_EXIST', err.message);
  if (err instanceof VetoedError) return answer('PERMISSION_DENIED', err.message);
  if (err instanceof ConflictError) return answer(conflict, err.message);
  if (err instanceof PermissionDeniedError) return answer('PERMISSION_DENIED', err.message);
  if (err instanceof UnavailableError) return answer('TEMPORARILY_UNAVAILABLE', err.message);
  if (isMlplaneError(err) && err.httpStatus < 500) return answer('INVALID_PARAMETER_VALUE', err.message);
  return {
    status: 500,
    body: {
      error_code: 'INTERNAL_ERROR',
      message: 'internal error; the server log has the details under this request id',
    },
    unexpected: true,
  };
}
