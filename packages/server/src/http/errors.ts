import { isMlplaneError, ValidationError } from '@mlplane/core';

/**
 * The one error shape every route answers with: a stable `code` a client can switch on, a `message` a user can act
 * on, and `details` (the offending field, a limit, the retry delay) when there are any.
 */
export interface ApiErrorBody {
  readonly code: string;
  readonly message: string;
  readonly details?: Readonly<Record<string, unknown>>;
}

/** An error raised by the HTTP layer itself (authentication, body limits, rate limits); port errors map by type. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Readonly<Record<string, unknown>>,
    readonly headers?: Readonly<Record<string, string>>,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export const unauthenticated = (message: string) =>
  new HttpError(401, 'UNAUTHENTICATED', message, undefined, { 'www-authenticate': 'Bearer realm="mlplane"' });

export const payloadTooLarge = (limit: number) =>
  new HttpError(413, 'PAYLOAD_TOO_LARGE', `request body exceeds the limit of ${limit} bytes`, { limit });

export const badRequest = (message: string, details?: Record<string, unknown>) =>
  new HttpError(400, 'VALIDATION', message, details);

/** The status, headers and body an error answers with; anything unknown is a 500 whose message reveals nothing. */
export function errorResponse(err: unknown): {
  status: number;
  body: ApiErrorBody;
  headers?: Readonly<Record<string, string>>;
  unexpected: boolean;
} {
  if (err instanceof HttpError) {
    return {
      status: err.status,
      body: { code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) },
      ...(err.headers ? { headers: err.headers } : {}),
      unexpected: false,
    };
  }
  if (isMlplaneError(err)) {
    const details: Record<string, unknown> = {};
    if (err instanceof ValidationError && err.field !== undefined) details.field = err.field;
    return {
      status: err.httpStatus,
      body: { code: err.code, message: err.message, ...(Object.keys(details).length ? { details } : {}) },
      unexpected: err.httpStatus >= 500 && err.code !== 'UNAVAILABLE',
    };
  }
  return {
    status: 500,
    body: { code: 'INTERNAL', message: 'internal error; the server log has the details under this request id' },
    unexpected: true,
  };
}
