import { createHash } from 'node:crypto';
import type { Comparator, Comparison } from '@mlplane/core';
import { decodePageToken, encodePageToken, foreignPageToken, malformedPageToken } from '@mlplane/core';
import type { Expression, ExpressionBuilder, SqlBool } from 'kysely';
import type { SqlDialect } from './dialect.js';

/** Shared by the tracker's and the registry's search: filter comparisons and offset page tokens. */

/** Comparators a numeric field accepts. */
export const NUMERIC_OPS: readonly Comparator[] = ['=', '!=', '>', '>=', '<', '<='];
/** Comparators a string field accepts. */
export const STRING_OPS: readonly Comparator[] = ['=', '!=', 'LIKE', 'ILIKE'];

/** One parsed filter comparison as SQL; LIKE/ILIKE go through the dialect, which knows each engine's case rules. */
export function compareColumn(
  eb: ExpressionBuilder<any, any>,
  dialect: SqlDialect,
  column: Expression<unknown>,
  comparator: Comparator,
  value: Comparison['value'],
): Expression<SqlBool> {
  switch (comparator) {
    case 'LIKE':
      return dialect.like(column, value as string);
    case 'ILIKE':
      return dialect.ilike(column, value as string);
    case 'IN':
      return dialect.inList(column, value as string[]);
    case 'NOT IN':
      return dialect.inList(column, value as string[], true);
    default:
      return eb(column, comparator, value);
  }
}

/**
 * A filter value compared with a name column, in the form names are stored in (NFC, see normalizeName), so
 * `name = 'café'` finds the model whichever encoding of `é` either side used. Other fields compare as written.
 */
export function asStoredName(value: Comparison['value']): Comparison['value'] {
  if (typeof value === 'string') return value.normalize('NFC');
  if (Array.isArray(value)) return value.map((v) => v.normalize('NFC'));
  return value;
}

/** A short fingerprint of a query, stored in its page tokens so a token cannot be replayed against another query. */
export function queryHash(parts: unknown): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('base64url').slice(0, 16);
}

interface OffsetToken {
  readonly o: number;
  readonly q: string;
}

/** The offset a page token points at; `unchanged` names what the caller must keep while paging. */
export function readOffset(pageToken: string | undefined, hash: string, unchanged: string): number {
  if (pageToken === undefined) return 0;
  const state = decodePageToken<Partial<OffsetToken>>(pageToken);
  if (!state || typeof state !== 'object' || !Number.isSafeInteger(state.o) || (state.o as number) < 0) {
    throw malformedPageToken();
  }
  if (state.q !== hash) {
    throw foreignPageToken(unchanged);
  }
  return state.o as number;
}

export function offsetPageToken(offset: number, hash: string): string {
  return encodePageToken({ o: offset, q: hash } satisfies OffsetToken);
}
