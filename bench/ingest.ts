// Figure 1: library-level logBatch ingest on embedded SQLite and on PostgreSQL against PostgreSQL's COPY of the
// same rows into the same metrics table, on as many connections as writers and in the same rounds. The cases
// themselves live in packages/sql/bench/tracker-ingest.ts (contenders run in rounds, their order rotated every round,
// so a shared machine's load and the growing table hit them alike); this file picks sizes and turns their meters
// into figures.
import {
  embeddedCase,
  type Meter,
  openPostgres,
  type PostgresCaseResult,
  postgresCase,
} from '../packages/sql/bench/tracker-ingest.js';
import { figure, type Measured } from './lib.js';

export interface IngestSizes {
  /** Metric rows per contender for 10-metric batches (10k batches would take minutes of round trips). */
  readonly rows10: number;
  /** Metric rows per contender for 500-metric batches. */
  readonly rows500: number;
  readonly rounds: number;
}

const ROWS_PER_S = 'rows/s';
const GOAL_500 = 0.5;

const writersLabel = (writers: number) => `x${writers} writer${writers > 1 ? 's' : ''}`;
const copyPerBatchIs = (size: number, writers: number) =>
  writers === 1
    ? `PostgreSQL COPY, one COPY per ${size}-row batch`
    : `PostgreSQL COPY on ${writers} connections, one COPY per ${size}-row batch`;
const copyStreamIs = (writers: number) =>
  writers === 1
    ? "PostgreSQL COPY, each round's rows in one stream"
    : `PostgreSQL COPY on ${writers} connections, each with its share of the round in one stream`;

export async function ingest(sizes: IngestSizes, pgUrl: string | undefined): Promise<Measured[]> {
  const cases = [
    { size: 10, writers: 1, rows: sizes.rows10 },
    { size: 500, writers: 1, rows: sizes.rows500 },
    { size: 500, writers: 4, rows: sizes.rows500 },
  ] as const;
  console.log(
    `\n## ingest: logBatch of 10- and 500-metric batches, ${sizes.rows10.toLocaleString('en-US')} / ${sizes.rows500.toLocaleString('en-US')} rows per contender in ${sizes.rounds} rounds, order rotated each round`,
  );

  const embedded: { size: number; writers: number; synchronous: string; meter: Meter }[] = [];
  for (const c of cases) {
    for (const r of await embeddedCase(c.size, c.writers, c.rows, sizes.rounds)) {
      console.log(r.meter.line(`embedded SQLite (${r.synchronous}) ${c.size}-metric batches x${c.writers}`));
      embedded.push({ ...c, ...r });
    }
  }

  const pg: ({ size: number; writers: number } & PostgresCaseResult)[] = [];
  if (pgUrl) {
    const ctx = await openPostgres(pgUrl);
    try {
      for (const c of cases) {
        const r = await postgresCase(ctx, c.size, c.writers, c.rows, sizes.rounds);
        console.log(r.ours.line(`PostgreSQL logBatch ${c.size}-metric batches x${c.writers}`));
        console.log(r.copyPerBatch.line(`PostgreSQL COPY x${c.writers}, one COPY per ${c.size}-row batch`));
        console.log(r.copyStream.line(`PostgreSQL COPY x${c.writers}, one stream each`));
        console.log(
          `  ratio logBatch(${c.size}) x${c.writers} / COPY per batch: ${(r.ours.rowsPerSec / r.copyPerBatch.rowsPerSec).toFixed(2)}; / COPY streams: ${(r.ours.rowsPerSec / r.copyStream.rowsPerSec).toFixed(2)}`,
        );
        pg.push({ ...c, ...r });
      }
    } finally {
      await ctx.close();
    }
  }

  const figures: Measured[] = [];
  // Embedded rows beside PostgreSQL's per-batch COPY of one writer: another engine, another case's rounds; context,
  // never judged.
  const copyOf = (size: number) => pg.find((p) => p.size === size && p.writers === 1);
  for (const e of embedded) {
    const copy = e.writers === 1 ? copyOf(e.size) : undefined;
    const mode = e.synchronous === 'FULL' ? 'synchronous FULL, the default' : 'synchronous NORMAL';
    figures.push(
      figure(
        `ingest ${e.size}-metric logBatch ${writersLabel(e.writers)}, embedded SQLite (${mode})`,
        ROWS_PER_S,
        e.meter.rowsPerSec,
        copy ? copy.copyPerBatch.rowsPerSec : null,
        'higher-is-better',
        copy ? { peerIs: copyPerBatchIs(e.size, 1) } : {},
      ),
    );
  }
  for (const p of pg) {
    const label = `ingest ${p.size}-metric logBatch ${writersLabel(p.writers)}, PostgreSQL`;
    const goal = (ratio: number) => ({ goal: { text: `≥ ${GOAL_500} of COPY`, met: ratio >= GOAL_500 } });
    const perBatch = p.ours.rowsPerSec / p.copyPerBatch.rowsPerSec;
    const stream = p.ours.rowsPerSec / p.copyStream.rowsPerSec;
    // The goal's ceiling: for one writer COPY of the same batches (one waits for each commit, as logBatch does);
    // for concurrent writers COPY streams on as many connections (how a tracking server with many clients
    // ingests). The other COPY figure of each case is context.
    const judgedPerBatch = p.size === 500 && p.writers === 1;
    const judgedStream = p.size === 500 && p.writers > 1;
    figures.push(
      figure(
        p.writers === 1 ? `${label} vs COPY per batch` : `${label} vs COPY per batch on ${p.writers} connections`,
        ROWS_PER_S,
        p.ours.rowsPerSec,
        p.copyPerBatch.rowsPerSec,
        'higher-is-better',
        { peerIs: copyPerBatchIs(p.size, p.writers), ...(judgedPerBatch ? goal(perBatch) : {}) },
      ),
      figure(
        p.writers === 1 ? `${label} vs COPY one stream` : `${label} vs ${p.writers} COPY streams`,
        ROWS_PER_S,
        p.ours.rowsPerSec,
        p.copyStream.rowsPerSec,
        'higher-is-better',
        { peerIs: copyStreamIs(p.writers), ...(judgedStream ? goal(stream) : {}) },
      ),
    );
  }
  return figures;
}
