// `pnpm bench`: the management layer's figures from issue 4, measured side by side in one run, printed, written
// to bench/results/latest.json and rendered into docs/benchmarks.md.
//   1. logBatch ingest (10 and 500 metrics per batch) on embedded SQLite and PostgreSQL vs PostgreSQL COPY
//   2. searchRuns p50/p95 over 25,000 runs with 20 metrics each, on embedded SQLite and PostgreSQL
//   3. alias resolution p50/p99 at 32 concurrent callers, with and without the Redis cache
//   4. plugin-s3 vs the raw AWS SDK: upload and download MiB/s of 8 MiB, 256 MiB and 1 GiB, client RSS growth
// PostgreSQL, Redis and S3 come from MLPLANE_PG_URL / MLPLANE_REDIS_URL / MLPLANE_S3_* (scripts/peers); without them
// the figures that need them are skipped, and said to be. BENCH_QUICK=1 runs small sizes into
// bench/results/quick.json and leaves latest.json and the docs alone, since the recorded figures must be the full
// sizes; BENCH_ONLY=search (or ingest, alias, comma-separated) runs only those sections, into quick.json as well,
// since a record has every figure. The S3 section is recorded on its own too: BENCH_ONLY=s3 merges its figures into
// latest.json (the others stay) and rewrites only its section of docs/benchmarks.md.
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RedisCache } from '../packages/core/src/infra/cache/redis-cache.js';
import { PostgresMetadataStore } from '../packages/core/src/infra/postgres/postgres-metadata-store.js';
import { S3ArtifactStore } from '../packages/plugin-s3/src/s3-artifact-store.js';
import { type AliasSizes, aliasBench } from './alias.js';
import { extractS3Section, renderDocs, renderS3Section, spliceS3Section } from './docs.js';
import { type IngestSizes, ingest } from './ingest.js';
import { type Figure, load, type Measured, machine, seconds } from './lib.js';
import { type S3Sizes, s3Bench, s3ConfigFromEnv } from './s3.js';
import { type SearchSizes, searchBench } from './search.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',').map((s) => s.trim())) : undefined;
const QUICK = process.env.BENCH_QUICK === '1';
/** Whether this run makes the record: full sizes and every section. */
const RECORD = !QUICK && ONLY === undefined;
/** The S3 section alone at full size: recorded into its own part of latest.json and of the docs. */
const RECORD_S3 = !QUICK && ONLY?.size === 1 && ONLY.has('s3');
const runs = (section: string) => ONLY === undefined || ONLY.has(section);

const SIZES: { ingest: IngestSizes; search: SearchSizes; alias: AliasSizes; s3: S3Sizes } = QUICK
  ? {
      ingest: { rows10: 2_000, rows500: 10_000, rounds: 2 },
      search: { runs: 1_000, samples: 10 },
      alias: { callers: 32, callsPerCaller: 20, rounds: 2 },
      s3: {
        objects: [
          { mib: 8, rounds: 3 },
          { mib: 64, rounds: 1 },
        ],
        rssMiB: 128,
      },
    }
  : {
      // 20,000 rows are 2,000 ten-metric batches per contender: enough samples, without minutes of round trips.
      ingest: { rows10: 20_000, rows500: 100_000, rounds: 5 },
      search: { runs: 25_000, samples: 40 },
      alias: { callers: 32, callsPerCaller: 50, rounds: 5 },
      // Rounds per size so that each contender moves at least 2 GiB per direction over the 1 GiB rounds.
      s3: {
        objects: [
          { mib: 8, rounds: 10 },
          { mib: 256, rounds: 3 },
          { mib: 1024, rounds: 2 },
        ],
        rssMiB: 1024,
      },
    };

/** The URL when its server answers now; otherwise why not, so the figures needing it are skipped, not failed. */
async function reachable(name: string, url: string | undefined, probe: (url: string) => Promise<void>) {
  if (!url) return { url: undefined, why: `${name} unset` };
  try {
    await probe(url);
    return { url, why: '' };
  } catch (err) {
    return { url: undefined, why: `${name} set but unreachable: ${(err as Error).message}` };
  }
}

const pg = await reachable('MLPLANE_PG_URL', process.env.MLPLANE_PG_URL || undefined, async (url) => {
  const store = await PostgresMetadataStore.connect({ connectionString: url, connectionTimeoutMs: 5_000 });
  try {
    await store
      .db()
      .selectNoFrom((eb) => eb.val(1).as('one'))
      .execute();
  } finally {
    await store.close();
  }
});
const redis = await reachable('MLPLANE_REDIS_URL', process.env.MLPLANE_REDIS_URL || undefined, async (url) => {
  await (await RedisCache.connect(url)).close();
});
const s3Config = s3ConfigFromEnv();
const s3 = await reachable('MLPLANE_S3_ENDPOINT', s3Config?.endpoint, async () => {
  (await S3ArtifactStore.connect({ ...s3Config!, maxAttempts: 1, connectTimeoutMs: 3_000 })).close();
});
const pgUrl = pg.url;
const redisUrl = redis.url;
const skipped: string[] = [];
const sqlSections = runs('ingest') || runs('search') || runs('alias');
if (!pgUrl && sqlSections)
  skipped.push(
    `PostgreSQL (${pg.why}): ingest on PostgreSQL and the COPY ceiling, search on PostgreSQL, alias resolution on PostgreSQL`,
  );
if (!redisUrl && runs('alias')) skipped.push(`Redis (${redis.why}): alias resolution with the Redis cache`);
if (!s3.url && runs('s3')) skipped.push(`S3 (${s3.why}, or MLPLANE_S3_* incomplete): plugin-s3 vs the raw SDK`);

/** The commit measured, and whether the measured code had uncommitted changes (others work in this tree). */
function provenance(): string {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' });
    // Tracked files only: untracked scratch files of others are not imported, and bench/results is the output.
    // -z: NUL-separated `XY path` entries, untrimmed (a leading space is part of the status).
    const dirty = git(
      'status',
      '--porcelain',
      '-z',
      '--untracked-files=no',
      '--',
      'packages/core/src',
      'packages/core/bench',
      'packages/plugin-s3/src',
      'bench',
      ':!bench/results',
    );
    const files = dirty
      .split('\0')
      .filter(Boolean)
      .map((entry) => entry.slice(3));
    return `commit ${git('rev-parse', '--short', 'HEAD').trim()}${files.length ? ` plus uncommitted changes in ${files.join(', ')}` : ', clean'}`;
  } catch {
    return 'commit unknown (no git)';
  }
}
const source = provenance();

const started = performance.now();
const loadStart = load();
const startedAt = new Date();
console.log(
  `mlplane bench${QUICK ? ' (QUICK sizes: not recorded)' : ''}${ONLY ? ` (only ${[...ONLY].join(', ')}: ${RECORD_S3 ? 'recorded into the S3 figures and section' : 'not recorded'})` : ''}: ${machine(loadStart, []).cpu}, ${machine(loadStart, []).cores} cores, Node ${process.version}; ${source}; load average at start ${loadStart.join(' ')}`,
);
for (const s of skipped) console.log(`SKIPPED: ${s}`);

const measured: Measured[] = [];
if (runs('ingest')) measured.push(...(await ingest(SIZES.ingest, pgUrl)));
if (runs('search')) measured.push(...(await searchBench(SIZES.search, pgUrl)));
if (runs('alias')) measured.push(...(await aliasBench(SIZES.alias, pgUrl, redisUrl)));
const s3Results = runs('s3') && s3.url ? await s3Bench(SIZES.s3, s3Config!) : { figures: [], rounds: [] };
const s3Measured = s3Results.figures;
measured.push(...s3Measured);

const loadEnd = load();
const took = seconds(started);
const m = machine(loadStart, loadEnd);
// The keys in the order the issue lists them; goal and peerIs are for the docs table only.
const figures: Figure[] = measured.map((f) => ({
  name: f.name,
  unit: f.unit,
  ours: f.ours,
  peer: f.peer,
  ratio: f.ratio,
  machine: m,
  at: f.at,
}));

console.log(`\n## figures (ratio > 1: mlplane better)`);
for (const f of measured) {
  const goal = f.goal ? `  goal ${f.goal.text}: ${f.goal.met ? 'met' : 'MISSED'}` : '';
  console.log(
    `  ${f.name.padEnd(96)} ${String(f.ours).padStart(9)} ${f.unit.padEnd(6)} peer ${String(f.peer ?? '-').padStart(9)}  ratio ${String(f.ratio ?? '-').padStart(6)}${goal}`,
  );
}
for (const s of skipped) console.log(`SKIPPED: ${s}`);
console.log(`load average at end ${loadEnd.join(' ')}; took ${(took / 60).toFixed(1)} min`);

const latest = join(ROOT, 'bench', 'results', 'latest.json');
const docs = join(ROOT, 'docs', 'benchmarks.md');
const isS3 = (f: { name: string }) => f.name.startsWith('s3 ');
/** The recorded figures and docs as they are, so that what this run did not measure is kept. */
const previous = {
  figures: JSON.parse(await readFile(latest, 'utf8').catch(() => '[]')) as Figure[],
  docs: await readFile(docs, 'utf8').catch(() => ''),
};
const s3Section = () =>
  renderS3Section({
    measured: s3Measured,
    rounds: s3Results.rounds,
    machine: m,
    startedAt,
    minutes: took / 60,
    sizes: SIZES.s3,
    source,
  });
if (RECORD) {
  // Figures this run skipped (no S3 peer) stay as they were recorded, with their own date and machine.
  const keep = s3Measured.length ? [] : previous.figures.filter(isS3);
  await writeFile(latest, `${JSON.stringify([...figures, ...keep], null, 2)}\n`);
  const main = renderDocs({
    measured: measured.filter((f) => !isS3(f)),
    machine: m,
    skipped,
    startedAt,
    minutes: took / 60,
    sizes: SIZES,
    source,
  });
  await writeFile(docs, spliceS3Section(main, s3Measured.length ? s3Section() : extractS3Section(previous.docs)));
  console.log(`wrote ${latest} and ${docs}`);
} else if (RECORD_S3 && s3Measured.length) {
  const merged = [...previous.figures.filter((f) => !isS3(f)), ...figures];
  await writeFile(latest, `${JSON.stringify(merged, null, 2)}\n`);
  await writeFile(docs, spliceS3Section(previous.docs, s3Section()));
  console.log(`merged the S3 figures into ${latest} and ${docs}`);
} else {
  const out = join(ROOT, 'bench', 'results', 'quick.json');
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, `${JSON.stringify(figures, null, 2)}\n`);
  console.log(`wrote ${out}`);
}
