import { createHash } from 'node:crypto';
import { decodePageToken, encodePageToken, foreignPageToken, malformedPageToken, type Page } from '@mlplane/core';

/**
 * MLflow's search page tokens travel inside mlplane's own, which also carry a fingerprint of the query so that a
 * token replayed against another filter, order or view is refused (ValidationError, field `pageToken`).
 */

export function queryKey(parts: unknown): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('base64url').slice(0, 16);
}

/** MLflow's token inside `token`, or undefined for the first page; `unchanged` names what must stay the same. */
export function readToken(token: string | undefined, query: string, unchanged: string): string | undefined {
  if (token === undefined) return undefined;
  const state = decodePageToken<{ t?: unknown; q?: unknown }>(token);
  if (!state || typeof state !== 'object' || typeof state.t !== 'string') throw malformedPageToken();
  if (state.q !== query) throw foreignPageToken(unchanged);
  return state.t;
}

export function page<T>(items: T[], mlflowToken: string | undefined, query: string): Page<T> {
  return mlflowToken ? { items, nextPageToken: encodePageToken({ t: mlflowToken, q: query }) } : { items };
}
