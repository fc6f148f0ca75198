// Figure 2: searchRuns latency over many runs (25,000 runs with 20 metrics, 3 params and 2 tags each) on embedded
// SQLite and on PostgreSQL. Seeding goes through the library (createRun with tags, one logBatch with the run's
// metrics and params), once per benchmark run into a fresh temp dir and a fresh schema; the queries then
// alternate between stores and filters sample by sample (the stores' order rotated each sample), so the shared
// machine's changing load hits all alike.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MetadataStore, SearchRunsOptions } from '@mlplane/core';
import { LocalArtifactStore, SqliteMetadataStore } from '@mlplane/defaults';
import { PostgresMetadataStore } from '@mlplane/plugin-postgres';
import { SqlExperimentTracker, sqlDialect } from '@mlplane/sql';
import { sql } from 'kysely';
// The raw seeding path writes the tracker's own tables, so it reads their schema from the source (not an export).
import { insertMetrics } from '../packages/sql/src/tracker/repository.js';
import type { NewMetric, RunRow, TrackerDatabase } from '../packages/sql/src/tracker/schema.js';
import { figure, fmtNumber, type Measured, percentile, rotated, seconds } from './lib.js';

export interface SearchSizes {
  readonly runs: number;
  /** Timed executions of each query on each store. */
  readonly samples: number;
}

export const METRIC_KEYS = [
  'acc',
  'loss',
  'f1',
  'auc',
  'precision',
  'recall',
  ...Array.from({ length: 14 }, (_, i) => `m${i + 6}`),
];
const T0 = 1_760_000_000_000;
const GOAL_P50_MS = 50;
const PAGE = 100;
/** Runs seeded through the public API (timed: the per-run ingest rate); the rest go in bulk. */
const API_RUNS = 500;
const BULK_RUNS = 1_000;

interface Query {
  readonly label: string;
  readonly options: Omit<SearchRunsOptions, 'experimentIds'>;
  /** Pages to walk before timing (the page token of page `page` is then reused by every sample). */
  readonly page?: number;
}

// Representative filters from the issue: a metric threshold with a param, ordered by a metric, paging, a tag
// filter, and ranking every run by one metric (no filter narrows it).
const QUERIES: readonly Query[] = [
  {
    label: "metrics.acc > 0.9 and params.lr = '0.01'",
    options: { filter: "metrics.acc > 0.9 and params.lr = '0.01'" },
  },
  {
    label: "metrics.acc > 0.9 and params.lr = '0.01' order by metrics.loss",
    options: { filter: "metrics.acc > 0.9 and params.lr = '0.01'", orderBy: ['metrics.loss ASC'] },
  },
  {
    label: 'same, page 5 (page token)',
    options: { filter: "metrics.acc > 0.9 and params.lr = '0.01'", orderBy: ['metrics.loss ASC'] },
    page: 5,
  },
  {
    label: "tags.team = 'vision' and metrics.f1 < 0.2 order by metrics.auc desc",
    options: { filter: "tags.team = 'vision' and metrics.f1 < 0.2", orderBy: ['metrics.auc DESC'] },
  },
  {
    label: 'all runs order by metrics.acc desc',
    options: { orderBy: ['metrics.acc DESC'] },
  },
];

/** A deterministic spread of values in [0, 1) per run and metric. */
function value(run: number, metric: number): number {
  const x = Math.sin(run * 12.9898 + metric * 78.233) * 43_758.5453;
  return x - Math.floor(x);
}

export interface RunData {
  readonly startTime: number;
  readonly status: 'RUNNING' | 'SCHEDULED';
  readonly tags: Record<string, string>;
  readonly metrics: { key: string; value: number; step: number; timestamp: number }[];
  readonly params: { key: string; value: string }[];
}

/** Run `i` of the seed: the same whichever path writes it. */
export function runData(i: number): RunData {
  return {
    startTime: T0 + i * 1000,
    status: i % 5 === 0 ? 'SCHEDULED' : 'RUNNING',
    tags: { team: ['vision', 'nlp', 'ranking', 'fraud'][i % 4]!, owner: `user${i % 50}` },
    metrics: METRIC_KEYS.map((key, m) => ({ key, value: value(i, m), step: 10, timestamp: T0 + i })),
    params: [
      { key: 'lr', value: ['0.1', '0.01', '0.001'][i % 3]! },
      { key: 'optimizer', value: i % 2 ? 'adam' : 'sgd' },
      { key: 'seed', value: String(i) },
    ],
  };
}

/** Runs matching `metrics.acc > 0.9 and params.lr = '0.01'`, to check the seed (and the search) end to end. */
export function expectedAccLr(runs: number): number {
  let n = 0;
  for (let i = 0; i < runs; i++) if (value(i, 0) > 0.9 && i % 3 === 1) n++;
  return n;
}

/** Through the library: createRun with the tags, then one logBatch with all the run's metrics and params. */
async function seedThroughApi(
  tracker: SqlExperimentTracker,
  experimentId: string,
  from: number,
  to: number,
  writers: number,
) {
  let next = from;
  await Promise.all(
    Array.from({ length: writers }, async () => {
      while (next < to) {
        const d = runData(next++);
        const run = await tracker.createRun({
          experimentId,
          startTime: new Date(d.startTime),
          status: d.status,
          tags: d.tags,
        });
        await tracker.logBatch(run.info.id, { metrics: d.metrics, params: d.params });
      }
    }),
  );
}

/**
 * The same rows written many runs per transaction, with the tracker's own multi-row metric insert
 * (SqlDialect.insertMany, which logBatch uses) and plain multi-row inserts for runs, latest values, params and
 * tags. Through the API a run costs about 4 ms of CPU (two transactions, outbox events, the latest-value upsert):
 * 25,000 runs per store would take most of the time budget on a loaded 2-core machine. Outbox rows are left
 * out; search never reads them.
 */
export async function seedInBulk(store: MetadataStore, experimentId: string, from: number, to: number) {
  const dialect = sqlDialect(store.dialect);
  const [experiment] = await store
    .db<TrackerDatabase>()
    .selectFrom('experiments')
    .select('artifact_location')
    .where('experiment_id', '=', Number(experimentId))
    .execute();
  const location = experiment!.artifact_location.replace(/\/+$/, '');
  // Rows per statement stay below SQLite's 32,766 variables and Postgres' 65,535 parameters.
  const chunk = <T>(rows: readonly T[], size: number) =>
    Array.from({ length: Math.ceil(rows.length / size) }, (_, k) => rows.slice(k * size, (k + 1) * size));
  for (let start = from; start < to; start += BULK_RUNS) {
    const runs: RunRow[] = [];
    const metrics: NewMetric[] = [];
    const params: { run_id: string; key: string; value: string }[] = [];
    const tags: { run_id: string; key: string; value: string }[] = [];
    for (let i = start; i < Math.min(to, start + BULK_RUNS); i++) {
      const d = runData(i);
      const runId = randomUUID().replaceAll('-', '');
      runs.push({
        run_id: runId,
        experiment_id: Number(experimentId),
        name: `bench-run-${i}`,
        status: d.status,
        start_time: d.startTime,
        end_time: null,
        artifact_uri: `${location}/${runId}/artifacts`,
        lifecycle_stage: 'active',
        parent_run_id: null,
        user_id: null,
        deleted_time: null,
        deleted_with_experiment: 0,
      });
      for (const m of d.metrics) metrics.push({ run_id: runId, ...m, is_nan: 0 });
      for (const p of d.params) params.push({ run_id: runId, ...p });
      for (const [key, v] of Object.entries(d.tags)) tags.push({ run_id: runId, key, value: v });
    }
    await store.transaction<void, TrackerDatabase>(async (trx) => {
      for (const part of chunk(runs, 2_000)) await trx.insertInto('runs').values(part).execute();
      await insertMetrics(trx, dialect, metrics);
      // A fresh run has one point per key, which is its latest value.
      const latest = metrics.map(({ run_id, key, value, is_nan, step, timestamp }) => ({
        run_id,
        experiment_id: Number(experimentId),
        key,
        value,
        is_nan,
        step,
        timestamp,
      }));
      for (const part of chunk(latest, 4_000)) await trx.insertInto('latest_metrics').values(part).execute();
      for (const part of chunk(params, 8_000)) await trx.insertInto('params').values(part).execute();
      for (const part of chunk(tags, 8_000)) await trx.insertInto('run_tags').values(part).execute();
    });
  }
}

interface Contender {
  readonly label: string;
  readonly tracker: SqlExperimentTracker;
  readonly experimentId: string;
  readonly samples: Map<Query, number[]>;
  readonly found: Map<Query, number>;
  readonly tokens: Map<Query, string | undefined>;
  close(): Promise<void>;
}

/** A store to seed, how to bring it to the state a long-lived store is in, and how to drop it. */
interface StoreHandle {
  readonly store: MetadataStore;
  /** What settle does, for the log. */
  readonly settling: string;
  /** Planner statistics as the store would have them after a while in use; returns the store to query. */
  settle(): Promise<MetadataStore>;
  close(): Promise<void>;
}

async function open(
  label: string,
  handle: StoreHandle,
  dir: string,
  sizes: SearchSizes,
  writers: number,
): Promise<{ contender: Contender; seeded: Measured }> {
  const { store } = handle;
  const artifacts = new LocalArtifactStore({ root: dir });
  const seeder = await SqlExperimentTracker.open({ store, artifacts });
  const experiment = await seeder.createExperiment({ name: `search-bench-${Date.now()}` });
  const apiRuns = Math.min(API_RUNS, sizes.runs);
  let started = performance.now();
  await seedThroughApi(seeder, experiment.id, 0, apiRuns, writers);
  const apiSeconds = seconds(started);
  started = performance.now();
  await seedInBulk(store, experiment.id, apiRuns, sizes.runs);
  const bulkSeconds = seconds(started);
  console.log(
    `${label}: seeded ${fmtNumber(sizes.runs)} runs x ${METRIC_KEYS.length} metrics (${fmtNumber(sizes.runs * METRIC_KEYS.length)} metric rows) in ${(apiSeconds + bulkSeconds).toFixed(1)} s: ${fmtNumber(apiRuns)} through createRun + logBatch (${writers} writer${writers > 1 ? 's' : ''}) in ${apiSeconds.toFixed(1)} s (${fmtNumber(apiRuns / apiSeconds)} runs/s), ${fmtNumber(sizes.runs - apiRuns)} in bulk (${BULK_RUNS} runs per transaction) in ${bulkSeconds.toFixed(1)} s`,
  );
  const t = performance.now();
  const tracker = await SqlExperimentTracker.open({ store: await handle.settle(), artifacts });
  console.log(`${label}: ${handle.settling} in ${seconds(t).toFixed(1)} s`);
  const contender: Contender = {
    label,
    tracker,
    experimentId: experiment.id,
    samples: new Map(QUERIES.map((q) => [q, []])),
    found: new Map(),
    tokens: new Map(),
    close: () => handle.close(),
  };
  // Page tokens for the paging query, and one untimed execution of every query (plans, caches).
  for (const q of QUERIES) {
    let token: string | undefined;
    let page = 1;
    for (; page < (q.page ?? 1); page++) {
      const next = (await search(contender, q, token)).nextPageToken;
      if (next === undefined) break;
      token = next;
    }
    // Small (quick) seeds have fewer pages: the last one stands in, and the printed page count says so.
    if (q.page !== undefined && page < q.page) console.log(`  '${q.label}': only ${page} pages, timing page ${page}`);
    contender.tokens.set(q, token);
    contender.found.set(q, (await search(contender, q, token)).items.length);
  }
  // The paging query walked to the end must find exactly the runs the seed put there.
  let all = 0;
  let next: string | undefined;
  do {
    const page = await search(contender, QUERIES[1]!, next);
    all += page.items.length;
    next = page.nextPageToken;
  } while (next !== undefined);
  if (all !== expectedAccLr(sizes.runs))
    throw new Error(
      `${label}: '${QUERIES[1]!.label}' found ${all} runs over all pages, expected ${expectedAccLr(sizes.runs)}`,
    );
  return {
    contender,
    seeded: figure(
      `search seeding through createRun + logBatch (${writers} writer${writers > 1 ? 's' : ''}), ${label}`,
      'runs/s',
      apiRuns / apiSeconds,
      null,
      'higher-is-better',
    ),
  };
}

function search(c: Contender, q: Query, pageToken: string | undefined) {
  return c.tracker.searchRuns({
    experimentIds: [c.experimentId],
    maxResults: PAGE,
    ...q.options,
    ...(pageToken === undefined ? {} : { pageToken }),
  });
}

export async function searchBench(sizes: SearchSizes, pgUrl: string | undefined): Promise<Measured[]> {
  console.log(
    `\n## search: ${fmtNumber(sizes.runs)} runs x ${METRIC_KEYS.length} metrics, 3 params, 2 tags; ${sizes.samples} samples per query, ${PAGE} runs per page (whole runs returned)`,
  );
  const contenders: Contender[] = [];
  const figures: Measured[] = [];
  try {
    const dir = await mkdtemp(join(tmpdir(), 'mlplane-bench-search-'));
    const path = join(dir, 'metadata.sqlite');
    // NORMAL only speeds up seeding commits; reads are the same in FULL, the embedded default.
    let sqlite = await SqliteMetadataStore.open({ path, synchronous: 'NORMAL' });
    const embedded = await open(
      'embedded SQLite',
      {
        store: sqlite,
        settling: 'closed and reopened (the store runs PRAGMA optimize at close and open)',
        async settle() {
          await sqlite.close();
          sqlite = await SqliteMetadataStore.open({ path });
          return sqlite;
        },
        async close() {
          await sqlite.close();
          await rm(dir, { recursive: true, force: true });
        },
      },
      join(dir, 'artifacts'),
      sizes,
      1,
    );
    contenders.push(embedded.contender);
    figures.push(embedded.seeded);
    if (pgUrl) {
      const schema = `mlplane_bench_search_${Date.now().toString(36)}`;
      const pg = await PostgresMetadataStore.connect({ connectionString: pgUrl, schema });
      const artifacts = await mkdtemp(join(tmpdir(), 'mlplane-bench-search-pg-'));
      // Concurrent writers: each transaction waits on round trips, which several connections overlap.
      const postgres = await open(
        'PostgreSQL',
        {
          store: pg,
          // What autovacuum does by itself after a bulk load: statistics, and the visibility map that lets index-only
          // scans skip the heap.
          settling: 'VACUUM ANALYZE, repeated until the visibility map covers the tables (as autovacuum leaves them)',
          async settle() {
            // The tracker's tables in this schema only (search_path): a shared server's other schemas are not ours.
            // A VACUUM right after the load can leave pages not all-visible (a snapshot still open somewhere on the
            // server when it ran): index-only scans then visit the heap. Autovacuum comes back; so does this.
            const tables = ['runs', 'run_tags', 'params', 'metrics', 'latest_metrics', 'experiments'];
            await sql`VACUUM ANALYZE runs, run_tags, params, metrics, latest_metrics, experiments`.execute(pg.db());
            for (let pass = 0; pass < 5; pass++) {
              const { rows } = await sql<{ pages: number; visible: number }>`
                SELECT sum(relpages)::int AS pages, sum(relallvisible)::int AS visible FROM pg_class
                WHERE relnamespace = current_schema()::regnamespace AND relname IN (${sql.join(tables)})`.execute(
                pg.db(),
              );
              if (rows[0]!.visible >= rows[0]!.pages * 0.99) break;
              await sql`VACUUM runs, run_tags, params, metrics, latest_metrics, experiments`.execute(pg.db());
            }
            return pg;
          },
          async close() {
            await pg.db().schema.dropSchema(schema).cascade().execute();
            await pg.close();
            await rm(artifacts, { recursive: true, force: true });
          },
        },
        artifacts,
        sizes,
        8,
      );
      contenders.push(postgres.contender);
      figures.push(postgres.seeded);
    }
    for (let i = 0; i < sizes.samples; i++) {
      for (const q of QUERIES) {
        for (const c of rotated(contenders, i)) {
          const t = performance.now();
          await search(c, q, c.tokens.get(q));
          c.samples.get(q)!.push(performance.now() - t);
        }
      }
    }
    for (const c of contenders) {
      for (const q of QUERIES) {
        const s = c.samples.get(q)!;
        const p50 = percentile(s, 0.5);
        const p95 = percentile(s, 0.95);
        console.log(
          `  ${c.label.padEnd(16)} ${q.label.padEnd(72)} p50 ${p50.toFixed(1).padStart(6)} ms  p95 ${p95.toFixed(1).padStart(6)} ms  (${c.found.get(q)} runs)`,
        );
        figures.push(
          figure(`search p50: ${q.label}, ${c.label}`, 'ms', p50, null, 'lower-is-better', {
            goal: { text: `≤ ${GOAL_P50_MS} ms`, met: p50 <= GOAL_P50_MS },
          }),
          figure(`search p95: ${q.label}, ${c.label}`, 'ms', p95, null, 'lower-is-better'),
        );
      }
    }
  } finally {
    for (const c of contenders) await c.close();
  }
  return figures;
}
