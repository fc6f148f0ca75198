import { createHash } from 'node:crypto';
import { createServiceRef } from '../kernel/service-ref.js';
import { ValidationError } from './errors.js';
import type { Page, PageLimits, PageOptions } from './paging.js';

export { UnavailableError, ValidationError } from './errors.js';
export type { Page, PageOptions } from './paging.js';

export const AUDIT_LIST_PAGE: PageLimits = Object.freeze({ default: 100, max: 1000 });
/** `prevHash` of the first entry: 64 zeros. */
export const AUDIT_GENESIS_HASH = '0'.repeat(64);

export type JsonValue = null | boolean | number | string | readonly JsonValue[] | { readonly [key: string]: JsonValue };

export type AuditOutcome = 'allowed' | 'denied' | 'failed' | 'succeeded';

/** What a caller records; the log adds `seq`, `id`, `prevHash`, `hash` (and `at` when absent). */
export interface AuditRecord {
  /** Principal id, or `system`. */
  readonly actor: string;
  /** Dotted verb, usually the permission or event type: `model.promote`, `token.create`. */
  readonly action: string;
  /** `<kind>:<id>`, e.g. `model:fraud/3`, `job:4f2c`. */
  readonly resource: string;
  readonly project: string;
  readonly outcome: AuditOutcome;
  /** Context (reason, request id, changed fields); never secrets. */
  readonly details: Readonly<Record<string, JsonValue>>;
  /** ISO-8601 UTC with milliseconds (`2025-03-01T12:00:00.000Z`); a string so the hash does not depend on Date serialization. */
  readonly at?: string;
}

/** The fields covered by `hash`: everything but `prevHash` (hashed separately) and `hash` itself. */
export interface AuditEntryFields extends Required<AuditRecord> {
  /** 1, 2, 3... gap-free in append order. */
  readonly seq: number;
  /** UUID. */
  readonly id: string;
}

/** A stored entry. `hash` chains it to its predecessor, so changing, removing or reordering entries is detectable. */
export interface AuditEntry extends AuditEntryFields {
  readonly prevHash: string;
  /** `auditEntryHash(prevHash, fields)`. */
  readonly hash: string;
}

export interface AuditQuery extends PageOptions {
  readonly actor?: string;
  /** Exact, or a prefix ending in `.*` (`model.*`). */
  readonly action?: string;
  readonly resource?: string;
  readonly project?: string;
  readonly outcome?: AuditOutcome;
  /** Inclusive lower bound on `at`. */
  readonly from?: Date;
  /** Exclusive upper bound on `at`. */
  readonly to?: Date;
  /** By `seq`; default `desc` (newest first). */
  readonly order?: 'asc' | 'desc';
}

export interface AuditVerification {
  readonly ok: boolean;
  readonly checkedEntries: number;
  /** The first entry whose `prevHash` or `hash` does not match, or where `seq` skips. */
  readonly firstBrokenSeq?: number;
  readonly reason?: string;
}

/**
 * Append-only, hash-chained record of security-relevant actions (who did what to which resource, and
 * whether it was allowed). Entries are never updated or deleted through this port.
 */
export interface AuditLog {
  /**
   * Appends one entry after the current head, serialized across processes so the chain never forks, and
   * returns it as stored. ValidationError for details that are not JSON or an `at` that is not ISO-8601 UTC.
   */
  append(record: AuditRecord): Promise<AuditEntry>;
  /** Page limits AUDIT_LIST_PAGE. */
  list(query?: AuditQuery): Promise<Page<AuditEntry>>;
  /** The latest entry's seq and hash (for anchoring elsewhere); absent when the log is empty. */
  head(): Promise<{ readonly seq: number; readonly hash: string } | undefined>;
  /** Recomputes the chain over [fromSeq, toSeq] (whole log by default) and reports the first break. */
  verify(range?: { readonly fromSeq?: number; readonly toSeq?: number }): Promise<AuditVerification>;
}

export const auditLogRef = createServiceRef<AuditLog>({ id: 'core.auditLog' });

/**
 * Deterministic JSON: object keys sorted by UTF-16 code units, no whitespace, `undefined` members dropped,
 * numbers and strings as JSON.stringify writes them (the same as RFC 8785 for JSON-safe input).
 * ValidationError for values JSON cannot represent (NaN, Infinity, bigint, functions, symbols).
 */
export function canonicalJson(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
    case 'string':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value))
        throw new ValidationError(`${value} cannot be written as JSON`, { field: 'details' });
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`;
      const entries = Object.entries(value as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
    }
    default:
      throw new ValidationError(`a ${typeof value} cannot be written as JSON`, { field: 'details' });
  }
}

/** The chain rule: hex sha256 of `prevHash` followed by the canonical JSON of the entry's fields. */
export function auditEntryHash(prevHash: string, fields: AuditEntryFields): string {
  const { seq, id, at, actor, action, resource, project, outcome, details } = fields;
  return createHash('sha256')
    .update(prevHash)
    .update(canonicalJson({ seq, id, at, actor, action, resource, project, outcome, details }))
    .digest('hex');
}
