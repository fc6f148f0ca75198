// `pnpm bench`: the management layer's figures from issue 4, measured side by side in one run, printed, written
// to bench/results/latest.json and rendered into docs/benchmarks.md.
//   1. logBatch ingest (10 and 500 metrics per batch) on embedded SQLite and PostgreSQL vs PostgreSQL COPY
//   2. searchRuns p50/p95 over 25,000 runs with 20 metrics each, on embedded SQLite and PostgreSQL
//   3. alias resolution p50/p99 at 32 concurrent callers, with and without the Redis cache
//   4. metrics/s logged through plugin-mlflow vs MLflow's Python client, 1 and 8 callers (MLPLANE_MLFLOW_URL)
// PostgreSQL and Redis come from MLPLANE_PG_URL / MLPLANE_REDIS_URL (scripts/peers); without them the figures that
// need them are skipped, and said to be. BENCH_QUICK=1 runs small sizes into bench/results/quick.json and leaves
// latest.json and the docs alone, since the recorded figures must be the full sizes; BENCH_ONLY=search (or ingest,
// alias, comma-separated) runs only those sections, into quick.json as well unless they are all MERGED_SECTIONS.
// Every run checks that no figure judged in a recorded run (bench/results/judged.json) stopped being judged, or is
// judged against another goal, without the change written down in bench/goals.ts; a recorded run refuses to write
// then, and otherwise appends its judged figures to judged.json.
// BENCH_ONLY=mlflow at full size merges its figures into latest.json (other entries kept) and its section into
// docs/benchmarks.md. So does BENCH_ONLY=search, alias, api, scheduler, k8s or several of them (MERGED_SECTIONS):
// their figures replace their own in latest.json, their judged figures are appended to judged.json as a run of
// those sections, and their sections, the goals table and the goal history are rewritten in docs/benchmarks.md.
//   5. plugin-s3 vs the raw AWS SDK: upload and download MiB/s of 8 MiB, 256 MiB and 1 GiB, client RSS growth
//      (MLPLANE_S3_*); BENCH_ONLY=s3 merges its figures into latest.json and rewrites only its docs section.
//   6. pipeline overhead: a 200-step fan-out of `true` on the local ComputeBackend vs spawning the processes directly
//      (no peers); BENCH_ONLY=pipelines merges its figures into latest.json and rewrites only its docs section.
//   7. the HTTP API (issue 10): mlplane's API server vs the MLflow server, both on the same PostgreSQL, 16 HTTP
//      clients (bench/api.ts; needs MLPLANE_PG_URL and the MLflow peer on PostgreSQL). BENCH_ONLY=api is one of
//      MERGED_SECTIONS; its docs section is spliced in between its own markers.
//   8. the durable scheduler on PostgreSQL vs BullMQ on Redis: submissions/s (single at 16 callers, batched) and
//      dispatch latency at 500 jobs/s with two replicas; BENCH_ONLY=scheduler merges like search and alias.
//   9. plugin-k8s vs raw client calls: Jobs submitted per second, submit-to-Running p50/p99 on kwok, RSS while
//      watching 10,000 Jobs (MLPLANE_KUBECONFIG, `scripts/peers up k8s`). A full run includes it when
//      MLPLANE_KUBECONFIG is set and its API server answers; otherwise it is listed as skipped, and the figures and
//      docs section last recorded stay. BENCH_ONLY=k8s merges like search, alias and scheduler.
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig, VersionApi } from '@kubernetes/client-node';
import { PostgresMetadataStore } from '@mlplane/plugin-postgres';
import { RedisCache } from '@mlplane/plugin-redis';
import { S3ArtifactStore } from '@mlplane/plugin-s3';
import { type AliasSizes, aliasBench } from './alias.js';
import {
  type ApiResult,
  type ApiSizes,
  apiBench,
  apiSkipReason,
  extractApiSection,
  renderApiSection,
  spliceApiSection,
} from './api.js';
import {
  extractS3Section,
  MERGED_SECTIONS,
  renderDocs,
  renderS3Section,
  spliceS3Section,
  spliceSections,
  table,
} from './docs.js';
import { type JudgedRun, judgedFigures, silentGoalChanges } from './goals.js';
import { type IngestSizes, ingest } from './ingest.js';
import { type K8sSizes, k8sBench } from './k8s.js';
import { type Figure, load, type Measured, machine, seconds } from './lib.js';
import { type MlflowSizes, mlflowBench, withMlflowSection } from './mlflow.js';
import {
  extractPipelinesSection,
  type PipelineResults,
  type PipelineSizes,
  pipelinesBench,
  renderPipelinesSection,
  splicePipelinesSection,
} from './pipelines.js';
import { type S3Sizes, s3Bench, s3ConfigFromEnv } from './s3.js';
import { type SchedulerSizes, schedulerBench } from './scheduler.js';
import { type SearchSizes, searchBench } from './search.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',').map((s) => s.trim())) : undefined;
const QUICK = process.env.BENCH_QUICK === '1';
/** Whether this run makes the record: full sizes and every section. */
const RECORD = !QUICK && ONLY === undefined;
/** The S3 section alone at full size: recorded into its own part of latest.json and of the docs. */
const RECORD_S3 = !QUICK && ONLY?.size === 1 && ONLY.has('s3');
/** The pipelines section alone at full size: likewise recorded into its own part of latest.json and of the docs. */
const RECORD_PIPELINES = !QUICK && ONLY?.size === 1 && ONLY.has('pipelines');
const runs = (section: string) => ONLY === undefined || ONLY.has(section);
/** Only sections that a run of their own records (MERGED_SECTIONS), at full size: merged into the record. */
const RECORD_SECTIONS = !QUICK && ONLY !== undefined && [...ONLY].every((s) => MERGED_SECTIONS.includes(s));
const inRecordedSections = (name: string) => RECORD_SECTIONS && [...ONLY!].some((s) => name.startsWith(`${s} `));

const SIZES: {
  ingest: IngestSizes;
  search: SearchSizes;
  alias: AliasSizes;
  mlflow: MlflowSizes;
  s3: S3Sizes;
  pipelines: PipelineSizes;
  api: ApiSizes;
  scheduler: SchedulerSizes;
  k8s: K8sSizes;
} = QUICK
  ? {
      pipelines: { steps: 50, parallelism: 4, rounds: 1 },
      api: {
        clients: 16,
        metricsPerBatch: 500,
        searchRuns: 2_000,
        rounds: 1,
        roundMs: 1_500,
        python: { processes: 16, rounds: 1, calls: { 'log-batch': 2, 'create-run': 3, alias: 5, search: 1 } },
      },
      ingest: { rows10: 2_000, rows500: 10_000, rounds: 2 },
      search: { runs: 1_000, samples: 10 },
      alias: { callers: 32, callsPerCaller: 20, rounds: 2 },
      mlflow: { batches: 4, metricsPerBatch: 500, rounds: 1 },
      s3: {
        objects: [
          { mib: 8, rounds: 3 },
          { mib: 64, rounds: 1 },
        ],
        rssMiB: 128,
      },
      scheduler: {
        callers: 16,
        singleJobs: 2_000,
        batchedJobs: 10_000,
        batchSize: 1_000,
        rounds: 2,
        dispatchRate: 500,
        dispatchSeconds: 4,
      },
      k8s: { jobs: 30, rounds: 2, concurrency: 8, watched: 1_000 },
    }
  : {
      // The issue's 200 steps; 4 at a time keeps both contenders within the 2 cores' reach without idling them.
      pipelines: { steps: 200, parallelism: 4, rounds: 5 },
      // 5 rounds of 4 s per operation and contender: every figure stands on 20 s of each server's load.
      api: {
        clients: 16,
        metricsPerBatch: 500,
        searchRuns: 25_000,
        rounds: 5,
        roundMs: 4_000,
        // Count-based: 64,000 metrics, 160 runs, 320 alias reads and 32 searches per server and round.
        python: { processes: 16, rounds: 3, calls: { 'log-batch': 8, 'create-run': 10, alias: 20, search: 2 } },
      },
      // 20,000 metrics per caller and round, in 500-metric batches (the size PEERS.md measured the client with).
      mlflow: { batches: 40, metricsPerBatch: 500, rounds: 5 },
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
      // 20,000 single submits and 100,000 batched per contender and round; 10,000 jobs at 500/s for the latency.
      scheduler: {
        callers: 16,
        singleJobs: 20_000,
        batchedJobs: 100_000,
        batchSize: 1_000,
        rounds: 3,
        dispatchRate: 500,
        dispatchSeconds: 20,
      },
      // 100 Jobs per contender and round, 8 in flight; the informers' RSS while they hold 10,000 Jobs.
      k8s: { jobs: 100, rounds: 3, concurrency: 8, watched: 10_000 },
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
const mlflow = await reachable('MLPLANE_MLFLOW_URL', process.env.MLPLANE_MLFLOW_URL || undefined, async (url) => {
  const res = await fetch(new URL('/health', url));
  if (!res.ok) throw new Error(`/health answered ${res.status}`);
});
const k8s = await reachable('MLPLANE_KUBECONFIG', process.env.MLPLANE_KUBECONFIG || undefined, async (path) => {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      kc.makeApiClient(VersionApi).getCode(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('no answer from the API server in 10 s')), 10_000);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
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
if (!pgUrl && runs('scheduler')) skipped.push(`PostgreSQL (${pg.why}): the durable scheduler`);
if (!redisUrl && runs('scheduler')) skipped.push(`Redis (${redis.why}): BullMQ beside the durable scheduler`);
if (!k8s.url && runs('k8s')) skipped.push(`Kubernetes (${k8s.why}): plugin-k8s vs raw client calls`);
if (!s3.url && runs('s3')) skipped.push(`S3 (${s3.why}, or MLPLANE_S3_* incomplete): plugin-s3 vs the raw SDK`);
if (!mlflow.url && runs('mlflow'))
  skipped.push(`MLflow (${mlflow.why}): ingest through plugin-mlflow vs the Python client`);
const apiSkip = runs('api') ? apiSkipReason(pgUrl, mlflow.url) : undefined;
if (apiSkip) skipped.push(`HTTP API vs the MLflow server (${apiSkip})`);

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
      ':(glob)packages/*/src/**',
      'packages/sql/bench',
      'packages/plugin-mlflow/src',
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
  `mlplane bench${QUICK ? ' (QUICK sizes: not recorded)' : ''}${ONLY ? ` (only ${[...ONLY].join(', ')}: ${(!QUICK && ONLY.size === 1 && ONLY.has('mlflow')) || RECORD_S3 || RECORD_PIPELINES || RECORD_SECTIONS ? 'merged into the record' : 'not recorded'})` : ''}: ${machine(loadStart, []).cpu}, ${machine(loadStart, []).cores} cores, Node ${process.version}; ${source}; load average at start ${loadStart.join(' ')}`,
);
for (const s of skipped) console.log(`SKIPPED: ${s}`);

const measured: Measured[] = [];
if (runs('ingest')) measured.push(...(await ingest(SIZES.ingest, pgUrl)));
if (runs('search')) measured.push(...(await searchBench(SIZES.search, pgUrl)));
if (runs('alias')) measured.push(...(await aliasBench(SIZES.alias, pgUrl, redisUrl)));
if (runs('scheduler')) measured.push(...(await schedulerBench(SIZES.scheduler, pgUrl, redisUrl)));
const mlflowFigures = runs('mlflow') && mlflow.url ? await mlflowBench(SIZES.mlflow, mlflow.url) : [];
measured.push(...mlflowFigures);
const s3Results = runs('s3') && s3.url ? await s3Bench(SIZES.s3, s3Config!) : { figures: [], rounds: [] };
const s3Measured = s3Results.figures;
measured.push(...s3Measured);
const pipelineResults: PipelineResults = runs('pipelines')
  ? await pipelinesBench(SIZES.pipelines)
  : { figures: [], rounds: [] };
measured.push(...pipelineResults.figures);
const apiResult: ApiResult | undefined =
  runs('api') && !apiSkip ? await apiBench(SIZES.api, pgUrl!, mlflow.url!) : undefined;
measured.push(...(apiResult?.figures ?? []));
const k8sMeasured = runs('k8s') && k8s.url ? await k8sBench(SIZES.k8s, k8s.url) : [];
measured.push(...k8sMeasured);

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

const judgedPath = join(ROOT, 'bench', 'results', 'judged.json');
const history = JSON.parse(await readFile(judgedPath, 'utf8')) as JudgedRun[];
// A run of some sections alone is complete for them: a figure of theirs judged before must still be judged.
const silent = RECORD_SECTIONS
  ? silentGoalChanges(
      history.map((run) => ({ ...run, figures: run.figures.filter((f) => inRecordedSections(f.name)) })),
      measured,
      skipped.length === 0,
    )
  : silentGoalChanges(history, measured, ONLY === undefined && skipped.length === 0);
for (const s of silent) console.log(`GOAL CHANGED SILENTLY: ${s}`);
if ((RECORD || RECORD_SECTIONS) && silent.length > 0) {
  throw new Error(
    `not recorded: ${silent.length} judged figure(s) changed without a note; write each change, its date and reason, in bench/goals.ts`,
  );
}
if (RECORD_SECTIONS && skipped.length > 0) {
  // Merging would drop the recorded figures of a skipped peer's store from these sections.
  throw new Error(`not recorded: ${skipped.join('; ')}`);
}

/** Only the MLflow section at full size: a record of its own figures, merged into the others'. */
const MLFLOW_RECORD = !QUICK && ONLY?.size === 1 && ONLY.has('mlflow') && mlflowFigures.length > 0;
const out = join(
  ROOT,
  'bench',
  'results',
  RECORD || MLFLOW_RECORD || RECORD_S3 || RECORD_PIPELINES || RECORD_SECTIONS ? 'latest.json' : 'quick.json',
);
const isS3 = (f: { name: string }) => f.name.startsWith('s3 ');
const isPipelines = (f: { name: string }) => f.name.startsWith('pipelines ');
const isApi = (f: { name: string }) => f.name.startsWith('api ');
const isK8s = (f: { name: string }) => f.name.startsWith('k8s ');
const previousDocs = await readFile(join(ROOT, 'docs', 'benchmarks.md'), 'utf8').catch(() => '');
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
const pipelinesSection = () =>
  renderPipelinesSection({
    results: pipelineResults,
    machine: m,
    startedAt,
    minutes: took / 60,
    sizes: SIZES.pipelines,
    source,
    table,
  });
await mkdir(dirname(out), { recursive: true });
let written = figures;
const previousFigures = JSON.parse(await readFile(out, 'utf8').catch(() => '[]')) as Figure[];
if (RECORD && !s3Measured.length) {
  // S3 figures this run skipped (no S3 peer) stay as they were recorded, with their own date and machine.
  written = [...figures, ...previousFigures.filter(isS3)];
}
if (RECORD && !apiResult) written = [...written, ...previousFigures.filter(isApi)];
// Likewise the k8s figures of a full run without the Kubernetes peer; its docs section stays too (previousDocs).
if (RECORD && !k8sMeasured.length) written = [...written, ...previousFigures.filter(isK8s)];
if (MLFLOW_RECORD || RECORD_S3 || RECORD_PIPELINES) {
  const previous = previousFigures;
  const names = new Set(figures.map((f) => f.name));
  written = [...previous.filter((f) => !names.has(f.name)), ...figures];
}
if (RECORD_SECTIONS) written = [...previousFigures.filter((f) => !inRecordedSections(f.name)), ...figures];
await writeFile(out, `${JSON.stringify(written, null, 2)}\n`);
console.log(`wrote ${out}`);
const docs = join(ROOT, 'docs', 'benchmarks.md');
const apiSection = () =>
  renderApiSection({
    result: apiResult!,
    sizes: SIZES.api,
    recorded: `Recorded on ${startedAt.toISOString()} (${(took / 60).toFixed(1)} min for the run), ${m.cpu}, ${m.cores} cores, Node ${m.node}, load average ${m.loadavg.start.join(', ')} at the start and ${m.loadavg.end.join(', ')} at the end; ${source}.`,
  });
const mlflowContext = {
  sizes: SIZES.mlflow,
  machine: `${m.cpu}, ${m.cores} cores, Node ${m.node}`,
  source,
  at: startedAt,
};
if (RECORD) {
  const judged: JudgedRun[] = [
    ...history,
    {
      recordedAt: startedAt.toISOString(),
      source,
      machine: `${m.cpu}, ${m.cores} cores`,
      loadavg: m.loadavg,
      figures: judgedFigures(measured),
    },
  ];
  await writeFile(judgedPath, `${JSON.stringify(judged, null, 2)}\n`);
  console.log(`wrote ${judgedPath}`);
  let text = renderDocs({
    measured: measured.filter((f) => !isS3(f) && !isPipelines(f)),
    machine: m,
    skipped,
    startedAt,
    minutes: took / 60,
    sizes: SIZES,
    source,
    judged,
    previousDocs,
  });
  text = spliceS3Section(text, s3Measured.length ? s3Section() : extractS3Section(previousDocs));
  text = splicePipelinesSection(
    text,
    pipelineResults.figures.length ? pipelinesSection() : extractPipelinesSection(previousDocs),
  );
  text = spliceApiSection(text, apiResult ? apiSection() : extractApiSection(previousDocs));
  if (mlflowFigures.length > 0) text = withMlflowSection(text, mlflowFigures, mlflowContext);
  await writeFile(docs, text);
  console.log(`wrote ${docs}`);
} else if (MLFLOW_RECORD) {
  await writeFile(docs, withMlflowSection(await readFile(docs, 'utf8'), mlflowFigures, mlflowContext));
  console.log(`wrote ${docs}`);
} else if (RECORD_SECTIONS) {
  const judged: JudgedRun[] = [
    ...history,
    {
      recordedAt: startedAt.toISOString(),
      source,
      machine: `${m.cpu}, ${m.cores} cores`,
      loadavg: m.loadavg,
      sections: [...ONLY!],
      figures: judgedFigures(measured),
    },
  ];
  await writeFile(judgedPath, `${JSON.stringify(judged, null, 2)}\n`);
  console.log(`wrote ${judgedPath}`);
  let text = spliceSections(previousDocs, {
    measured,
    machine: m,
    startedAt,
    minutes: took / 60,
    sizes: SIZES,
    source,
    judged,
    sections: [...ONLY!],
  });
  if (apiResult) text = spliceApiSection(text, apiSection());
  await writeFile(docs, text);
  console.log(`merged the ${[...ONLY!].join(' and ')} figures into ${out}, ${judgedPath} and ${docs}`);
} else if (RECORD_S3 && s3Measured.length) {
  await writeFile(docs, spliceS3Section(previousDocs, s3Section()));
  console.log(`merged the S3 figures into ${out} and ${docs}`);
} else if (RECORD_PIPELINES) {
  await writeFile(docs, splicePipelinesSection(previousDocs, pipelinesSection()));
  console.log(`merged the pipelines figures into ${out} and ${docs}`);
}
