import { z } from 'zod';
import { describeValue, ValidationError } from './errors.js';
import { integerBetween, limitedString } from './input-schemas.js';

export { ValidationError } from './errors.js';

/**
 * One page of a listing. Page-token conventions shared by every port:
 * - tokens are opaque strings; only the backend that issued one may interpret it;
 * - `nextPageToken` is absent on the last page (an empty `items` with a token is allowed);
 * - a token is valid only for the same query (filter, order, view); a malformed or foreign
 *   token raises ValidationError with `field: 'pageToken'`;
 * - pages follow the query's order, and items inserted while paging may or may not appear.
 */
export interface Page<T> {
  readonly items: readonly T[];
  readonly nextPageToken?: string;
}

export interface PageOptions {
  /** Page size; each operation documents its default and maximum, ValidationError above the maximum. */
  readonly maxResults?: number;
  readonly pageToken?: string;
}

/**
 * Longest page token any operation accepts. Tokens are opaque, but keyset tokens carry the sort-key values of the
 * page's last item (up to 10 order terms of values as long as 8,000 chars), so the bound is generous.
 */
export const PAGE_TOKEN_LENGTH = 1_048_576;

/** The default and maximum page size of one operation. */
export interface PageLimits {
  readonly default: number;
  readonly max: number;
}

/**
 * Applies an operation's page limits: the default when unset, ValidationError (field `maxResults`)
 * when not a positive integer or above the maximum.
 */
export function resolveMaxResults(maxResults: number | undefined, limits: PageLimits): number {
  if (maxResults === undefined) return limits.default;
  if (!Number.isInteger(maxResults) || maxResults < 1 || maxResults > limits.max) {
    throw new ValidationError(
      `maxResults must be an integer from 1 to ${limits.max}, got ${describeValue(maxResults)}`,
      {
        field: 'maxResults',
      },
    );
  }
  return maxResults;
}

/** The schema of an operation's PageOptions: `maxResults` within `limits`, a `pageToken` within PAGE_TOKEN_LENGTH. */
export function pageOptions(limits: PageLimits) {
  return z.object({
    maxResults: integerBetween(1, limits.max).optional(),
    pageToken: pageToken.optional(),
  });
}

/** A page token as callers pass it back: a string within PAGE_TOKEN_LENGTH (its content is the backend's to judge). */
export const pageToken = limitedString('PAGE_TOKEN_LENGTH', PAGE_TOKEN_LENGTH);

/** Encodes a backend's cursor state as an opaque token (base64url of JSON). */
export function encodePageToken(state: unknown): string {
  return Buffer.from(JSON.stringify(state), 'utf8').toString('base64url');
}

/** Decodes a token made by `encodePageToken`; ValidationError (field `pageToken`) when it is not one. */
export function decodePageToken<T = unknown>(token: string): T {
  try {
    return JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as T;
  } catch (cause) {
    throw malformedPageToken(cause);
  }
}

/** The error for a token this backend did not issue, or not in this shape. */
export function malformedPageToken(cause?: unknown): ValidationError {
  return new ValidationError('pageToken is malformed; pass back the nextPageToken of a previous page unchanged', {
    ...(cause === undefined ? {} : { cause }),
    field: 'pageToken',
  });
}

/** The error for a token issued for another query; `unchanged` names what must stay the same while paging. */
export function foreignPageToken(unchanged: string): ValidationError {
  return new ValidationError(`pageToken belongs to a different query: keep the ${unchanged} unchanged while paging`, {
    field: 'pageToken',
  });
}
