/**
 * Typed errors shared by every port. Each carries a stable `code` a caller can switch on,
 * a message a user can act on, and the underlying `cause` when there is one.
 */
export type MlplaneErrorCode =
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'VALIDATION'
  | 'UNAVAILABLE'
  | 'PERMISSION_DENIED'
  | 'VETOED'
  | 'INTEGRITY'
  | 'WIRING'
  | 'CONFIG'
  | 'PLUGIN_FAILED';

export abstract class MlplaneError extends Error {
  abstract readonly code: MlplaneErrorCode;
  /** HTTP status an API gateway maps this error to. */
  abstract readonly httpStatus: number;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The named thing does not exist. */
export class NotFoundError extends MlplaneError {
  readonly code = 'NOT_FOUND' as const;
  readonly httpStatus = 404;
}

/** The request contradicts existing state (duplicate name, immutable value re-set, stale version). */
export class ConflictError extends MlplaneError {
  readonly code = 'CONFLICT' as const;
  readonly httpStatus = 409;
}

/** The input is malformed or breaks a limit; `field` names what to fix when known. */
export class ValidationError extends MlplaneError {
  readonly code = 'VALIDATION' as const;
  readonly httpStatus = 400;
  readonly field: string | undefined;
  constructor(message: string, options?: { cause?: unknown; field?: string }) {
    super(message, options);
    this.field = options?.field;
  }
}

/** A backend could not be reached or refused to serve; retrying later may succeed. */
export class UnavailableError extends MlplaneError {
  readonly code = 'UNAVAILABLE' as const;
  readonly httpStatus = 503;
}

/**
 * Stored data fails an integrity check: it was changed outside the platform, or writes the platform acknowledged were
 * lost (a restored backup, a crash that took the database's log with it). Retrying does not help; the message says
 * what was found and how to proceed.
 */
export class IntegrityError extends MlplaneError {
  readonly code = 'INTEGRITY' as const;
  readonly httpStatus = 500;
}

/** The caller lacks the permission the operation declares. */
export class PermissionDeniedError extends MlplaneError {
  readonly code = 'PERMISSION_DENIED' as const;
  readonly httpStatus = 403;
}

/** A policy tapped into a bail hook refused the action; `reason` is the policy's own words. */
export class VetoedError extends MlplaneError {
  readonly code = 'VETOED' as const;
  readonly httpStatus = 409;
  readonly reason: string;
  readonly by: string | undefined;
  constructor(action: string, reason: string, by?: string) {
    super(`${action} was vetoed${by ? ` by ${by}` : ''}: ${reason}`);
    this.reason = reason;
    this.by = by;
  }
}

/** Values shown in error messages are cut to this many characters, so a huge input never floods a message or log. */
export const QUOTED_VALUE_LENGTH = 64;

/**
 * A value as an error message shows it: a short string quoted (`'abc'`), a long one cut with its length
 * (`'abcd...' (70000 chars)`), anything else by its type. Messages name what was wrong without echoing huge inputs.
 */
export function quoteValue(value: unknown, max = QUOTED_VALUE_LENGTH): string {
  if (typeof value === 'string') {
    return value.length <= max ? `'${value}'` : `'${value.slice(0, max)}...' (${value.length} chars)`;
  }
  return describeValue(value);
}

/** The kind of a value for an error message (`null`, `a number`, `an array of 3 items`), never its content. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return `an array of ${value.length} items`;
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'an invalid Date' : 'a Date';
  switch (typeof value) {
    case 'string':
      return `a string of ${value.length} chars`;
    case 'number':
      return Number.isNaN(value) ? 'NaN' : Number.isFinite(value) ? `the number ${value}` : `${value}`;
    case 'object': {
      const name = Object.getPrototypeOf(value)?.constructor?.name;
      return name && name !== 'Object' ? `a ${name}` : 'an object';
    }
    default:
      return /^[aeiou]/.test(typeof value) ? `an ${typeof value}` : `a ${typeof value}`;
  }
}

export function isMlplaneError(err: unknown): err is MlplaneError {
  return err instanceof MlplaneError;
}

/** A lookup whose NotFoundError means "absent": resolves to undefined then, and passes every other error on. */
export async function unlessNotFound<T>(lookup: Promise<T>): Promise<T | undefined> {
  try {
    return await lookup;
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}
