// Compares the two embedded SQL candidates (PGlite, better-sqlite3) on the tracker's hot paths:
// boot, 500-row metric batches (insert + latest-value upsert in one transaction), and a search-like query.
// Run: node --import tsx packages/core/bench/embedded-store-choice.ts
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import Database from 'better-sqlite3';

const RUNS = 200;
const BATCHES_PER_RUN = 2;
const BATCH = 500;
const KEYS = 20;

interface Row {
  run: string;
  key: string;
  value: number;
  step: number;
  ts: number;
}

function batchRows(run: string, b: number): Row[] {
  return Array.from({ length: BATCH }, (_, i) => {
    const step = b * (BATCH / KEYS) + Math.floor(i / KEYS);
    return { run, key: `m${i % KEYS}`, value: Math.random(), step, ts: 1_700_000_000_000 + step };
  });
}

const schema = `
CREATE TABLE metrics (run_id text NOT NULL, key text NOT NULL, value double precision NOT NULL,
  step bigint NOT NULL, timestamp bigint NOT NULL);
CREATE INDEX metrics_run_key_step ON metrics (run_id, key, step, timestamp);
CREATE TABLE latest_metrics (run_id text NOT NULL, key text NOT NULL, value double precision NOT NULL,
  step bigint NOT NULL, timestamp bigint NOT NULL, PRIMARY KEY (run_id, key));
CREATE INDEX latest_metrics_key_value ON latest_metrics (key, value);`;

const upsertTail = `ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value, step = excluded.step, timestamp = excluded.timestamp
  WHERE excluded.step > latest_metrics.step OR (excluded.step = latest_metrics.step AND excluded.timestamp >= latest_metrics.timestamp)`;

const query = `SELECT l.run_id, l.value FROM latest_metrics l WHERE l.key = 'm3' AND l.value > 0.5 ORDER BY l.value DESC LIMIT 100`;

async function pglite(dir: string) {
  const t0 = performance.now();
  const db = await PGlite.create(join(dir, 'pg'));
  await db.exec(schema);
  const boot = performance.now() - t0;
  const t1 = performance.now();
  for (let r = 0; r < RUNS; r++) {
    for (let b = 0; b < BATCHES_PER_RUN; b++) {
      const rows = batchRows(`run${r}`, b);
      await db.transaction(async (tx) => {
        const cols = ['run_id', 'key', 'value', 'step', 'timestamp'];
        const params: unknown[] = [];
        const values = rows.map((row, i) => {
          params.push(row.run, row.key, row.value, row.step, row.ts);
          return `(${cols.map((_, c) => `$${i * 5 + c + 1}`).join(',')})`;
        });
        await tx.query(`INSERT INTO metrics (${cols}) VALUES ${values.join(',')}`, params);
        const latest = new Map<string, Row>();
        for (const row of rows) latest.set(row.key, row);
        const lp: unknown[] = [];
        const lv = [...latest.values()].map((row, i) => {
          lp.push(row.run, row.key, row.value, row.step, row.ts);
          return `(${cols.map((_, c) => `$${i * 5 + c + 1}`).join(',')})`;
        });
        await tx.query(`INSERT INTO latest_metrics (${cols}) VALUES ${lv.join(',')} ${upsertTail}`, lp);
      });
    }
  }
  const ingest = performance.now() - t1;
  const q = await timeQuery(async () => {
    await db.query(query);
  });
  await db.close();
  return { boot, ingest, q };
}

function sqlite(dir: string) {
  const t0 = performance.now();
  const db = new Database(join(dir, 'db.sqlite'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec(schema);
  const boot = performance.now() - t0;
  const t1 = performance.now();
  const insert = db.prepare('INSERT INTO metrics (run_id, key, value, step, timestamp) VALUES (?, ?, ?, ?, ?)');
  const upsert = db.prepare(
    `INSERT INTO latest_metrics (run_id, key, value, step, timestamp) VALUES (?, ?, ?, ?, ?) ${upsertTail}`,
  );
  const tx = db.transaction((rows: Row[]) => {
    for (const r of rows) insert.run(r.run, r.key, r.value, r.step, r.ts);
    const latest = new Map<string, Row>();
    for (const row of rows) latest.set(row.key, row);
    for (const r of latest.values()) upsert.run(r.run, r.key, r.value, r.step, r.ts);
  });
  for (let r = 0; r < RUNS; r++) for (let b = 0; b < BATCHES_PER_RUN; b++) tx(batchRows(`run${r}`, b));
  const ingest = performance.now() - t1;
  const stmt = db.prepare(query);
  return timeQuery(async () => {
    stmt.all();
  }).then((q) => {
    db.close();
    return { boot, ingest, q };
  });
}

async function timeQuery(fn: () => Promise<void>): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 50; i++) {
    const t = performance.now();
    await fn();
    samples.push(performance.now() - t);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)]!;
}

const rows = RUNS * BATCHES_PER_RUN * BATCH;
for (const [name, fn] of [
  ['pglite', pglite],
  ['better-sqlite3', sqlite],
] as const) {
  const dir = await mkdtemp(join(tmpdir(), 'mlplane-store-choice-'));
  try {
    const { boot, ingest, q } = await fn(dir);
    console.log(
      `${name.padEnd(15)} boot ${boot.toFixed(0).padStart(6)} ms | ingest ${rows} rows in ${BATCH}-row batches: ${(
        rows / (ingest / 1000)
      ).toFixed(0)} rows/s | latest-metric query p50 ${q.toFixed(2)} ms`,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
