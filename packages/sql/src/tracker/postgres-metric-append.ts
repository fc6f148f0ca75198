import type { DomainEvent } from '@mlplane/core';
import { type Kysely, sql } from 'kysely';
import { type PreparedQuery, prepareQuery } from '../dialect/prepared.js';
import { outboxRow } from '../outbox/outbox.js';
import { latestPoints } from './repository.js';
import type { NewMetric, TrackerDatabase } from './schema.js';

/**
 * PostgreSQL's path for a batch of metrics only: one statement, hence one round trip and its own transaction,
 * does what the general path does in seven (BEGIN, lock the run, append the points, raise the latest values,
 * record the event, COMMIT). Each data-modifying CTE reads from `run`, so when the run is missing or deleted
 * nothing is written and the caller takes the general path, which names the reason. Points travel as one typed
 * array per column (unnest), so the statement and its plan are the same whatever the batch size.
 *
 * Returns whether the run was active, i.e. whether the batch was written.
 */
export async function appendMetricsInOneStatement(
  db: Kysely<TrackerDatabase>,
  runId: string,
  points: readonly NewMetric[],
  event: DomainEvent,
): Promise<boolean> {
  const latest = latestPoints(points);
  const columns = (rows: readonly NewMetric[]) => [
    rows.map((p) => p.key),
    rows.map((p) => p.value),
    rows.map((p) => p.is_nan),
    rows.map((p) => p.step),
    rows.map((p) => p.timestamp),
  ];
  const e = outboxRow(event);
  const query = metricAppendQuery(db).bind([
    runId,
    ...columns(points),
    ...columns(latest),
    e.id,
    e.type,
    e.version,
    e.subject,
    e.actor,
    e.project,
    e.payload,
    e.occurred_at,
    e.traceparent,
    e.tracestate,
  ]);
  const { rows } = await db.executeQuery<{ active: number }>(query);
  return (rows[0]?.active ?? 0) > 0;
}

/** Distinct values the statement is compiled with, one per parameter, in order (see prepareQuery). */
const PLACEHOLDERS = Array.from({ length: 21 }, (_, i) => `\u0000metricAppend${i}`);
const compiled = new WeakMap<Kysely<TrackerDatabase>, PreparedQuery>();

/**
 * The statement, compiled once per database handle and marked for preparing: its text is the same whatever the
 * batch (the points travel as arrays), so PostgreSQL parses and plans it once per connection, and kysely does not
 * build it again on every batch.
 */
function metricAppendQuery(db: Kysely<TrackerDatabase>): PreparedQuery {
  let query = compiled.get(db);
  if (query) return query;
  const [runId, ...rest] = PLACEHOLDERS as [string, ...string[]];
  const at = (i: number) => rest[i]!;
  const columns = (first: number) =>
    sql.join([
      sql`${at(first)}::text[]`,
      sql`${at(first + 1)}::float8[]`,
      sql`${at(first + 2)}::int2[]`,
      sql`${at(first + 3)}::int8[]`,
      sql`${at(first + 4)}::int8[]`,
    ]);
  // The latest-value condition is MLflow's order (step, then timestamp, then NaN above numbers, then value),
  // the same as upsertLatestMetrics; rows go in key order, the lock order every writer of a run uses.
  const statement = sql<{ active: number }>`
    WITH run AS (
      SELECT run_id, experiment_id FROM runs
      WHERE run_id = ${runId} AND lifecycle_stage = 'active'
      FOR KEY SHARE
    ), appended AS (
      INSERT INTO metrics (run_id, key, value, is_nan, step, timestamp)
      SELECT run.run_id, p.key, p.value, p.is_nan, p.step, p.timestamp
      FROM run, unnest(${columns(0)}) AS p (key, value, is_nan, step, timestamp)
    ), raised AS (
      INSERT INTO latest_metrics AS l (run_id, experiment_id, key, value, is_nan, step, timestamp)
      SELECT run.run_id, run.experiment_id, p.key, p.value, p.is_nan, p.step, p.timestamp
      FROM run, unnest(${columns(5)}) WITH ORDINALITY AS p (key, value, is_nan, step, timestamp, n)
      ORDER BY p.n
      ON CONFLICT (run_id, key) DO UPDATE
      SET value = excluded.value, is_nan = excluded.is_nan, step = excluded.step, timestamp = excluded.timestamp
      WHERE (excluded.step, excluded.timestamp, excluded.is_nan, excluded.value) > (l.step, l.timestamp, l.is_nan, l.value)
    ), recorded AS (
      INSERT INTO outbox (id, type, version, subject, actor, project, payload, occurred_at, traceparent, tracestate)
      SELECT ${at(10)}::uuid, ${at(11)}, ${at(12)}, ${at(13)}, ${at(14)}, ${at(15)}, ${at(16)}::jsonb,
        ${at(17)}::timestamptz, ${at(18)}::text, ${at(19)}::text
      FROM run
    )
    SELECT count(*)::int AS active FROM run`;
  query = prepareQuery('tracker.appendMetrics', statement.compile(db), PLACEHOLDERS);
  compiled.set(db, query);
  return query;
}
