// searchRuns latency of SqlExperimentTracker over many runs (default 25,000 runs with 20 metrics, 3 params and
// 2 tags each), on the embedded store (SQLite) and on PostgreSQL. Seeding goes through the tracker itself.
// Run from packages/core: node --import tsx bench/tracker-search.ts   (PostgreSQL part needs MLPLANE_PG_URL)
// Env: BENCH_RUNS (default 25000), BENCH_SAMPLES (queries per case, default 30).
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MetadataStore } from '@mlplane/core';
import { LocalArtifactStore, SqliteMetadataStore } from '@mlplane/defaults';
import { PostgresMetadataStore } from '@mlplane/plugin-postgres';
import { sql } from 'kysely';
import { SqlExperimentTracker } from '../src/tracker/sql-experiment-tracker.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 25_000);
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 30);
const METRICS = 20;
const T0 = 1_760_000_000_000;

const queries: [string, { filter?: string; orderBy?: string[]; maxResults?: number }][] = [
  ['first page, default order', { maxResults: 100 }],
  [
    'metrics.m3 > 0.9, order by metrics.m7 DESC',
    { filter: 'metrics.m3 > 0.9', orderBy: ['metrics.m7 DESC'], maxResults: 100 },
  ],
  [
    "params.lr = '0.01' and tags.team = 'vision'",
    { filter: "params.lr = '0.01' and tags.team = 'vision'", maxResults: 100 },
  ],
  [
    "metrics.m1 > 0.5 and params.optimizer = 'adam' and status = 'FINISHED', by start_time",
    {
      filter: "metrics.m1 > 0.5 and params.optimizer = 'adam' and attributes.status = 'FINISHED'",
      orderBy: ['attributes.start_time ASC'],
      maxResults: 100,
    },
  ],
  [
    "tags.team LIKE 'vis%' and metrics.m19 < 0.1",
    { filter: "tags.team LIKE 'vis%' and metrics.m19 < 0.1", maxResults: 100 },
  ],
];

/** mulberry32: a deterministic, well-spread value in [0, 1) for each n. */
function random(n: number): number {
  let t = (n + 0x6d2b79f5) | 0;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

async function seed(tracker: SqlExperimentTracker, experimentId: string, writers: number): Promise<void> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: writers }, async () => {
      while (next < RUNS) {
        const i = next++;
        const run = await tracker.createRun({ experimentId, startTime: new Date(T0 + i * 1000) });
        // Independent pseudo-random values per run and metric (a filter on one metric says nothing about another).
        const value = (m: number) => random(i * METRICS + m);
        await tracker.logBatch(run.info.id, {
          metrics: Array.from({ length: METRICS }, (_, m) => ({
            key: `m${m}`,
            value: value(m),
            step: 10,
            timestamp: T0,
          })),
          params: [
            { key: 'lr', value: ['0.1', '0.01', '0.001'][i % 3]! },
            { key: 'optimizer', value: i % 2 ? 'adam' : 'sgd' },
            { key: 'seed', value: String(i) },
          ],
          tags: [
            { key: 'team', value: ['vision', 'nlp', 'ranking', 'fraud'][i % 4]! },
            { key: 'owner', value: `user${i % 50}` },
          ],
        });
        if (i % 5 !== 0) await tracker.updateRun({ runId: run.info.id, status: 'FINISHED' });
      }
    }),
  );
  console.log(`  seeded ${RUNS} runs in ${((performance.now() - started) / 1000).toFixed(0)} s`);
}

async function measure(label: string, store: MetadataStore, writers: number): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mlplane-bench-art-'));
  try {
    const tracker = await SqlExperimentTracker.open({ store, artifacts: new LocalArtifactStore({ root: dir }) });
    const experiment = await tracker.createExperiment({ name: `search-bench-${Date.now()}` });
    console.log(`${label}:`);
    await seed(tracker, experiment.id, writers);
    // Planner statistics, as autovacuum (Postgres) or the store's PRAGMA optimize (SQLite) keep them after a load.
    await sql.raw(store.dialect === 'postgres' ? 'ANALYZE' : 'PRAGMA optimize').execute(store.db());
    for (const [name, q] of queries) {
      const samples: number[] = [];
      let found = 0;
      await tracker.searchRuns({ experimentIds: [experiment.id], ...q });
      for (let i = 0; i < SAMPLES; i++) {
        const t = performance.now();
        found = (await tracker.searchRuns({ experimentIds: [experiment.id], ...q })).items.length;
        samples.push(performance.now() - t);
      }
      samples.sort((a, b) => a - b);
      const p = (q: number) => samples[Math.min(samples.length - 1, Math.floor(samples.length * q))]!.toFixed(1);
      console.log(`  ${name.padEnd(78)} p50 ${p(0.5).padStart(6)} ms  p95 ${p(0.95).padStart(6)} ms  (${found} runs)`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

console.log(
  `tracker-search: ${RUNS} runs x ${METRICS} metrics, ${SAMPLES} samples per query, maxResults 100 (whole runs returned); ${cpus().length} CPUs, load ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}, Node ${process.version}`,
);
{
  const dir = await mkdtemp(join(tmpdir(), 'mlplane-bench-'));
  const store = await SqliteMetadataStore.open({ path: join(dir, 'metadata.sqlite'), synchronous: 'NORMAL' });
  try {
    await measure('embedded SQLite', store, 1);
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
}
const url = process.env.MLPLANE_PG_URL;
if (!url) {
  console.log('PostgreSQL skipped: set MLPLANE_PG_URL (scripts/peers up postgres; eval "$(scripts/peers env)")');
} else {
  const schema = `mlplane_search_${Date.now().toString(36)}`;
  const store = await PostgresMetadataStore.connect({ connectionString: url, schema });
  try {
    await measure('PostgreSQL', store, 8);
  } finally {
    await store.db().schema.dropSchema(schema).cascade().execute();
    await store.close();
  }
}
console.log(
  `load at the end: ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
