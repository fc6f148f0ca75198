import { createHash, randomUUID } from 'node:crypto';
import type { DomainEvent, MetadataStore } from '@mlplane/core';
import {
  AUDIT_GENESIS_HASH,
  AUDIT_LIMITS,
  AUDIT_LIST_PAGE,
  AUDIT_OUTCOMES,
  AUDIT_TIME_PATTERN,
  type AuditEntry,
  type AuditEntryFields,
  type AuditLog,
  type AuditOutcome,
  type AuditQuery,
  type AuditRecord,
  type AuditVerification,
  auditDetailsJson,
  auditEntryHash,
  decodePageToken,
  encodePageToken,
  foreignPageToken,
  type JsonValue,
  malformedPageToken,
  type Page,
  quoteValue,
  resolveMaxResults,
  ValidationError,
} from '@mlplane/core';
import type { Kysely, Transaction } from 'kysely';
import { type SqlDialect, sqlDialect } from '../dialect/dialect.js';
import { auditFromEvent } from './from-event.js';
import { AUDIT_MIGRATIONS, AUDIT_OWNER, type AuditDatabase, type AuditLogRow } from './schema.js';

export interface SqlAuditLogOptions {
  readonly store: MetadataStore;
  /** Project recorded for events that carry none (see `auditFromEvent`); default `default`. */
  readonly defaultProject?: string;
}

export { AUDIT_OUTCOMES } from '@mlplane/core';
/** Longest actor, action, resource and project accepted, so one entry cannot bloat every scan. */
export const AUDIT_FIELD_LENGTH = AUDIT_LIMITS.fieldLength;
/** Entries read per round trip while verifying. */
const VERIFY_BATCH = 1000;

type Trx = Transaction<AuditDatabase>;
type Db = Kysely<AuditDatabase>;

/**
 * The AuditLog on a MetadataStore (SQLite or PostgreSQL): one row per entry plus a head row. Appends lock the head
 * row (Postgres `SELECT ... FOR UPDATE`; SQLite's write transactions are already exclusive), so seq is gap-free and
 * the chain never forks even with many appending processes.
 */
export class SqlAuditLog implements AuditLog {
  readonly #store: MetadataStore;
  readonly #dialect: SqlDialect;
  readonly #defaultProject: string | undefined;

  constructor(options: SqlAuditLogOptions) {
    this.#store = options.store;
    this.#dialect = sqlDialect(options.store.dialect);
    this.#defaultProject = options.defaultProject;
  }

  /** Applies the audit migrations, then returns a ready log. */
  static async open(options: SqlAuditLogOptions): Promise<SqlAuditLog> {
    await options.store.migrate(AUDIT_OWNER, AUDIT_MIGRATIONS);
    return new SqlAuditLog(options);
  }

  get #db(): Db {
    return this.#store.db<AuditDatabase>();
  }

  async append(record: AuditRecord): Promise<AuditEntry> {
    const prepared = prepare(record);
    return this.#store.transaction<AuditEntry, AuditDatabase>((trx) => this.#appendLocked(trx, prepared, null));
  }

  /**
   * Appends the entry `auditFromEvent` makes of a domain event, once per event id: a redelivered event returns the
   * entry already recorded, so an at-least-once relay can feed the log directly.
   */
  async appendEvent(event: DomainEvent): Promise<AuditEntry> {
    if (typeof event?.id !== 'string' || event.id === '') {
      throw new ValidationError('event id must be a non-empty string', { field: 'id' });
    }
    const prepared = prepare(auditFromEvent(event, { defaultProject: this.#defaultProject }));
    return this.#store.transaction<AuditEntry, AuditDatabase>((trx) => this.#appendLocked(trx, prepared, event.id));
  }

  async #appendLocked(trx: Trx, record: Prepared, eventId: string | null): Promise<AuditEntry> {
    const head = await this.#lockHead(trx);
    if (eventId !== null) {
      const seen = await trx.selectFrom('audit_log').selectAll().where('event_id', '=', eventId).executeTakeFirst();
      if (seen) return toEntry(seen);
    }
    const { detailsJson, ...base } = record;
    const fields: AuditEntryFields = { ...base, seq: head.seq + 1, id: randomUUID() };
    const hash = auditEntryHash(head.hash, fields);
    await trx
      .insertInto('audit_log')
      .values({
        seq: fields.seq,
        id: fields.id,
        at: fields.at,
        at_ms: Date.parse(fields.at),
        actor: fields.actor,
        action: fields.action,
        resource: fields.resource,
        project: fields.project,
        outcome: fields.outcome,
        details: detailsJson,
        prev_hash: head.hash,
        hash,
        event_id: eventId,
      })
      .execute();
    await trx.updateTable('audit_head').set({ seq: fields.seq, hash }).where('id', '=', 1).execute();
    return { ...fields, prevHash: head.hash, hash };
  }

  /** Reads the head inside the transaction, holding its row lock on Postgres until commit. */
  async #lockHead(trx: Trx): Promise<{ seq: number; hash: string }> {
    let q = trx.selectFrom('audit_head').select(['seq', 'hash']).where('id', '=', 1);
    if (this.#dialect.name === 'postgres') q = q.forUpdate();
    const head = await q.executeTakeFirstOrThrow();
    return { seq: Number(head.seq), hash: head.hash };
  }

  async list(query: AuditQuery = {}): Promise<Page<AuditEntry>> {
    const maxResults = resolveMaxResults(query.maxResults, AUDIT_LIST_PAGE);
    const order = query.order ?? 'desc';
    if (order !== 'asc' && order !== 'desc') {
      throw new ValidationError(`order must be 'asc' or 'desc', got ${quoteValue(order)}`, { field: 'order' });
    }
    for (const field of ['actor', 'action', 'resource', 'project'] as const) {
      const value = query[field];
      if (value !== undefined && (typeof value !== 'string' || value === '')) {
        throw new ValidationError(`${field} must be a non-empty string`, { field });
      }
      if (value !== undefined && value.length > AUDIT_FIELD_LENGTH) {
        throw new ValidationError(
          `${field} has ${value.length} chars; the fieldLength limit is ${AUDIT_FIELD_LENGTH}`,
          { field },
        );
      }
    }
    if (query.outcome !== undefined && !AUDIT_OUTCOMES.includes(query.outcome)) {
      throw new ValidationError(
        `outcome must be one of ${AUDIT_OUTCOMES.join(', ')}, got ${quoteValue(query.outcome)}`,
        {
          field: 'outcome',
        },
      );
    }
    for (const field of ['from', 'to'] as const) {
      const value = query[field];
      if (value !== undefined && (!(value instanceof Date) || Number.isNaN(value.getTime()))) {
        throw new ValidationError(`${field} must be a valid Date`, { field });
      }
    }
    const scope = queryHash([
      query.actor,
      query.action,
      query.resource,
      query.project,
      query.outcome,
      query.from?.getTime(),
      query.to?.getTime(),
      order,
    ]);
    let after: number | undefined;
    if (query.pageToken !== undefined) {
      const state = decodePageToken<{ s?: unknown; q?: unknown }>(query.pageToken);
      if (!state || typeof state !== 'object' || !Number.isSafeInteger(state.s)) {
        throw malformedPageToken();
      }
      if (state.q !== scope) {
        throw foreignPageToken('filters and order');
      }
      after = state.s as number;
    }
    let q = this.#db.selectFrom('audit_log').selectAll();
    if (query.actor !== undefined) q = q.where('actor', '=', query.actor);
    if (query.resource !== undefined) q = q.where('resource', '=', query.resource);
    if (query.project !== undefined) q = q.where('project', '=', query.project);
    if (query.outcome !== undefined) q = q.where('outcome', '=', query.outcome);
    if (query.action !== undefined) {
      const action = query.action;
      q = action.endsWith('.*')
        ? q.where((eb) => this.#dialect.like(eb.ref('action'), `${escapeLike(action.slice(0, -1))}%`))
        : q.where('action', '=', action);
    }
    if (query.from !== undefined) q = q.where('at_ms', '>=', query.from.getTime());
    if (query.to !== undefined) q = q.where('at_ms', '<', query.to.getTime());
    if (after !== undefined) q = q.where('seq', order === 'asc' ? '>' : '<', after);
    const rows = await q
      .orderBy('seq', order)
      .limit(maxResults + 1)
      .execute();
    const page = rows.slice(0, maxResults);
    const items = page.map(toEntry);
    const last = page.at(-1);
    return rows.length > maxResults && last
      ? { items, nextPageToken: encodePageToken({ s: Number(last.seq), q: scope }) }
      : { items };
  }

  async head(): Promise<{ readonly seq: number; readonly hash: string } | undefined> {
    const head = await this.#db.selectFrom('audit_head').select(['seq', 'hash']).where('id', '=', 1).executeTakeFirst();
    if (!head || Number(head.seq) === 0) return undefined;
    return { seq: Number(head.seq), hash: head.hash };
  }

  async verify(range: { readonly fromSeq?: number; readonly toSeq?: number } = {}): Promise<AuditVerification> {
    for (const field of ['fromSeq', 'toSeq'] as const) {
      const value = range[field];
      if (value !== undefined && (!Number.isSafeInteger(value) || value < 1)) {
        throw new ValidationError(`${field} must be a positive integer, got ${String(value)}`, { field });
      }
    }
    const db = this.#db;
    // Head and highest stored seq from one statement (one snapshot), so a concurrent append cannot look like an
    // entry written past the head.
    const snapshot = await db
      .selectFrom('audit_head')
      .select([
        'seq',
        'hash',
        (eb) =>
          eb
            .selectFrom('audit_log')
            .select((e) => e.fn.max('seq').as('m'))
            .as('max_seq'),
      ])
      .where('id', '=', 1)
      .executeTakeFirst();
    const head = { seq: Number(snapshot?.seq ?? 0), hash: snapshot?.hash ?? AUDIT_GENESIS_HASH };
    const lastStored = Math.max(head.seq, Number(snapshot?.max_seq ?? 0));
    const from = range.fromSeq ?? 1;
    const to = Math.min(range.toSeq ?? lastStored, lastStored);
    let checked = 0;
    const broken = (seq: number, reason: string): AuditVerification => ({
      ok: false,
      checkedEntries: checked,
      firstBrokenSeq: seq,
      reason,
    });
    if (from > to) return { ok: true, checkedEntries: 0 };

    let expectedPrev = AUDIT_GENESIS_HASH;
    if (from > 1) {
      const before = await db
        .selectFrom('audit_log')
        .select('hash')
        .where('seq', '=', from - 1)
        .executeTakeFirst();
      if (!before) return broken(from - 1, `entry ${from - 1} is missing, so entry ${from} cannot be linked to it`);
      expectedPrev = before.hash;
    }
    let expectedSeq = from;
    for (;;) {
      const rows = await db
        .selectFrom('audit_log')
        .selectAll()
        .where('seq', '>=', expectedSeq)
        .where('seq', '<=', to)
        .orderBy('seq')
        .limit(VERIFY_BATCH)
        .execute();
      for (const row of rows) {
        const seq = Number(row.seq);
        if (seq !== expectedSeq) {
          return broken(
            expectedSeq,
            `entry ${expectedSeq} is missing: the chain jumps from ${expectedSeq - 1} to ${seq}`,
          );
        }
        if (row.prev_hash !== expectedPrev) {
          return broken(
            seq,
            seq === 1
              ? 'entry 1 does not start from the genesis hash'
              : `entry ${seq}'s prevHash does not match the hash of entry ${seq - 1}`,
          );
        }
        let entry: AuditEntry;
        try {
          entry = toEntry(row);
        } catch {
          return broken(seq, `entry ${seq}'s details are not valid JSON`);
        }
        if (auditEntryHash(entry.prevHash, entry) !== row.hash) {
          return broken(seq, `entry ${seq}'s hash does not match its contents: it was changed after it was written`);
        }
        expectedPrev = row.hash;
        expectedSeq = seq + 1;
        checked++;
      }
      if (rows.length < VERIFY_BATCH) break;
    }
    if (expectedSeq <= to) {
      return broken(
        expectedSeq,
        `entry ${expectedSeq} is missing: the log ends at ${expectedSeq - 1} but entries up to ${to} were written`,
      );
    }
    // The head anchors the end of the chain when the whole tail was checked.
    if (range.toSeq === undefined || range.toSeq >= lastStored) {
      if (lastStored > head.seq) {
        return broken(
          head.seq + 1,
          `entry ${head.seq + 1} lies past the head (${head.seq}): it was not appended through the log`,
        );
      }
      if (head.seq > 0 && expectedPrev !== head.hash) {
        return broken(head.seq, `entry ${head.seq}'s hash does not match the head's: the last entry was replaced`);
      }
    }
    return { ok: true, checkedEntries: checked };
  }
}

interface Prepared extends Required<AuditRecord> {
  readonly detailsJson: string;
}

function requireText(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new ValidationError(`${field} must be a non-empty string`, { field });
  }
  if (value.length > AUDIT_FIELD_LENGTH) {
    throw new ValidationError(`${field} has ${value.length} chars; the fieldLength limit is ${AUDIT_FIELD_LENGTH}`, {
      field,
    });
  }
  return value;
}

/** Validates a record and fixes `at` and the canonical details text that the hash and the row will share. */
function prepare(record: AuditRecord): Prepared {
  if (typeof record !== 'object' || record === null) throw new ValidationError('record must be an object');
  const actor = requireText(record.actor, 'actor');
  const action = requireText(record.action, 'action');
  const resource = requireText(record.resource, 'resource');
  const project = requireText(record.project, 'project');
  if (!AUDIT_OUTCOMES.includes(record.outcome)) {
    throw new ValidationError(
      `outcome must be one of ${AUDIT_OUTCOMES.join(', ')}, got ${quoteValue(record.outcome)}`,
      {
        field: 'outcome',
      },
    );
  }
  const at = record.at ?? new Date().toISOString();
  if (
    typeof at !== 'string' ||
    !AUDIT_TIME_PATTERN.test(at) ||
    Number.isNaN(Date.parse(at)) ||
    new Date(at).toISOString() !== at
  ) {
    throw new ValidationError(
      `at must be ISO-8601 UTC with milliseconds (2025-03-01T12:00:00.000Z), got ${quoteValue(at)}`,
      {
        field: 'at',
      },
    );
  }
  if (typeof record.details !== 'object' || record.details === null || Array.isArray(record.details)) {
    throw new ValidationError('details must be a JSON object', { field: 'details' });
  }
  const detailsJson = auditDetailsJson(record.details);
  // Stored and hashed in the form it reads back as, so verify() recomputes the same hash.
  const details = JSON.parse(detailsJson) as Record<string, JsonValue>;
  return { actor, action, resource, project, outcome: record.outcome, at, details, detailsJson };
}

function toEntry(row: AuditLogRow): AuditEntry {
  return {
    seq: Number(row.seq),
    id: row.id,
    at: row.at,
    actor: row.actor,
    action: row.action,
    resource: row.resource,
    project: row.project,
    outcome: row.outcome as AuditOutcome,
    details: JSON.parse(row.details) as Record<string, JsonValue>,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}

function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

function queryHash(parts: unknown): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('base64url').slice(0, 16);
}
