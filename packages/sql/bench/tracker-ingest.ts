// Library-level logBatch throughput of SqlExperimentTracker on the embedded store (SQLite) and on PostgreSQL,
// against PostgreSQL's COPY of the same rows into the same table (the ceiling), on as many connections as writers.
// Run from packages/sql: node --conditions=@mlplane/source --import tsx bench/tracker-ingest.ts
// (PostgreSQL parts need MLPLANE_PG_URL)
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

/**
 * The contenders in the order they run in round `round`: rotated by one each round, so that none always goes first
 * (into the smaller table, before the others' garbage) or last.
 */
export function rotated<T>(contenders: readonly T[], round: number): T[] {
  const k = round % contenders.length;
  return [...contenders.slice(k), ...contenders.slice(0, k)];
}

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
  // Warm-up, every writer at once: plans, statement cache, one pool connection per writer.
  const warmUp = batches(10, 1, 0)[0]!.map((m) => ({ ...m, step: -1 }));
  await Promise.all(runIds.map((runId) => tracker.logBatch(runId, { metrics: warmUp })));
  return { tracker, runIds, experimentId: experiment.id };
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
      for (const s of rotated(stores, round)) await logBatches(s.tracker, s.runIds, all, s.meter);
    }
    return stores.map(({ synchronous, meter }) => ({ synchronous, meter }));
  } finally {
    for (const s of stores) await s.store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Most writers a case may have: the COPY contenders get one connection each. */
export const MAX_WRITERS = 4;

/** A throwaway schema on the PostgreSQL server at `url`, with a tracker's store and raw clients for COPY. */
export async function openPostgres(url: string) {
  const schema = `mlplane_bench_${Date.now().toString(36)}`;
  const store = await PostgresMetadataStore.connect({ connectionString: url, schema });
  const clients = Array.from(
    { length: MAX_WRITERS },
    () => new pg.Client({ connectionString: url, options: `-c search_path=${schema}` }),
  );
  await Promise.all(clients.map((c) => c.connect()));
  const dir = await mkdtemp(join(tmpdir(), 'mlplane-bench-art-'));
  return {
    store,
    clients,
    dir,
    async close() {
      try {
        await Promise.all(clients.map((c) => c.end()));
        await store.db().schema.dropSchema(schema).cascade().execute();
        await store.close();
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
}

/** Meters of one PostgreSQL case: logBatch and the two COPY ceilings, each with as many connections as writers. */
export interface PostgresCaseResult {
  readonly ours: Meter;
  /** One COPY per batch on each connection: the commit granularity of one logBatch call. */
  readonly copyPerBatch: Meter;
  /** Each connection's share of the round in one COPY: the bulk ceiling. */
  readonly copyStream: Meter;
}

/**
 * PostgreSQL: logBatch with `writers` concurrent callers, and COPY of the same rows into the same table on as many
 * connections, in the same rounds, in an order rotated every round: one COPY per batch, and each connection's share
 * of the round (every `writers`-th batch) in one stream. Every writer and every COPY connection appends to a run of
 * its own, as a tracking server's clients do.
 */
export async function postgresCase(
  ctx: Awaited<ReturnType<typeof openPostgres>>,
  size: number,
  writers: number,
  rows: number,
  rounds: number,
): Promise<PostgresCaseResult> {
  if (writers > ctx.clients.length) throw new Error(`at most ${ctx.clients.length} writers, got ${writers}`);
  const { store, dir } = ctx;
  const { tracker, runIds, experimentId } = await openTracker(store, dir, writers);
  const result: PostgresCaseResult = { ours: new Meter(), copyPerBatch: new Meter(), copyStream: new Meter() };
  const copiers = await Promise.all(
    ctx.clients.slice(0, writers).map(async (client) => {
      // COPY goes into the tracker's own metrics table, for a run of its own, with the same rows.
      const runId = (await tracker.createRun({ experimentId })).info.id;
      const lines = (batch: MetricInput[]) =>
        batch.map((m) => `${runId}\t${m.key}\t${m.value}\t0\t${m.step}\t${m.timestamp}\n`).join('');
      const copy = (text: string) =>
        pipeline(
          Readable.from([text]),
          client.query(copyFrom('COPY metrics (run_id, key, value, is_nan, step, timestamp) FROM STDIN')),
        );
      await copy(lines(batches(size, 1, 0)[0]!.map((m) => ({ ...m, step: -1 }))));
      return { lines, copy };
    }),
  );

  const contenders: ((all: MetricInput[][]) => Promise<void>)[] = [
    (all) => logBatches(tracker, runIds, all, result.ours),
    async (all) => {
      const meter = result.copyPerBatch;
      let next = 0;
      const started = performance.now();
      await Promise.all(
        copiers.map(async ({ lines, copy }) => {
          while (next < all.length) {
            const batch = all[next++]!;
            const t = performance.now();
            await copy(lines(batch));
            meter.latencies.push(performance.now() - t);
          }
        }),
      );
      meter.seconds += (performance.now() - started) / 1000;
      meter.rows += all.length * size;
      meter.batches += all.length;
    },
    async (all) => {
      const meter = result.copyStream;
      const texts = copiers.map(({ lines }, c) =>
        all
          .filter((_, b) => b % writers === c)
          .map(lines)
          .join(''),
      );
      const started = performance.now();
      await Promise.all(copiers.map(({ copy }, c) => copy(texts[c]!)));
      meter.seconds += (performance.now() - started) / 1000;
      meter.rows += all.length * size;
      meter.batches += writers;
    },
  ];
  const perRound = Math.max(writers, Math.floor(rows / size / rounds));
  for (let round = 0; round < rounds; round++) {
    const all = batches(size, perRound, round * perRound);
    for (const contender of rotated(contenders, round)) await contender(all);
  }
  return result;
}

async function main() {
  const ROWS = Number(process.env.BENCH_ROWS ?? 100_000);
  // Each case runs its contenders in rounds, in an order rotated every round, so that a shared machine's changing
  // load and the growing table hit all of them alike.
  const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

  console.log(
    `tracker-ingest: ${ROWS} metric rows per case in ${ROUNDS} rotating rounds, ${KEYS} keys; ${cpus().length} CPUs (${cpus()[0]?.model}), load ${loadavg()
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
        console.log(copyPerBatch.line(`PostgreSQL COPY x${writers}, one COPY per ${size}-row batch`));
        console.log(copyStream.line(`PostgreSQL COPY x${writers}, one stream each`));
        console.log(
          `  ratio logBatch(${size}) x${writers} / COPY per batch: ${(ours.rowsPerSec / copyPerBatch.rowsPerSec).toFixed(2)}; / COPY streams: ${(ours.rowsPerSec / copyStream.rowsPerSec).toFixed(2)}`,
        );
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
