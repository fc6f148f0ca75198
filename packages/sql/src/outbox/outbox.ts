import { randomUUID } from 'node:crypto';
import type { DomainEvent, Migration } from '@mlplane/core';
import { currentActor, currentTraceContext, traceContextHeaders } from '@mlplane/core';
import { type Generated, type Kysely, SqliteAdapter, type Transaction } from 'kysely';
import { sqlDialect } from '../dialect/dialect.js';
import * as createOutbox from './migrations/20261126T160000_create_outbox.js';
import * as outboxTraceContext from './migrations/20261202T090000_outbox_trace_context.js';

/** Owner of the `outbox` table's migrations; every owner that records events migrates it first. */
export const OUTBOX_OWNER = 'outbox';

/**
 * The transactional outbox: each state change inserts its domain events here in its own transaction, and a
 * relay publishes them to the EventBus in `seq` order afterwards, so an event exists if and only if its change
 * committed.
 */
export interface OutboxTable {
  /** Commit-independent insertion order (identity / autoincrement); relays read by it. */
  seq: Generated<number>;
  id: string;
  type: string;
  version: number;
  subject: string;
  actor: string | null;
  project: string | null;
  /** JSON text on SQLite, jsonb on Postgres. */
  payload: unknown;
  /** timestamptz on Postgres (a Date when read), ISO-8601 text on SQLite. */
  occurred_at: Date | string;
  relayed_at: Date | string | null;
  /** The event's W3C trace context headers; null for untraced work. */
  traceparent: string | null;
  tracestate: string | null;
}

export interface OutboxDatabase {
  outbox: OutboxTable;
}

export const OUTBOX_MIGRATIONS: Readonly<Record<string, Migration>> = Object.freeze({
  '20261126T160000_create_outbox': createOutbox,
  '20261202T090000_outbox_trace_context': outboxTraceContext,
});

/**
 * Builds a version-1 event that happened now, with a fresh id. Without an explicit actor or project it takes those
 * of the work in progress (`actingAs`), so events name who caused them; it carries the trace context of the work in
 * progress (`withTraceContext`), so a consumer can continue the trace.
 */
export function domainEvent<TPayload>(
  type: string,
  subject: string,
  payload: TPayload,
  options: {
    readonly actor?: string | undefined;
    readonly project?: string | undefined;
    readonly version?: number;
  } = {},
): DomainEvent<string, TPayload> {
  const acting = currentActor();
  const actor = options.actor ?? acting?.actor;
  const project = options.project ?? acting?.project;
  const trace = currentTraceContext();
  return {
    id: randomUUID(),
    type,
    version: options.version ?? 1,
    occurredAt: new Date().toISOString(),
    subject,
    ...(actor !== undefined ? { actor } : {}),
    ...(project !== undefined ? { project } : {}),
    ...(trace !== undefined ? { traceContext: traceContextHeaders(trace) } : {}),
    payload,
  };
}

/** The outbox row of an event, as `recordEvent` inserts it. */
export function outboxRow(e: DomainEvent) {
  return {
    id: e.id,
    type: e.type,
    version: e.version,
    subject: e.subject,
    actor: e.actor ?? null,
    project: e.project ?? null,
    payload: JSON.stringify(e.payload ?? null),
    occurred_at: e.occurredAt,
    traceparent: e.traceContext?.traceparent ?? null,
    tracestate: e.traceContext?.tracestate ?? null,
  };
}

/** Inserts the events in the caller's transaction, so they commit or roll back with the change they describe. */
export async function recordEvent(trx: Transaction<any>, event: DomainEvent | readonly DomainEvent[]): Promise<void> {
  const events = Array.isArray(event) ? (event as readonly DomainEvent[]) : [event as DomainEvent];
  if (events.length === 0) return;
  await (trx as unknown as Transaction<OutboxDatabase>).insertInto('outbox').values(events.map(outboxRow)).execute();
}

export interface OutboxEntry {
  readonly seq: number;
  readonly event: DomainEvent;
  readonly relayedAt: string | undefined;
}

/** Reads outbox rows after `afterSeq` in seq order, optionally only those not yet relayed. */
export async function readOutbox(
  db: Kysely<any>,
  options: { readonly afterSeq?: number; readonly limit?: number; readonly unrelayedOnly?: boolean } = {},
): Promise<OutboxEntry[]> {
  const dialect = sqlDialect(db.getExecutor().adapter instanceof SqliteAdapter ? 'sqlite' : 'postgres');
  let query = (db as Kysely<OutboxDatabase>)
    .selectFrom('outbox')
    .selectAll()
    .where('seq', '>', options.afterSeq ?? 0)
    .orderBy('seq')
    .limit(options.limit ?? 1000);
  if (options.unrelayedOnly) query = query.where('relayed_at', 'is', null);
  const rows = await query.execute();
  return rows.map((r) => ({
    seq: Number(r.seq),
    relayedAt: r.relayed_at === null ? undefined : isoString(r.relayed_at),
    event: {
      id: r.id,
      type: r.type,
      version: r.version,
      occurredAt: isoString(r.occurred_at),
      subject: r.subject,
      ...(r.actor !== null ? { actor: r.actor } : {}),
      ...(r.project !== null ? { project: r.project } : {}),
      ...(r.traceparent !== null
        ? {
            traceContext: {
              traceparent: r.traceparent,
              ...(r.tracestate !== null ? { tracestate: r.tracestate } : {}),
            },
          }
        : {}),
      payload: dialect.parseJson(r.payload),
    },
  }));
}

/** How many events wait for the relay, counted when a full batch shows there may be more than one batch. */
export async function countUnrelayed(db: Kysely<any>): Promise<number> {
  const row = await (db as Kysely<OutboxDatabase>)
    .selectFrom('outbox')
    .select((eb) => eb.fn.countAll<number | string | bigint>().as('n'))
    .where('relayed_at', 'is', null)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Marks rows as relayed (by seq); the relay calls it after the EventBus accepted them. */
export async function markRelayed(db: Kysely<any>, seqs: readonly number[]): Promise<void> {
  if (seqs.length === 0) return;
  await (db as Kysely<OutboxDatabase>)
    .updateTable('outbox')
    .set({ relayed_at: new Date().toISOString() })
    .where('seq', 'in', [...seqs])
    .execute();
}

function isoString(value: Date | string): string {
  return value instanceof Date ? value.toISOString() : value;
}

/**
 * Deletes up to `limit` outbox rows relayed before `cutoff` (epoch ms), oldest first; returns how many. Unrelayed
 * rows are never purged, however old: they are the relay's work. The audit log keeps its own copy of every event.
 */
export async function purgeRelayed(db: Kysely<any>, cutoff: number, limit: number): Promise<number> {
  const outbox = db as Kysely<OutboxDatabase>;
  const result = await outbox
    .deleteFrom('outbox')
    .where(
      'seq',
      'in',
      outbox
        .selectFrom('outbox')
        .select('seq')
        .where('relayed_at', 'is not', null)
        // ISO-8601 text on SQLite compares in time order; timestamptz on Postgres takes the same literal.
        .where('relayed_at', '<', new Date(cutoff).toISOString())
        .orderBy('seq')
        .limit(limit),
    )
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
