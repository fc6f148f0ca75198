// Figure 1: library-level logBatch ingest on embedded SQLite and on PostgreSQL against PostgreSQL's COPY of the
// same rows into the same metrics table. The cases themselves live in packages/core/bench/tracker-ingest.ts
// (contenders alternate in rounds so a shared machine's load hits them alike); this file picks sizes and turns
// their meters into figures.
import { embeddedCase, type Meter, openPostgres, postgresCase } from '../packages/sql/bench/tracker-ingest.js';
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

export async function ingest(sizes: IngestSizes, pgUrl: string | undefined): Promise<Measured[]> {
  const cases = [
    { size: 10, writers: 1, rows: sizes.rows10 },
    { size: 500, writers: 1, rows: sizes.rows500 },
    { size: 500, writers: 4, rows: sizes.rows500 },
  ] as const;
  console.log(
    `\n## ingest: logBatch of 10- and 500-metric batches, ${sizes.rows10.toLocaleString('en-US')} / ${sizes.rows500.toLocaleString('en-US')} rows per contender in ${sizes.rounds} alternating rounds`,
  );

  const embedded: { size: number; writers: number; synchronous: string; meter: Meter }[] = [];
  for (const c of cases) {
    for (const r of await embeddedCase(c.size, c.writers, c.rows, sizes.rounds)) {
      console.log(r.meter.line(`embedded SQLite (${r.synchronous}) ${c.size}-metric batches x${c.writers}`));
      embedded.push({ ...c, ...r });
    }
  }

  const pg: { size: number; writers: number; ours: Meter; copyPerBatch: Meter; copyStream: Meter }[] = [];
  if (pgUrl) {
    const ctx = await openPostgres(pgUrl);
    try {
      for (const c of cases) {
        const r = await postgresCase(ctx, c.size, c.writers, c.rows, sizes.rounds);
        console.log(r.ours.line(`PostgreSQL logBatch ${c.size}-metric batches x${c.writers}`));
        if (c.writers === 1) {
          console.log(r.copyPerBatch.line(`PostgreSQL COPY, one COPY per ${c.size}-row batch`));
          console.log(r.copyStream.line(`PostgreSQL COPY, each round's rows in one stream`));
        }
        pg.push({ ...c, ...r });
      }
    } finally {
      await ctx.close();
    }
  }

  // COPY per batch has the same commit granularity as one logBatch call: the fair ceiling for a library call.
  // COPY of a whole round in one stream is the bulk ceiling; both are reported.
  const copyOf = (size: number) => pg.find((p) => p.size === size && p.writers === 1);
  const figures: Measured[] = [];
  for (const e of embedded) {
    const copy = e.writers === 1 ? copyOf(e.size) : undefined;
    const mode = e.synchronous === 'FULL' ? 'synchronous FULL, the default' : 'synchronous NORMAL';
    figures.push(
      figure(
        `ingest ${e.size}-metric logBatch x${e.writers} writer${e.writers > 1 ? 's' : ''}, embedded SQLite (${mode})`,
        ROWS_PER_S,
        e.meter.rowsPerSec,
        copy ? copy.copyPerBatch.rowsPerSec : null,
        'higher-is-better',
        copy ? { peerIs: `PostgreSQL COPY, one COPY per ${e.size}-row batch` } : {},
      ),
    );
  }
  for (const p of pg) {
    const label = `ingest ${p.size}-metric logBatch x${p.writers} writer${p.writers > 1 ? 's' : ''}, PostgreSQL`;
    const goal = (ratio: number) =>
      p.size === 500 ? { goal: { text: `≥ ${GOAL_500} of COPY`, met: ratio >= GOAL_500 } } : {};
    if (p.writers > 1) {
      // Concurrent writers against the single bulk stream: how a tracking server with many clients ingests.
      const copy = copyOf(p.size);
      figures.push(
        copy
          ? figure(
              `${label} vs COPY one stream`,
              ROWS_PER_S,
              p.ours.rowsPerSec,
              copy.copyStream.rowsPerSec,
              'higher-is-better',
              {
                peerIs: "PostgreSQL COPY, each round's rows in one stream",
                ...goal(p.ours.rowsPerSec / copy.copyStream.rowsPerSec),
              },
            )
          : figure(label, ROWS_PER_S, p.ours.rowsPerSec, null, 'higher-is-better'),
      );
      continue;
    }
    const perBatch = p.ours.rowsPerSec / p.copyPerBatch.rowsPerSec;
    const stream = p.ours.rowsPerSec / p.copyStream.rowsPerSec;
    figures.push(
      figure(
        `${label} vs COPY per batch`,
        ROWS_PER_S,
        p.ours.rowsPerSec,
        p.copyPerBatch.rowsPerSec,
        'higher-is-better',
        {
          peerIs: `PostgreSQL COPY, one COPY per ${p.size}-row batch`,
          ...goal(perBatch),
        },
      ),
      figure(
        `${label} vs COPY one stream`,
        ROWS_PER_S,
        p.ours.rowsPerSec,
        p.copyStream.rowsPerSec,
        'higher-is-better',
        // Context, not the goal: one writer waits for each commit, one stream never commits in between.
        { peerIs: "PostgreSQL COPY, each round's rows in one stream" },
      ),
    );
    console.log(
      `  ratio logBatch(${p.size}) / COPY per batch: ${perBatch.toFixed(2)}; / COPY one stream: ${stream.toFixed(2)}`,
    );
  }
  return figures;
}
