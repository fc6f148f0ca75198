// Library-level logBatch throughput of SqlExperimentTracker on the embedded store (SQLite) and on PostgreSQL,
// against PostgreSQL's COPY of the same rows into the same table (the ceiling).
// Run from packages/core: node --import tsx bench/tracker-ingest.ts   (PostgreSQL parts need MLPLANE_PG_URL)
// Env: BENCH_ROWS (metric rows per case, default 100000).
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { LocalArtifactStore } from '../src/embedded/artifact-store/local-artifact-store.js';
import { SqliteMetadataStore } from '../src/embedded/metadata-store/sqlite-metadata-store.js';
import { SqlExperimentTracker } from '../src/embedded/tracker/sql-experiment-tracker.js';
import { PostgresMetadataStore } from '../src/infra/postgres/postgres-metadata-store.js';
import type { MetricInput } from '../src/ports/experiment-tracker.js';
import type { MetadataStore } from '../src/ports/metadata-store.js';

const ROWS = Number(process.env.BENCH_ROWS ?? 100_000);
const KEYS = 10;

function batches(size: number, count: number): MetricInput[][] {
  const t0 = 1_760_000_000_000;
  return Array.from({ length: count }, (_, b) =>
    Array.from({ length: size }, (_, i) => {
      const n = b * size + i;
      const step = Math.floor(n / KEYS);
      return { key: `metric_${n % KEYS}`, value: Math.sin(n), step, timestamp: t0 + step };
    }),
  );
}

interface Figure {
  readonly rowsPerSec: number;
  readonly batchesPerSec: number;
  readonly p50Ms: number;
}

async function ingest(store: MetadataStore, size: number, writers: number): Promise<Figure> {
  const dir = await mkdtemp(join(tmpdir(), 'mlplane-bench-art-'));
  try {
    const tracker = await SqlExperimentTracker.open({ store, artifacts: new LocalArtifactStore({ root: dir }) });
    const experiment = await tracker.createExperiment({ name: `bench-${size}-${writers}-${Date.now()}` });
    const count = Math.max(writers, Math.floor(ROWS / size));
    const all = batches(size, count);
    const runs = await Promise.all(
      Array.from({ length: writers }, () => tracker.createRun({ experimentId: experiment.id })),
    );
    // Warm-up: plans, statement cache, pool connections.
    await tracker.logBatch(runs[0]!.info.id, { metrics: all[0]!.map((m) => ({ ...m, step: -1 })) });
    const latencies: number[] = [];
    let next = 0;
    const started = performance.now();
    await Promise.all(
      runs.map(async (run) => {
        while (next < all.length) {
          const batch = all[next++]!;
          const t = performance.now();
          await tracker.logBatch(run.info.id, { metrics: batch });
          latencies.push(performance.now() - t);
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    latencies.sort((a, b) => a - b);
    return {
      rowsPerSec: (count * size) / seconds,
      batchesPerSec: count / seconds,
      p50Ms: latencies[Math.floor(latencies.length / 2)]!,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** COPY of the same rows into the tracker's own `metrics` table (identity and index): one COPY per batch, and one for all rows. */
async function copyCeiling(
  url: string,
  schema: string,
  size: number,
): Promise<{ perBatch: Figure; oneStream: number }> {
  const client = new pg.Client({ connectionString: url, options: `-c search_path=${schema}` });
  await client.connect();
  try {
    const count = Math.floor(ROWS / size);
    const all = batches(size, count);
    const runId = `copy${String(size).padStart(28, '0')}`;
    const lines = (batch: MetricInput[]) =>
      batch.map((m) => `${runId}\t${m.key}\t${m.value}\t0\t${m.step}\t${m.timestamp}\n`).join('');
    const copy = (text: string) =>
      pipeline(
        Readable.from([text]),
        client.query(copyFrom('COPY metrics (run_id, key, value, is_nan, step, timestamp) FROM STDIN')),
      );
    await copy(lines(all[0]!));
    const latencies: number[] = [];
    const started = performance.now();
    for (const batch of all) {
      const t = performance.now();
      await copy(lines(batch));
      latencies.push(performance.now() - t);
    }
    const seconds = (performance.now() - started) / 1000;
    latencies.sort((a, b) => a - b);
    await client.query('DELETE FROM metrics WHERE run_id = $1', [runId]);
    const text = all.map(lines).join('');
    const t = performance.now();
    await copy(text);
    const oneStream = (count * size) / ((performance.now() - t) / 1000);
    return {
      perBatch: {
        rowsPerSec: (count * size) / seconds,
        batchesPerSec: count / seconds,
        p50Ms: latencies[Math.floor(latencies.length / 2)]!,
      },
      oneStream,
    };
  } finally {
    await client.end();
  }
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const line = (label: string, f: Figure) =>
  console.log(
    `${label.padEnd(46)} ${fmt(f.rowsPerSec).padStart(9)} rows/s ${fmt(f.batchesPerSec).padStart(7)} batches/s  p50 ${f.p50Ms.toFixed(2)} ms`,
  );

console.log(
  `tracker-ingest: ${ROWS} metric rows per case, ${KEYS} keys; ${cpus().length} CPUs (${cpus()[0]?.model}), load ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}, Node ${process.version}`,
);

for (const synchronous of ['FULL', 'NORMAL'] as const) {
  for (const [size, writers] of [
    [10, 1],
    [500, 1],
    [500, 4],
  ] as const) {
    const dir = await mkdtemp(join(tmpdir(), 'mlplane-bench-'));
    const store = await SqliteMetadataStore.open({ path: join(dir, 'metadata.sqlite'), synchronous });
    try {
      line(`embedded SQLite (${synchronous}) ${size}-metric batches x${writers}`, await ingest(store, size, writers));
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  }
}

const url = process.env.MLPLANE_PG_URL;
if (!url) {
  console.log('PostgreSQL skipped: set MLPLANE_PG_URL (scripts/peers up postgres; eval "$(scripts/peers env)")');
} else {
  const schema = `mlplane_bench_${Date.now().toString(36)}`;
  const store = await PostgresMetadataStore.connect({ connectionString: url, schema });
  try {
    const figures = new Map<string, Figure>();
    for (const [size, writers] of [
      [10, 1],
      [500, 1],
      [500, 4],
    ] as const) {
      const f = await ingest(store, size, writers);
      figures.set(`${size}x${writers}`, f);
      line(`PostgreSQL ${size}-metric batches x${writers}`, f);
    }
    for (const size of [10, 500]) {
      const { perBatch, oneStream } = await copyCeiling(url, schema, size);
      line(`PostgreSQL COPY, one COPY per ${size}-row batch`, perBatch);
      console.log(
        `${`PostgreSQL COPY, all ${ROWS} rows in one stream`.padEnd(46)} ${fmt(oneStream).padStart(9)} rows/s`,
      );
      const ours = figures.get(`${size}x1`)!;
      console.log(
        `  ratio logBatch(${size}) / COPY per batch: ${(ours.rowsPerSec / perBatch.rowsPerSec).toFixed(2)}; / COPY one stream: ${(ours.rowsPerSec / oneStream).toFixed(2)}`,
      );
    }
  } finally {
    await store.db().schema.dropSchema(schema).cascade().execute();
    await store.close();
  }
}
