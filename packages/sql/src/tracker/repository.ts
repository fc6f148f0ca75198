import type { DatasetInput, Experiment, Metric, Run, RunInfo, RunStatus } from '@mlplane/core';
import type { Kysely, Transaction } from 'kysely';
import type { SqlDialect } from '../dialect/dialect.js';
import type { ExperimentRow, LatestMetricRow, NewMetric, RunRow, TrackerDatabase } from './schema.js';

type Db = Kysely<TrackerDatabase>;
type Trx = Transaction<TrackerDatabase>;

/** SQLite and Postgres both cap bound parameters; id lists are read in chunks below either cap. */
const ID_CHUNK = 1000;

function chunks<T>(items: readonly T[], size = ID_CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export function findExperiment(db: Db, experimentId: number): Promise<ExperimentRow | undefined> {
  return db.selectFrom('experiments').selectAll().where('experiment_id', '=', experimentId).executeTakeFirst();
}

export function findExperimentByName(db: Db, name: string): Promise<ExperimentRow | undefined> {
  return db.selectFrom('experiments').selectAll().where('name', '=', name).executeTakeFirst();
}

export async function experimentsById(db: Db, ids: readonly number[]): Promise<Map<number, Experiment>> {
  const out = new Map<number, Experiment>();
  for (const chunk of chunks(ids)) {
    if (chunk.length === 0) continue;
    const rows = await db.selectFrom('experiments').selectAll().where('experiment_id', 'in', chunk).execute();
    const tags = await db.selectFrom('experiment_tags').selectAll().where('experiment_id', 'in', chunk).execute();
    const tagsById = new Map<number, Record<string, string>>();
    for (const t of tags) {
      const id = Number(t.experiment_id);
      const record = tagsById.get(id) ?? {};
      record[t.key] = t.value;
      tagsById.set(id, record);
    }
    for (const row of rows) {
      const id = Number(row.experiment_id);
      out.set(id, toExperiment(row, tagsById.get(id) ?? {}));
    }
  }
  return out;
}

export function toExperiment(row: ExperimentRow, tags: Record<string, string>): Experiment {
  return {
    id: String(row.experiment_id),
    name: row.name,
    artifactLocation: row.artifact_location,
    lifecycleStage: row.lifecycle_stage,
    tags,
    createdAt: new Date(Number(row.creation_time)),
    updatedAt: new Date(Number(row.last_update_time)),
  };
}

export function findRun(db: Db, runId: string, lock?: SqlDialect): Promise<RunRow | undefined> {
  const query = db.selectFrom('runs').selectAll().where('run_id', '=', runId);
  // With `lock`, the run cannot be deleted until the caller's transaction ends (metrics have no foreign key).
  return (lock ? lock.forKeyShare(query) : query).executeTakeFirst();
}

export function toRunInfo(row: RunRow): RunInfo {
  return {
    id: row.run_id,
    experimentId: String(row.experiment_id),
    name: row.name,
    status: row.status as RunStatus,
    startTime: new Date(Number(row.start_time)),
    ...(row.end_time !== null ? { endTime: new Date(Number(row.end_time)) } : {}),
    artifactUri: row.artifact_uri,
    lifecycleStage: row.lifecycle_stage,
    ...(row.parent_run_id !== null ? { parentRunId: row.parent_run_id } : {}),
    ...(row.user_id !== null ? { userId: row.user_id } : {}),
  };
}

export function toMetric(row: Pick<LatestMetricRow, 'key' | 'value' | 'is_nan' | 'step' | 'timestamp'>): Metric {
  return {
    key: row.key,
    value: row.is_nan ? Number.NaN : Number(row.value),
    step: Number(row.step),
    timestamp: Number(row.timestamp),
  };
}

/** Loads whole runs (info, latest metrics, params, tags, inputs) for `ids`, keyed by run id. */
export async function loadRuns(db: Db, ids: readonly string[]): Promise<Map<string, Run>> {
  const out = new Map<string, Run>();
  for (const chunk of chunks(ids)) {
    if (chunk.length === 0) continue;
    const [runs, tags, params, metrics, inputs] = await Promise.all([
      db.selectFrom('runs').selectAll().where('run_id', 'in', chunk).execute(),
      db.selectFrom('run_tags').selectAll().where('run_id', 'in', chunk).execute(),
      db.selectFrom('params').selectAll().where('run_id', 'in', chunk).execute(),
      db.selectFrom('latest_metrics').selectAll().where('run_id', 'in', chunk).execute(),
      db
        .selectFrom('run_inputs as ri')
        .innerJoin('datasets as d', 'd.dataset_id', 'ri.dataset_id')
        .select(['ri.run_id', 'ri.tags', 'd.name', 'd.digest', 'd.source_type', 'd.source', 'd.schema', 'd.profile'])
        .where('ri.run_id', 'in', chunk)
        .orderBy('ri.input_id')
        .execute(),
    ]);
    const byRun = <T extends { run_id: string }>(rows: readonly T[]) => {
      const m = new Map<string, T[]>();
      for (const r of rows) {
        const list = m.get(r.run_id);
        if (list) list.push(r);
        else m.set(r.run_id, [r]);
      }
      return m;
    };
    const tagsBy = byRun(tags);
    const paramsBy = byRun(params);
    const metricsBy = byRun(metrics);
    const inputsBy = byRun(inputs);
    for (const row of runs) {
      const id = row.run_id;
      out.set(id, {
        info: toRunInfo(row),
        data: {
          metrics: Object.fromEntries((metricsBy.get(id) ?? []).map((m) => [m.key, toMetric(m)])),
          params: Object.fromEntries((paramsBy.get(id) ?? []).map((p) => [p.key, p.value])),
          tags: Object.fromEntries((tagsBy.get(id) ?? []).map((t) => [t.key, t.value])),
        },
        inputs: {
          datasetInputs: (inputsBy.get(id) ?? []).map(
            (i): DatasetInput => ({
              dataset: {
                name: i.name,
                digest: i.digest,
                sourceType: i.source_type,
                source: i.source,
                ...(i.schema !== null ? { schema: i.schema } : {}),
                ...(i.profile !== null ? { profile: i.profile } : {}),
              },
              tags: JSON.parse(i.tags) as DatasetInput['tags'],
            }),
          ),
        },
      });
    }
  }
  return out;
}

/** Appends metric points with one statement (see SqlDialect.insertMany). */
export function insertMetrics(trx: Trx, dialect: SqlDialect, rows: readonly NewMetric[]): Promise<void> {
  return dialect.insertMany(
    trx,
    'metrics',
    [
      { name: 'run_id', pgType: 'text' },
      { name: 'key', pgType: 'text' },
      { name: 'value', pgType: 'float8' },
      { name: 'is_nan', pgType: 'int2' },
      { name: 'step', pgType: 'int8' },
      { name: 'timestamp', pgType: 'int8' },
    ],
    rows as readonly (NewMetric & Record<string, unknown>)[],
  );
}

/** Metric order of MLflow's latest value: higher step, then later timestamp, then larger value. */
export function isLater(a: NewMetric, b: NewMetric): boolean {
  if (a.step !== b.step) return a.step > b.step;
  if (a.timestamp !== b.timestamp) return a.timestamp > b.timestamp;
  return a.is_nan > b.is_nan || (a.is_nan === b.is_nan && a.value > b.value);
}

/** Each key's latest point in a batch, in key order (the lock order of the latest-value upsert). */
export function latestPoints(points: readonly NewMetric[]): NewMetric[] {
  const latest = new Map<string, NewMetric>();
  for (const p of points) {
    const current = latest.get(p.key);
    if (!current || isLater(p, current)) latest.set(p.key, p);
  }
  return [...latest.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/**
 * Raises each key's latest value to the batch's latest point when that is later. Rows are written in key
 * order so concurrent batches on one run lock them in the same order and cannot deadlock.
 */
export async function upsertLatestMetrics(trx: Trx, experimentId: number, points: readonly NewMetric[]): Promise<void> {
  const latest = latestPoints(points);
  if (latest.length === 0) return;
  const rows = latest.map(({ run_id, key, value, is_nan, step, timestamp }) => ({
    run_id,
    experiment_id: experimentId,
    key,
    value,
    is_nan,
    step,
    timestamp,
  }));
  await trx
    .insertInto('latest_metrics')
    .values(rows)
    .onConflict((oc) =>
      oc
        .columns(['run_id', 'key'])
        .doUpdateSet((eb) => ({
          value: eb.ref('excluded.value'),
          is_nan: eb.ref('excluded.is_nan'),
          step: eb.ref('excluded.step'),
          timestamp: eb.ref('excluded.timestamp'),
        }))
        .where((eb) =>
          eb.or([
            eb('excluded.step', '>', eb.ref('latest_metrics.step')),
            eb.and([
              eb('excluded.step', '=', eb.ref('latest_metrics.step')),
              eb.or([
                eb('excluded.timestamp', '>', eb.ref('latest_metrics.timestamp')),
                eb.and([
                  eb('excluded.timestamp', '=', eb.ref('latest_metrics.timestamp')),
                  eb.or([
                    eb('excluded.is_nan', '>', eb.ref('latest_metrics.is_nan')),
                    eb.and([
                      eb('excluded.is_nan', '=', eb.ref('latest_metrics.is_nan')),
                      eb('excluded.value', '>', eb.ref('latest_metrics.value')),
                    ]),
                  ]),
                ]),
              ]),
            ]),
          ]),
        ),
    )
    .execute();
}

/**
 * Inserts params that are new; returns how many were, and the keys whose stored value differs from the
 * requested one, so the caller can refuse the change and roll back.
 */
export async function insertParams(
  trx: Trx,
  runId: string,
  params: readonly { key: string; value: string }[],
): Promise<{ inserted: number; conflicts: { key: string; stored: string; requested: string }[] }> {
  if (params.length === 0) return { inserted: 0, conflicts: [] };
  const unique = new Map(params.map((p) => [p.key, p.value]));
  const rows = [...unique]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => ({ run_id: runId, key, value }));
  const result = await trx
    .insertInto('params')
    .values(rows)
    .onConflict((oc) => oc.columns(['run_id', 'key']).doNothing())
    .executeTakeFirst();
  const stored = await trx
    .selectFrom('params')
    .select(['key', 'value'])
    .where('run_id', '=', runId)
    .where('key', 'in', [...unique.keys()])
    .execute();
  return {
    inserted: Number(result.numInsertedOrUpdatedRows ?? 0n),
    conflicts: stored
      .filter((s) => unique.get(s.key) !== s.value)
      .map((s) => ({ key: s.key, stored: s.value, requested: unique.get(s.key) as string })),
  };
}

export async function upsertRunTags(
  trx: Trx,
  runId: string,
  tags: readonly { key: string; value: string }[],
): Promise<void> {
  if (tags.length === 0) return;
  // Last write wins inside a batch too.
  const unique = new Map(tags.map((t) => [t.key, t.value]));
  const rows = [...unique]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => ({ run_id: runId, key, value }));
  await trx
    .insertInto('run_tags')
    .values(rows)
    .onConflict((oc) => oc.columns(['run_id', 'key']).doUpdateSet((eb) => ({ value: eb.ref('excluded.value') })))
    .execute();
}

export interface HistoryCursor {
  readonly step: number;
  readonly timestamp: number;
  readonly id: number;
}

/** One page of a key's points in (step, timestamp, insertion) order, after `cursor` (keyset paging). */
export async function metricHistory(
  db: Db,
  runId: string,
  key: string,
  cursor: HistoryCursor | undefined,
  limit: number,
): Promise<(Metric & { id: number })[]> {
  let q = db
    .selectFrom('metrics')
    .select(['id', 'key', 'value', 'is_nan', 'step', 'timestamp'])
    .where('run_id', '=', runId)
    .where('key', '=', key);
  if (cursor) {
    q = q.where((eb) =>
      eb(eb.refTuple('step', 'timestamp', 'id'), '>', eb.tuple(cursor.step, cursor.timestamp, cursor.id)),
    );
  }
  const rows = await q.orderBy('step').orderBy('timestamp').orderBy('id').limit(limit).execute();
  return rows.map((r) => ({ ...toMetric(r), id: Number(r.id) }));
}
