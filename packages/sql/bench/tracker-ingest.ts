// Library-level logBatch throughput of SqlExperimentTracker on the embedded store (SQLite) and on PostgreSQL,
// against PostgreSQL's COPY of the same rows into the same table (the ceiling).
// Run from packages/core: node --import tsx bench/tracker-ingest.ts   (PostgreSQL parts need MLPLANE_PG_URL)
// Env: BENCH_ROWS (metric rows per case, default 100000), BENCH_ROUNDS (default 5).
// The cases are exported too: the root `pnpm bench` (bench/ingest.ts) runs them in its side-by-side report.
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import type { MetadataStore, MetricInput } from '@mlplane/core';
import { LocalArtifactStore, SqliteMetadataStore } from '@mlplane/defaults';
import { PostgresMetadataStore } from '@mlplane/plugin-postgres';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { SqlExperimentTracker } from '../src/tracker/sql-experiment-tracker.js';

export const KEYS = 10;
const T0 = 1_760_000_000_000;

export function batches(size: number, count: number, offset: number): MetricInput[][] {
  return Array.from({ length: count }, (_, b) =>
    Array.from({ length: size }, (_, i) => {
      const n = (offset + b) * size + i;
      const step = Math.floor(n / KEYS);
      return { key: `metric_${n % KEYS}`, value: Math.sin(n), step, timestamp: T0 + step };
    }),
  );
}

/** Accumulates timings of one contender over the rounds of a case. */
export class Meter {
  rows = 0;
  batches = 0;
  seconds = 0;
  readonly latencies: number[] = [];

  line(label: string): string {
    this.latencies.sort((a, b) => a - b);
    const p50 = this.latencies.length
      ? ` p50 ${this.latencies[Math.floor(this.latencies.length / 2)]!.toFixed(2)} ms`
      : '';
    return `${label.padEnd(48)} ${fmt(this.rowsPerSec).padStart(9)} rows/s ${fmt(this.batches / this.seconds).padStart(7)} batches/s${p50}`;
  }

  get rowsPerSec(): number {
    return this.rows / this.seconds;
  }
}

export const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

/** Runs `all` through logBatch with `writers` concurrent callers, one run each. */
export async function logBatches(
  tracker: SqlExperimentTracker,
  runIds: readonly string[],
  all: MetricInput[][],
  meter: Meter,
) {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    runIds.map(async (runId) => {
      while (next < all.length) {
        const batch = all[next++]!;
        const t = performance.now();
        await tracker.logBatch(runId, { metrics: batch });
        meter.latencies.push(performance.now() - t);
      }
    }),
  );
  meter.seconds += (performance.now() - started) / 1000;
  meter.rows += all.length * (all[0]?.length ?? 0);
  meter.batches += all.length;
}

export async function openTracker(store: MetadataStore, dir: string, writers: number) {
  const tracker = await SqlExperimentTracker.open({ store, artifacts: new LocalArtifactStore({ root: dir }) });
  const experiment = await tracker.createExperiment({ name: `bench-${writers}-${Date.now()}-${Math.random()}` });
  const runs = await Promise.all(
    Array.from({ length: writers }, () => tracker.createRun({ experimentId: experiment.id })),
  );
  const runIds = runs.map((r) => r.info.id);
  // Warm-up: plans, statement cache, pool connections.
  await tracker.logBatch(runIds[0]!, { metrics: batches(10, 1, 0)[0]!.map((m) => ({ ...m, step: -1 })) });
  return { tracker, runIds };
}

export const SYNCHRONOUS_MODES = ['FULL', 'NORMAL'] as const;

/**
 * Embedded: SQLite with synchronous FULL (the default) and NORMAL, alternating per round; one meter per mode.
 * `rows` metric rows per mode in `rounds` rounds.
 */
export async function embeddedCase(
  size: number,
  writers: number,
  rows: number,
  rounds: number,
): Promise<{ synchronous: (typeof SYNCHRONOUS_MODES)[number]; meter: Meter }[]> {
  const dir = await mkdtemp(join(tmpdir(), 'mlplane-bench-'));
  const stores = await Promise.all(
    SYNCHRONOUS_MODES.map(async (synchronous) => {
      const store = await SqliteMetadataStore.open({ path: join(dir, `${synchronous}.sqlite`), synchronous });
      return { synchronous, store, meter: new Meter(), ...(await openTracker(store, join(dir, synchronous), writers)) };
    }),
  );
  try {
    const perRound = Math.max(writers, Math.floor(rows / size / rounds));
    for (let round = 0; round < rounds; round++) {
      const all = batches(size, perRound, round * perRound);
      for (const s of stores) await logBatches(s.tracker, s.runIds, all, s.meter);
    }
    return stores.map(({ synchronous, meter }) => ({ synchronous, meter }));
  } finally {
    for (const s of stores) await s.store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** A throwaway schema on the PostgreSQL server at `url`, with a tracker's store and a raw client for COPY. */
export async function openPostgres(url: string) {
  const schema = `mlplane_bench_${Date.now().toString(36)}`;
  const store = await PostgresMetadataStore.connect({ connectionString: url, schema });
  const client = new pg.Client({ connectionString: url, options: `-c search_path=${schema}` });
  await client.connect();
  const dir = await mkdtemp(join(tmpdir(), 'mlplane-bench-art-'));
  return {
    store,
    client,
    dir,
    async close() {
      try {
        await client.end();
        await store.db().schema.dropSchema(schema).cascade().execute();
        await store.close();
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
}

/**
 * PostgreSQL: logBatch, and (with one writer) COPY of the same rows, alternating per round: one COPY per batch
 * (the same commit granularity) and each round's rows in one stream (the bulk ceiling).
 */
export async function postgresCase(
  ctx: Awaited<ReturnType<typeof openPostgres>>,
  size: number,
  writers: number,
  rows: number,
  rounds: number,
): Promise<{ ours: Meter; copyPerBatch: Meter; copyStream: Meter }> {
  const { store, dir, client } = ctx;
  const { tracker, runIds } = await openTracker(store, dir, writers);
  const ours = new Meter();
  const copyPerBatch = new Meter();
  const copyStream = new Meter();
  // COPY goes into the tracker's own metrics table, for a run of its own, with the same rows.
  const copyRun = (await tracker.createRun({ experimentId: (await tracker.getRun(runIds[0]!)).info.experimentId })).info
    .id;
  const lines = (batch: MetricInput[]) =>
    batch.map((m) => `${copyRun}\t${m.key}\t${m.value}\t0\t${m.step}\t${m.timestamp}\n`).join('');
  const copy = (text: string) =>
    pipeline(
      Readable.from([text]),
      client.query(copyFrom('COPY metrics (run_id, key, value, is_nan, step, timestamp) FROM STDIN')),
    );
  await copy(lines(batches(size, 1, 0)[0]!));
  const perRound = Math.max(writers, Math.floor(rows / size / rounds));
  for (let round = 0; round < rounds; round++) {
    const all = batches(size, perRound, round * perRound);
    await logBatches(tracker, runIds, all, ours);
    if (writers === 1) {
      let t = performance.now();
      const started = t;
      for (const batch of all) {
        await copy(lines(batch));
        const now = performance.now();
        copyPerBatch.latencies.push(now - t);
        t = now;
      }
      copyPerBatch.seconds += (performance.now() - started) / 1000;
      copyPerBatch.rows += perRound * size;
      copyPerBatch.batches += perRound;
      const text = all.map(lines).join('');
      const s = performance.now();
      await copy(text);
      copyStream.seconds += (performance.now() - s) / 1000;
      copyStream.rows += perRound * size;
      copyStream.batches += 1;
    }
  }
  return { ours, copyPerBatch, copyStream };
}

async function main() {
  const ROWS = Number(process.env.BENCH_ROWS ?? 100_000);
  // Each case alternates its contenders in rounds, so that a shared machine's changing load hits all of them alike.
  const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

  console.log(
    `tracker-ingest: ${ROWS} metric rows per case in ${ROUNDS} alternating rounds, ${KEYS} keys; ${cpus().length} CPUs (${cpus()[0]?.model}), load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}, Node ${process.version}`,
  );

  const cases = [
    [10, 1],
    [500, 1],
    [500, 4],
  ] as const;

  for (const [size, writers] of cases) {
    for (const s of await embeddedCase(size, writers, ROWS, ROUNDS))
      console.log(s.meter.line(`embedded SQLite (${s.synchronous}) ${size}-metric batches x${writers}`));
  }

  const url = process.env.MLPLANE_PG_URL;
  if (!url) {
    console.log('PostgreSQL skipped: set MLPLANE_PG_URL (scripts/peers up postgres; eval "$(scripts/peers env)")');
  } else {
    const ctx = await openPostgres(url);
    try {
      for (const [size, writers] of cases) {
        const { ours, copyPerBatch, copyStream } = await postgresCase(ctx, size, writers, ROWS, ROUNDS);
        console.log(ours.line(`PostgreSQL logBatch ${size}-metric batches x${writers}`));
        if (writers === 1) {
          console.log(copyPerBatch.line(`PostgreSQL COPY, one COPY per ${size}-row batch`));
          console.log(copyStream.line(`PostgreSQL COPY, each round's rows in one stream`));
          console.log(
            `  ratio logBatch(${size}) / COPY per batch: ${(ours.rowsPerSec / copyPerBatch.rowsPerSec).toFixed(2)}; / COPY one stream: ${(ours.rowsPerSec / copyStream.rowsPerSec).toFixed(2)}`,
          );
        }
      }
    } finally {
      await ctx.close();
    }
  }
  console.log(
    `load at the end: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
}

// Runs only as a script, so that importing the cases measures nothing.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
