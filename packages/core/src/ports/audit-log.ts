import { createHash, createHmac, hkdfSync } from 'node:crypto';
import { z } from 'zod';
import { createServiceRef } from '../kernel/service-ref.js';
import { describeValue, IntegrityError, ValidationError } from './errors.js';
import { limitedString, oneOf, positiveInteger, validDate } from './input-schemas.js';
import { type Page, type PageLimits, type PageOptions, pageOptions } from './paging.js';
import { type PortInputs, portInput } from './port-inputs.js';

export { IntegrityError, UnavailableError, ValidationError } from './errors.js';
export type { Page, PageOptions } from './paging.js';

export const AUDIT_LIST_PAGE: PageLimits = Object.freeze({ default: 100, max: 1000 });
/** Limits of one record, so one entry cannot bloat every scan of the log. */
export const AUDIT_LIMITS = Object.freeze({
  /** Characters of `actor`, `action`, `resource` and `project` (and of the same filters in a query). */
  fieldLength: 1024,
  /** `details` as canonical JSON, in UTF-8 bytes. */
  detailsBytes: 65_536,
});
export const AUDIT_OUTCOMES: readonly AuditOutcome[] = Object.freeze(['allowed', 'denied', 'failed', 'succeeded']);
/** `2025-03-01T12:00:00.000Z`: what Date#toISOString writes for years 0 to 9999. */
export const AUDIT_TIME_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

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
  /** `auditEntryHash(prevHash, fields, chainKey)`: keyed, so only a holder of the key can write a valid chain. */
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
  /**
   * The first entry that cannot be vouched for: its `prevHash` or `hash` does not match, `seq` skips, it lies past
   * the head, or (when the record of the head is gone or behind an anchor) the first entry after the last one known.
   */
  readonly firstBrokenSeq?: number;
  /** Every problem found, lowest seq first, separated by `; `. */
  readonly reason?: string;
}

/** What an AuditIntegrityError found. */
export type AuditIntegrityProblem =
  /** The record of the chain's end is gone, so nothing shows whether entries were removed from the end. */
  | 'missing-head'
  /** Entries an anchor (a checkpoint, or this process's own appends) knows of are gone: `lost` names them. */
  | 'lost-entries'
  /** An entry was changed, removed or added outside the log: `firstBrokenSeq` names the first. */
  | 'broken-chain'
  /** The chain key at hand is not the one the log was written with. */
  | 'wrong-key'
  /** A checkpoint of the head is not signed with the log's key. */
  | 'bad-checkpoint';

/**
 * The stored log fails an integrity check, so the log refuses to open or to append (appending would extend, and a
 * later checkpoint would vouch for, a chain that cannot be trusted). The message names what was found and how to
 * proceed; `verify()` reports the extent.
 */
export class AuditIntegrityError extends IntegrityError {
  readonly problem: AuditIntegrityProblem;
  readonly firstBrokenSeq: number | undefined;
  /** The entries an anchor knows of that the storage no longer holds (inclusive). */
  readonly lost: { readonly fromSeq: number; readonly toSeq: number } | undefined;
  constructor(
    problem: AuditIntegrityProblem,
    message: string,
    details: {
      readonly firstBrokenSeq?: number;
      readonly lost?: { readonly fromSeq: number; readonly toSeq: number };
      readonly cause?: unknown;
    } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.problem = problem;
    this.firstBrokenSeq = details.firstBrokenSeq ?? details.lost?.fromSeq;
    this.lost = details.lost;
  }
}

/**
 * Append-only, hash-chained record of security-relevant actions (who did what to which resource, and
 * whether it was allowed). Entries are never updated or deleted through this port.
 *
 * A log never moves its head backwards: an implementation remembers the furthest head it has appended, read or
 * anchored (SqlAuditLog also signs checkpoints of it outside its database), and treats a head behind that as lost
 * entries.
 */
export interface AuditLog {
  /**
   * Appends one entry after the current head, serialized across processes so the chain never forks, and
   * returns it as stored. ValidationError for details that are not JSON or exceed AUDIT_LIMITS.detailsBytes, a
   * field beyond AUDIT_LIMITS.fieldLength, or an `at` that is not ISO-8601 UTC.
   * AuditIntegrityError, writing nothing, when the chain's end cannot be trusted: the head record is missing, the
   * entry it names was removed or changed, an entry lies past it, or it is behind a head already known.
   */
  append(record: AuditRecord): Promise<AuditEntry>;
  /** Page limits AUDIT_LIST_PAGE. */
  list(query?: AuditQuery): Promise<Page<AuditEntry>>;
  /**
   * The latest entry's seq and hash (for anchoring elsewhere); absent when the log is empty.
   * AuditIntegrityError (`missing-head`) when the storage lost its record of the head.
   */
  head(): Promise<{ readonly seq: number; readonly hash: string } | undefined>;
  /**
   * Recomputes the chain over [fromSeq, toSeq] (whole log by default) and reports the first break. Never ok when the
   * record of the head is missing, whatever the range; entries an anchor knows of count as written, so a range over
   * them that the storage lost reports them missing. AuditIntegrityError (`bad-checkpoint`) when an anchor it would
   * compare with is itself not genuine.
   */
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

/**
 * The chain rule: hex HMAC-SHA256 under `chainKey` (see `auditKeys`) of `prevHash` followed by the canonical JSON of
 * the entry's fields. Without a key it is plain sha256, which anyone can recompute: a chain of that kind shows
 * accidental damage, not an editor who re-hashes what they changed.
 */
export function auditEntryHash(prevHash: string, fields: AuditEntryFields, chainKey?: Uint8Array): string {
  const { seq, id, at, actor, action, resource, project, outcome, details } = fields;
  const digest = chainKey === undefined ? createHash('sha256') : createHmac('sha256', chainKey);
  return digest
    .update(prevHash)
    .update(canonicalJson({ seq, id, at, actor, action, resource, project, outcome, details }))
    .digest('hex');
}

/**
 * The canonical JSON of a record's details, checked: plain JSON data only (no Date, Map, class instance, NaN,
 * bigint or function anywhere) and at most AUDIT_LIMITS.detailsBytes. ValidationError (field `details`) otherwise.
 */
export function auditDetailsJson(details: Readonly<Record<string, JsonValue>>): string {
  const problem = jsonDataProblem(details, 'details');
  if (problem) throw new ValidationError(`details ${problem}`, { field: 'details' });
  const json = canonicalJson(details);
  const bytes = Buffer.byteLength(json, 'utf8');
  if (bytes > AUDIT_LIMITS.detailsBytes) {
    throw new ValidationError(
      `details take ${bytes} bytes as JSON; the detailsBytes limit is ${AUDIT_LIMITS.detailsBytes}`,
      { field: 'details' },
    );
  }
  return json;
}

/** What in `value` is not plain JSON data, as a predicate naming where (`hold NaN at details.n, ...`). */
function jsonDataProblem(value: unknown, path: string): string | undefined {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return undefined;
  if (typeof value === 'number') {
    return Number.isFinite(value) ? undefined : `hold ${value} at ${path}, which cannot be written as JSON`;
  }
  // Dropped from objects as JSON.stringify drops it; written as null in arrays.
  if (value === undefined) return undefined;
  if (typeof value !== 'object') return `hold ${describeValue(value)} at ${path}, which cannot be written as JSON`;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const problem = jsonDataProblem(value[i], `${path}[${i}]`);
      if (problem) return problem;
    }
    return undefined;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    return `hold ${describeValue(value)} at ${path}, which is not JSON data`;
  }
  for (const [key, v] of Object.entries(value)) {
    const problem = jsonDataProblem(v, `${path}.${key.length > 40 ? `${key.slice(0, 40)}...` : key}`);
    if (problem) return problem;
  }
  return undefined;
}

const auditText = (nonEmpty: boolean) =>
  limitedString('fieldLength', AUDIT_LIMITS.fieldLength, { nonEmpty, blankIsEmpty: true });
const outcome = oneOf(['allowed', 'denied', 'failed', 'succeeded']);

/** An AuditRecord with AUDIT_LIMITS. */
export const auditRecord = z.object(
  {
    actor: auditText(true),
    action: auditText(true),
    resource: auditText(true),
    project: auditText(true),
    outcome,
    details: z
      .record(z.string(), z.unknown(), {
        error: (issue) => `must be a JSON object, got ${describeValue(issue.input)}`,
      })
      .check((ctx) => {
        try {
          auditDetailsJson(ctx.value as Record<string, JsonValue>);
        } catch (err) {
          ctx.issues.push({
            code: 'custom',
            input: undefined,
            message: (err as Error).message.replace(/^details /, ''),
          });
        }
      }) as unknown as z.ZodType<Readonly<Record<string, JsonValue>>>,
    at: z
      .string()
      .refine(
        (at) => AUDIT_TIME_PATTERN.test(at) && !Number.isNaN(Date.parse(at)) && new Date(at).toISOString() === at,
        { error: 'must be ISO-8601 UTC with milliseconds (2025-03-01T12:00:00.000Z)' },
      )
      .optional(),
  },
  { error: (issue) => `must be an audit record object, got ${describeValue(issue.input)}` },
);

/**
 * The arguments of every AuditLog operation; `validatePortInputs(log, auditLogInputs)` applies them at the port's
 * boundary.
 */
export const auditLogInputs = {
  append: z.tuple([portInput('record', auditRecord)]),
  list: z.tuple([
    portInput(
      'query',
      pageOptions(AUDIT_LIST_PAGE).extend({
        actor: auditText(true).optional(),
        action: auditText(true).optional(),
        resource: auditText(true).optional(),
        project: auditText(true).optional(),
        outcome: outcome.optional(),
        from: validDate.optional(),
        to: validDate.optional(),
        order: z.enum(['asc', 'desc'], { error: "must be 'asc' or 'desc'" }).optional(),
      }),
    ).optional(),
  ]),
  verify: z.tuple([
    portInput('range', z.object({ fromSeq: positiveInteger.optional(), toSeq: positiveInteger.optional() })).optional(),
  ]),
} satisfies PortInputs<AuditLog>;

/** Shortest audit key secret accepted, in characters; a generated one is 32 random bytes in base64 (44). */
export const AUDIT_KEY_MIN_LENGTH = 32;

/** The keys an audit log derives from its secret; separate keys so a chain hash can never pass as a signature. */
export interface AuditKeys {
  /** Keys the chain rule (`auditEntryHash`). */
  readonly chainKey: Uint8Array;
  /** Signs checkpoints of the head written outside the log's storage. */
  readonly checkpointKey: Uint8Array;
  /** 16 hex chars naming the key without revealing it: recorded beside the chain and in checkpoints. */
  readonly keyId: string;
}

/**
 * Derives the audit keys from a secret with HKDF-SHA256 (salt `mlplane-audit`, info `chain`, `checkpoint` and
 * `key-id`), so a verifier outside the platform holding the secret can recompute every hash and signature.
 * ValidationError for a secret shorter than AUDIT_KEY_MIN_LENGTH characters.
 */
export function auditKeys(secret: string): AuditKeys {
  if (typeof secret !== 'string' || secret.length < AUDIT_KEY_MIN_LENGTH) {
    throw new ValidationError(
      `the audit key secret must be at least ${AUDIT_KEY_MIN_LENGTH} characters (for example \`openssl rand -base64 32\`)`,
      { field: 'secret' },
    );
  }
  const derive = (info: string, length: number) =>
    new Uint8Array(hkdfSync('sha256', Buffer.from(secret, 'utf8'), 'mlplane-audit', info, length));
  return Object.freeze({
    chainKey: derive('chain', 32),
    checkpointKey: derive('checkpoint', 32),
    keyId: Buffer.from(derive('key-id', 8)).toString('hex'),
  });
}
