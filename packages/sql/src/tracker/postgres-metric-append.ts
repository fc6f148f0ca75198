import type { DomainEvent } from '@mlplane/core';
import { type Kysely, sql } from 'kysely';
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
  const columns = (rows: readonly NewMetric[]) =>
    sql.join([
      sql`${rows.map((p) => p.key)}::text[]`,
      sql`${rows.map((p) => p.value)}::float8[]`,
      sql`${rows.map((p) => p.is_nan)}::int2[]`,
      sql`${rows.map((p) => p.step)}::int8[]`,
      sql`${rows.map((p) => p.timestamp)}::int8[]`,
    ]);
  const e = outboxRow(event);
  // The latest-value condition is MLflow's order (step, then timestamp, then NaN above numbers, then value),
  // the same as upsertLatestMetrics; rows go in key order, the lock order every writer of a run uses.
  const { rows } = await sql<{ active: number }>`
    WITH run AS (
      SELECT run_id, experiment_id FROM runs
      WHERE run_id = ${runId} AND lifecycle_stage = 'active'
      FOR KEY SHARE
    ), appended AS (
      INSERT INTO metrics (run_id, key, value, is_nan, step, timestamp)
      SELECT run.run_id, p.key, p.value, p.is_nan, p.step, p.timestamp
      FROM run, unnest(${columns(points)}) AS p (key, value, is_nan, step, timestamp)
    ), raised AS (
      INSERT INTO latest_metrics AS l (run_id, experiment_id, key, value, is_nan, step, timestamp)
      SELECT run.run_id, run.experiment_id, p.key, p.value, p.is_nan, p.step, p.timestamp
      FROM run, unnest(${columns(latest)}) WITH ORDINALITY AS p (key, value, is_nan, step, timestamp, n)
      ORDER BY p.n
      ON CONFLICT (run_id, key) DO UPDATE
      SET value = excluded.value, is_nan = excluded.is_nan, step = excluded.step, timestamp = excluded.timestamp
      WHERE (excluded.step, excluded.timestamp, excluded.is_nan, excluded.value) > (l.step, l.timestamp, l.is_nan, l.value)
    ), recorded AS (
      INSERT INTO outbox (id, type, version, subject, actor, project, payload, occurred_at, traceparent, tracestate)
      SELECT ${e.id}::uuid, ${e.type}, ${e.version}, ${e.subject}, ${e.actor}, ${e.project}, ${e.payload}::jsonb,
        ${e.occurred_at}::timestamptz, ${e.traceparent}::text, ${e.tracestate}::text
      FROM run
    )
    SELECT count(*)::int AS active FROM run`.execute(db);
  return (rows[0]?.active ?? 0) > 0;
}
