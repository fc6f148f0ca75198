// Renders docs/benchmarks.md from one run's figures; the file is rewritten by every full `pnpm bench`. A run of only
// some of MERGED_SECTIONS (search, alias, api, scheduler, k8s) at full size rewrites those sections, the goals table
// and the goal history, and leaves the rest as recorded (spliceSections).
import { type AliasSizes, ROUND_MS } from './alias.js';
import { GOAL_CHANGES, type JudgedFigure, type JudgedRun } from './goals.js';
import type { IngestSizes } from './ingest.js';
import { K8S_GOAL_RATIO, K8S_GOAL_RSS_MIB, type K8sSizes } from './k8s.js';
import type { Machine, Measured } from './lib.js';
import { S3_GOAL_RATIO, S3_GOAL_RSS_MIB, type S3Sizes } from './s3.js';
import {
  SCHEDULER_BENCH_POLL_MS,
  SCHEDULER_GOAL_BATCHED,
  SCHEDULER_GOAL_P99_MS,
  type SchedulerSizes,
} from './scheduler.js';
import type { SearchSizes } from './search.js';

export interface DocsInput {
  readonly measured: readonly Measured[];
  readonly machine: Machine;
  readonly skipped: readonly string[];
  readonly startedAt: Date;
  readonly minutes: number;
  readonly sizes: {
    ingest: IngestSizes;
    search: SearchSizes;
    alias: AliasSizes;
    scheduler: SchedulerSizes;
    k8s: K8sSizes;
  };
  /** The commit measured and whether its measured files had uncommitted changes. */
  readonly source: string;
  /** The judged figures of every recorded run, this one last. */
  readonly judged: readonly JudgedRun[];
  /**
   * docs/benchmarks.md as recorded before this run: a section whose peer this run skipped (k8s without
   * MLPLANE_KUBECONFIG) stays as it was recorded there, with its own date.
   */
  readonly previousDocs?: string;
}

const n = (x: number | null) => (x === null ? '–' : x.toLocaleString('en-US', { maximumFractionDigits: 3 }));

export function table(rows: readonly Measured[]): string {
  const lines = [
    '| figure | ours | unit | peer | peer is | ratio (>1: mlplane better) | goal |',
    '|---|---:|---|---:|---|---:|---|',
  ];
  for (const f of rows) {
    const goal = f.goal ? `${f.goal.text}: ${f.goal.met ? '**met**' : '**missed**'}` : '';
    lines.push(`| ${f.name} | ${n(f.ours)} | ${f.unit} | ${n(f.peer)} | ${f.peerIs ?? ''} | ${n(f.ratio)} | ${goal} |`);
  }
  return lines.join('\n');
}

function goalHistory(judged: readonly JudgedRun[]): string {
  const changes = [
    '| date | figure judged until then | goal | judged instead | reason |',
    '|---|---|---|---|---|',
    ...GOAL_CHANGES.map(
      (c) =>
        `| ${c.date}${c.commit ? ` (${c.commit})` : ''} | ${c.figure} | ${c.goal} | ${c.replacedBy ?? '– (reported without a goal)'} | ${c.reason} |`,
    ),
  ];
  const runs = [
    '| recorded | code measured | machine | load at start | figure | ours | unit | peer | ratio | goal |',
    '|---|---|---|---|---|---:|---|---:|---:|---|',
    ...judged.flatMap((run) =>
      run.figures.map(
        (f) =>
          `| ${run.recordedAt.slice(0, 16).replace('T', ' ')} | ${run.source} | ${run.machine} | ${run.loadavg.start[0]} | ${f.name} | ${n(f.ours)} | ${f.unit} | ${n(f.peer)} | ${n(f.ratio)} | ${f.goal}: ${f.met ? '**met**' : '**missed**'} |`,
      ),
    ),
  ];
  return `## Goal history

Every figure judged against a goal of issue 4 in a recorded run stays here, with its goal and result, also after it
stopped being judged. What is judged changes only with a note in \`bench/goals.ts\` (date and reason): \`pnpm bench\`
refuses to record a run in which a figure judged before is judged no more, or against another goal, without one.
Machine-readable: [bench/results/judged.json](../bench/results/judged.json).

### Changes of what is judged

${changes.join('\n')}

### Judged figures of every recorded run

${runs.join('\n')}
`;
}

/** How to run it; rewritten by partial records too, since it says what they do. */
const REPRODUCE = `## How to reproduce

\`\`\`sh
source scripts/bootstrap.sh
# A peer set of the bench's own (state dir and ports), so that other engineers' peer restarts and fault tests on
# the shared peers cannot hit the run; plain scripts/peers up postgres redis works too.
export MLPLANE_PEERS_STATE=/tmp/bench-peers MLPLANE_PG_PORT=55339 MLPLANE_REDIS_PORT=47391
scripts/peers up postgres redis && eval "$(scripts/peers env)"
pnpm bench                     # full sizes: writes bench/results/latest.json and this file
BENCH_QUICK=1 pnpm bench       # small sizes in about a minute: bench/results/quick.json only
BENCH_ONLY=search,alias pnpm bench  # these sections only, merged into this file and latest.json (the rest kept)
BENCH_ONLY=scheduler pnpm bench     # the same for the scheduler section (PostgreSQL and Redis)
BENCH_ONLY=ingest pnpm bench   # one section at full size: quick.json only
# The HTTP API against the MLflow server (section 7) needs MLflow on the same PostgreSQL, as the peer runs it:
scripts/peers up postgres s3 mlflow && eval "$(scripts/peers env)" && BENCH_ONLY=api pnpm bench
# plugin-k8s (section 9) needs the Kubernetes peer; a full run includes it when MLPLANE_KUBECONFIG is set:
scripts/peers up k8s && eval "$(scripts/peers env)" && BENCH_ONLY=k8s pnpm bench
\`\`\`

Without \`MLPLANE_PG_URL\` or \`MLPLANE_REDIS_URL\` (or with a server that does not answer) the figures that need
them are skipped and listed as skipped; the embedded ones are still written. The peers are PostgreSQL 15 (\`fsync\`
off, as \`scripts/peers\` starts it) and Redis 7.0, on loopback. The whole run takes about 2 minutes at a load average
of 4 and 7 to 8 minutes at 12, plus section 9 when the Kubernetes peer is up. Without \`MLPLANE_KUBECONFIG\` (or with
an API server that does not answer) a full run skips section 9, lists it as skipped, and keeps its figures and its
section as last recorded.`;

/** The goals table; `recorded` (when the rows come from several recorded runs) says which came from which. */
function goalsBlock(goals: readonly Measured[], recorded = ''): string {
  const met = goals.filter((f) => f.goal!.met).length;
  return `## Goals (issue 4, the Foundation v2 issue, issues 10 and 12)

${met} of ${goals.length} figures with a goal meet it.
${recorded}
${table(goals)}

Figures judged in earlier runs, and changes of what is judged, are in the [goal history](#goal-history) below.`;
}

/** Sections that `BENCH_ONLY=<them> pnpm bench` at full size records on their own, merged into the record. */
export const MERGED_SECTIONS: readonly string[] = ['search', 'alias', 'api', 'scheduler', 'k8s'];
const SECTION_ORDER = ['ingest', 'search', 'alias', 'api', 'scheduler', 'k8s'];
const sectionOf = (name: string) => SECTION_ORDER.findIndex((s) => name.startsWith(`${s} `));

/**
 * The judged figures the record stands on now: those of the last full run, each section replaced by the figures of
 * any later run of that section alone (`sections`), with the run each came from.
 */
export function currentGoals(judged: readonly JudgedRun[]): { figure: JudgedFigure; run: JudgedRun }[] {
  const current = new Map<string, { figure: JudgedFigure; run: JudgedRun }>();
  for (const run of judged) {
    const sections = run.sections;
    if (sections === undefined) current.clear();
    else
      for (const name of [...current.keys()]) if (sections.some((s) => name.startsWith(`${s} `))) current.delete(name);
    for (const figure of run.figures) current.set(figure.name, { figure, run });
  }
  return [...current.values()].sort((a, b) => sectionOf(a.figure.name) - sectionOf(b.figure.name));
}

export interface SectionsInput {
  readonly measured: readonly Measured[];
  readonly machine: Machine;
  readonly startedAt: Date;
  readonly minutes: number;
  readonly sizes: { search: SearchSizes; alias: AliasSizes; scheduler: SchedulerSizes; k8s: K8sSizes };
  readonly source: string;
  /** The judged figures of every recorded run, this one last. */
  readonly judged: readonly JudgedRun[];
  /** The sections this run measured, of MERGED_SECTIONS. */
  readonly sections: readonly string[];
}

/** Replaces the block that starts at `heading` (a line) and ends before the next `## ` heading or HTML comment. */
function replaceBlock(doc: string, heading: string, text: string): string {
  const start = doc.startsWith(heading) ? 0 : doc.indexOf(`\n${heading}`) + 1;
  if (start <= 0 && !doc.startsWith(heading)) {
    throw new Error(`docs/benchmarks.md has no '${heading}' block to replace: record a full run (pnpm bench)`);
  }
  const ends = ['\n## ', '\n<!-- '].map((m) => doc.indexOf(m, start + heading.length)).filter((i) => i >= 0);
  const end = ends.length ? Math.min(...ends) + 1 : doc.length;
  return `${doc.slice(0, start)}${text.trimEnd()}\n\n${doc.slice(end)}`;
}

/**
 * docs/benchmarks.md after a run of some of MERGED_SECTIONS alone: their sections (saying when they were recorded),
 * the goals table (the current judged figures, see currentGoals) and the goal history are rewritten; every other
 * part stays as recorded.
 */
export function spliceSections(doc: string, input: SectionsInput): string {
  const { machine: m } = input;
  const recorded = `\nRecorded apart from the sections around it, by \`BENCH_ONLY=${input.sections.join(',')} pnpm bench\`, on ${input.startedAt.toISOString()} (${input.minutes.toFixed(1)} min), ${m.cpu}, ${m.cores} cores, Node ${m.node}, load average ${m.loadavg.start.join(', ')} at the start and ${m.loadavg.end.join(', ')} at the end; ${input.source}.\n`;
  const section = (prefix: string) => input.measured.filter((f) => f.name.startsWith(`${prefix} `));
  let out = replaceBlock(doc, '## How to reproduce', REPRODUCE);
  if (input.sections.includes('search')) {
    out = replaceBlock(out, '## 2. Search', searchSection(input.sizes.search, section('search'), recorded));
  }
  if (input.sections.includes('alias')) {
    out = replaceBlock(out, '## 3. Alias', aliasSection(input.sizes.alias, section('alias'), recorded));
  }
  if (input.sections.includes('scheduler')) {
    const text = schedulerSection(input.sizes.scheduler, section('scheduler'), recorded);
    // The first run of this section alone adds it before the goal history.
    out = out.includes('\n## 8. Scheduler')
      ? replaceBlock(out, '## 8. Scheduler', text)
      : out.replace('\n## Goal history', `\n${text.trimEnd()}\n\n## Goal history`);
  }
  if (input.sections.includes('k8s')) {
    const text = k8sSection(input.sizes.k8s, section('k8s'), recorded);
    // Likewise: the first run of this section alone adds it before the goal history (after section 8).
    out = out.includes(`\n${K8S_HEADING}`)
      ? replaceBlock(out, K8S_HEADING, text)
      : out.replace('\n## Goal history', `\n${text.trimEnd()}\n\n## Goal history`);
  }
  const current = currentGoals(input.judged);
  const runs = [...new Set(current.map((c) => c.run))];
  const provenance =
    runs.length > 1
      ? `\nThe rows come from ${runs.length} recorded runs: ${runs
          .map((run) => {
            const sections = [...new Set(current.filter((c) => c.run === run).map((c) => c.figure.name.split(' ')[0]))];
            return `${sections.join(' and ')} on ${run.recordedAt.slice(0, 16).replace('T', ' ')} (load average ${run.loadavg.start[0]} at the start, ${run.source})`;
          })
          .join('; ')}.\n`
      : '';
  const goals: Measured[] = current.map(({ figure: f }) => ({
    name: f.name,
    unit: f.unit,
    ours: f.ours,
    peer: f.peer,
    ratio: f.ratio,
    at: '',
    ...(f.peerIs ? { peerIs: f.peerIs } : {}),
    goal: { text: f.goal, met: f.met },
  }));
  out = replaceBlock(out, '## Goals (', goalsBlock(goals, provenance));
  return replaceBlock(out, '## Goal history', goalHistory(input.judged));
}

/** Section 2; `recorded` (a paragraph with a newline either side) says when it was measured, if apart from the rest. */
function searchSection(sizes: SearchSizes, rows: readonly Measured[], recorded = ''): string {
  return `## 2. Search: searchRuns over ${sizes.runs.toLocaleString('en-US')} runs
${recorded}
Seeded once per benchmark run into a fresh temp dir (SQLite, synchronous NORMAL, which only changes commit cost)
and a fresh PostgreSQL schema. The first 500 runs go through the public API (createRun with 2 tags, then one
logBatch with the run's 20 metrics and 3 params; 1 writer on SQLite, 8 on PostgreSQL), which gives the per-run
seeding rate below; the rest are written with the same rows in bulk, 1,000 runs per transaction, with the
tracker's own multi-row metric insert and plain multi-row inserts for runs, latest values, params and tags (through
the API a run costs about 4 ms of CPU, so 25,000 runs per store would not fit the time budget on this loaded machine;
outbox rows, which search never reads, are left out). Before timing, the paging query is walked to its last page and
must find exactly the runs the seed put there. Then each store gets the planner statistics it would
have after a while in use: the SQLite store is closed and reopened (it runs \`PRAGMA optimize\` at close and open),
PostgreSQL gets a \`VACUUM ANALYZE\`, repeated until the visibility map covers the tables (what autovacuum leaves
after a load: statistics, and the visibility map that index-only scans need; a VACUUM right after the load can leave
half the pages unmarked while some snapshot is open, and index-only scans then read the heap). The PostgreSQL store runs its sessions without parallel workers or JIT (its defaults, see
docs/ports/metadata-store.md), and page tokens are keyset cursors, so page 5 costs about what page 1 does. A metric
filter is bound to the searched experiments as well as to the run, which lets PostgreSQL read its matching values as
one range of the (experiment, key, value) index and hash them rather than probe every run that a metric-ordered page
walks past (page 5 below: 6,000 buffers read instead of 20,000). Each query returns a page of 100 whole runs
(metrics, params, tags); ${sizes.samples} timed samples per query and store, the stores and queries alternating sample by sample
(the stores' order rotated each sample).

${table(rows)}`;
}

/** Section 3; `recorded` as for searchSection. */
function aliasSection(sizes: AliasSizes, rows: readonly Measured[], recorded = ''): string {
  return `## 3. Alias resolution at ${sizes.callers} concurrent callers
${recorded}
\`resolve('models:/<name>@champion')\` from ${sizes.callers} concurrent async callers in one Node process, each making
at least ${sizes.callsPerCaller} sequential calls per round (a faster contender makes more, as its warm-up throughput says, so
that every contender's round lasts about ${ROUND_MS} ms), ${sizes.rounds} rounds alternating the contenders (their order rotated each
round). Every registry is called as a platform's users call it, through the kernel's guard of the ModelRegistry port:
\`SqlModelRegistry\` on each store, and \`CachedModelRegistry\` over it, twice: with the Redis read-through cache alone
(one Redis round trip per hit), and with its near cache (hits served from process memory, kept coherent by Redis
client-side caching: invalidation messages for every change to a cached key, the near tier emptied and bypassed
while that link is down; see docs/operations/caching-and-locks.md). The latency of a call includes its wait for the
event loop behind the other callers. The peer of a Redis-only row is the same store without the cache; the peer of a
near-cache row is the same store with Redis alone. The reference rows are no mlplane code: each of the same 32
callers makes one Redis GET round trip per call, which shows what a network read costs on this machine at this load
(the cache can beat it: concurrent callers of one key share one read). The 2 ms goal is judged on the near-cache
rows, the cache as the Redis cache plugin ships it; the Redis-only rows show the tier under it, whose every hit is a
network read with the reference row's tail.

**Uncached resolve against the raw driver** (goal of the Foundation v2 issue, item 7): the uncached registry reads
a version by alias in one query (the version row with its tags and aliases as JSON arrays), whose SQL is compiled
once and bound with new values; on PostgreSQL it runs as a named prepared statement, on SQLite the store runs such a
compiled read at once when its connection is free. The raw-driver rows are no mlplane code either: from the same
${sizes.callers} callers, in the same rounds, better-sqlite3 (a prepared statement on its own connection to the same file) and
a pg Pool (as many connections as the store's, the same session settings) run the very SQL the registry runs,
captured by running \`resolve\` once through a logging kysely; pg runs it both as an unnamed and as a named
statement. The uncached registry's throughput is judged at ≥ 1/3 of the faster of those. The "simple SELECT" rows
read only the alias row by its primary key (the model id known: no join, no tags, no aliases): what the cheapest
indexed read costs through each driver, for scale, not a contender. The registry's SQL hides its bound values from
SQLite's query planner (\`+?\`): better-sqlite3's SQLite (built with STAT4) otherwise re-plans a join each time a
value is bound anew, which cost 80 to 100 µs a call, several times the read itself.

${table(rows)}`;
}

/** Section 6; `recorded` as for searchSection. */
function schedulerSection(sizes: SchedulerSizes, rows: readonly Measured[], recorded = ''): string {
  const n = (x: number) => x.toLocaleString('en-US');
  return `## 8. Scheduler: durable submissions and dispatch latency (issue 12)
${recorded}
\`SqlScheduler\` (packages/sql/src/scheduler, see docs/operations/scheduler.md) on PostgreSQL against BullMQ on the
Redis peer, the same job spec as payload (one replica group, a command, CPU and memory). Submitting stores the job as
Queued with its \`job.queued\` outbox event, committed before the call returns; nothing dispatches during these
rounds, so the figure is the durable write alone, as BullMQ's add is. Single: ${n(sizes.singleJobs)} calls of \`submit\` per round
from ${sizes.callers} concurrent callers (concurrent calls share insert statements: group commit) against as many
\`queue.add\` calls from ${sizes.callers} callers; batched: ${n(sizes.batchedJobs)} jobs per round through \`submitMany\` in calls of
${n(sizes.batchSize)} against \`queue.addBulk\` of the same size. ${sizes.rounds} rounds, the contenders' order rotated each round;
the figure is each contender's median rate. Durability differs: the PostgreSQL peer runs with \`fsync\` off (as
\`scripts/peers\` starts it) and Redis with its default persistence (no fsync per write), so neither figure includes
a disk flush per commit. Goals: single ≥ BullMQ's \`queue.add\`; batched ≥ ${n(SCHEDULER_GOAL_BATCHED)} jobs/s.

Dispatch latency, measured first (in one run that measured it after the throughput rounds, PostgreSQL's work on
their rows stretched its tail to seconds): ${n(sizes.dispatchRate * sizes.dispatchSeconds)} jobs submitted at a steady ${sizes.dispatchRate} jobs/s (open loop, every 10 ms the
jobs due by then) through a scheduler instance that does not dispatch, as an API process would; two replicas, each
with its own connection pool (in the same Node process as the submitter: one event loop for all three), dispatch
them, polling every ${SCHEDULER_BENCH_POLL_MS} ms when idle. Latency is from the \`submit\` call to the
moment the wrapped backend receives the job (an in-memory backend that starts it at once and ends it 100 ms later, so
the replicas also follow running jobs). Goal: p99 ≤ ${SCHEDULER_GOAL_P99_MS} ms. The replicas and the submitter share this
machine's cores with PostgreSQL and Redis.

${table(rows)}`;
}

const K8S_HEADING = '## 9. plugin-k8s';

/** Section 9; `recorded` as for searchSection. */
function k8sSection(sizes: K8sSizes, rows: readonly Measured[], recorded = ''): string {
  const n = (x: number) => x.toLocaleString('en-US');
  return `${K8S_HEADING}: Jobs submitted through the plugin vs raw client calls, on the Kubernetes peer
${recorded}
\`K8sComputeBackend\` (packages/plugin-k8s, see docs/plugins/k8s.md) against the Kubernetes peer (\`scripts/peers up
k8s\`: kube-apiserver, kube-scheduler and kube-controller-manager 1.34 on this machine, the nodes simulated by kwok;
docs/development.md), in a namespace the run creates and deletes. Submit rate: ${n(sizes.jobs)} Jobs per contender and round,
${sizes.concurrency} submits in flight at once for both. The plugin's \`submit\` (validating the spec, building the manifests, creating
the Job with strict field validation, its informers on Jobs, pods and Warning events running in the same process)
against \`BatchV1Api.createNamespacedJob\` of the same manifests (built by the plugin's \`buildManifests\`) with
\`fieldValidation: Strict\`, as \`kubectl create\` validates. ${sizes.rounds} rounds, the contenders' order rotated each round; the figure
is each contender's median rate. Goal: ≥ ${K8S_GOAL_RATIO} of the raw rate.

Submit-to-Running: from the plugin's \`submit\` call to the first status other than Pending that its own \`watch\`
delivers, for the plugin's Jobs of every round (kwok moves a pod to Running about a second after it is bound; a Job
not Running 120 s after the round's last submit is left out, and the run says so). It is the peer's throughput more
than the plugin's: all ${n(2 * sizes.jobs * sizes.rounds)} Jobs of a run (both contenders) queue in kube-scheduler and kwok on this
machine's cores. Reported, not judged.

RSS growth: ${n(sizes.watched)} suspended Jobs (no pods), labelled as the plugin's, are created with the raw client; then the
process's RSS is read, a second backend connects (its informers have listed them and watch when \`connect\`
returns), it lists a page of them, and the RSS is read again (each reading after a full garbage collection, so that
what creating the Jobs left behind is not counted as held; the table's last row is the RSS before). Goal: growth
≤ ${K8S_GOAL_RSS_MIB} MiB.

Noise: the API server, etcd, the scheduler, the controllers and kwok share the cores with the bench, and the plugin's
side also handles every pod event of its running Jobs, which the raw contender does not. In quick-size runs of
2 December 2026 (30 Jobs, 2 rounds, load average 9-13) the ratio swung from 0.44 to 1.14: read it together with the
load average of the run.

${table(rows)}`;
}

/** The k8s section of a docs file as recorded (up to the next section), or '' when it has none. */
function extractK8sSection(doc: string): string {
  const start = doc.indexOf(`\n${K8S_HEADING}`);
  if (start === -1) return '';
  const ends = ['\n## ', '\n<!-- '].map((m) => doc.indexOf(m, start + 1)).filter((i) => i >= 0);
  return doc.slice(start + 1, ends.length ? Math.min(...ends) + 1 : doc.length).trimEnd();
}

export function renderDocs(input: DocsInput): string {
  const { measured, machine: m, sizes } = input;
  const section = (prefix: string) => measured.filter((f) => f.name.startsWith(prefix));
  const goals = measured.filter((f) => f.goal);
  const k8sRows = section('k8s ');
  // Dated even in the run that renders it: a later full run without the Kubernetes peer keeps it as it is.
  const k8sRecorded = `\nRecorded by the full run of ${input.startedAt.toISOString()} (\`pnpm bench\`); ${input.source}.\n`;
  const k8s = k8sRows.length
    ? k8sSection(sizes.k8s, k8sRows, k8sRecorded)
    : extractK8sSection(input.previousDocs ?? '');
  return `# Benchmarks

Generated by \`pnpm bench\` (bench/run.ts) on ${input.startedAt.toISOString()}; do not edit by hand, rerun it.
Machine-readable figures of the same run: [bench/results/latest.json](../bench/results/latest.json).

${REPRODUCE}

## Machine

| | |
|---|---|
| CPU | ${m.cpu} |
| cores | ${m.cores} |
| memory | ${m.memoryGiB} GiB |
| Node | ${m.node} |
| OS | ${m.os} |
| load average (1, 5, 15 min) at start | ${m.loadavg.start.join(', ')} |
| load average at end | ${m.loadavg.end.join(', ')} |
| run took | ${input.minutes.toFixed(1)} min |
| code measured | ${input.source} |

**Load**: this machine has ${m.cores} cores, shared with the peers (PostgreSQL and Redis run on it) and with whatever
else ran (a 1-minute load average of ${m.loadavg.start[0]} at the start: about ${(m.loadavg.start[0]! / m.cores).toFixed(1)} runnable tasks per core). Absolute figures
move from run to run; ratios of contenders measured in the same rounds, their order rotated, are the meaningful part.

${goalsBlock(goals)}
${input.skipped.length ? `\n## Skipped\n\n${input.skipped.map((s) => `- ${s}`).join('\n')}\n` : ''}
## 1. Ingest: logBatch vs PostgreSQL COPY

Library-level \`SqlExperimentTracker.logBatch\` (validation, run lock, metrics insert, latest-value upsert, outbox event
per batch, committed before the call returns; on PostgreSQL a metrics-only batch does all of it in one statement, one
round trip; the cases live in \`packages/sql/bench/tracker-ingest.ts\`), ${sizes.ingest.rows10.toLocaleString('en-US')} rows per contender
in 10-metric batches and ${sizes.ingest.rows500.toLocaleString('en-US')} in 500-metric batches, in ${sizes.ingest.rounds} rounds. In every round each contender
writes the same rows, one after the other, and the order rotates by one each round, so that none always writes first
into the smaller table. The peer is PostgreSQL \`COPY … FROM STDIN\` of the same rows into the same \`metrics\` table,
in the same rounds and on as many connections as \`logBatch\` has writers: once as one COPY per batch (the same commit
granularity as one \`logBatch\` call) and once as each connection's share of the round in a single stream (the bulk
ceiling). Every writer and every COPY connection appends to a run of its own, as a tracking server's clients do. The
50% goal is judged against COPY of the same batches for one writer, and against 4 COPY streams for 4 concurrent
writers; the other COPY figure of each case is context. Embedded rows are compared with the per-batch COPY of one
writer (a different engine, measured in another case's rounds: context, not a contest).

${table(section('ingest'))}

${searchSection(sizes.search, section('search'))}

${aliasSection(sizes.alias, section('alias'))}

${schedulerSection(sizes.scheduler, section('scheduler'))}
${k8s ? `\n${k8s}\n` : ''}
${goalHistory(input.judged)}`;
}

const S3_BEGIN = '<!-- s3 section: written by `BENCH_ONLY=s3 pnpm bench` or a full run; the rest of the file stays -->';
const S3_END = '<!-- end of s3 section -->';

export interface S3DocsInput {
  readonly measured: readonly Measured[];
  /** Per-round MiB/s of each contender, one line per size and direction. */
  readonly rounds: readonly string[];
  readonly machine: Machine;
  readonly startedAt: Date;
  readonly minutes: number;
  readonly sizes: S3Sizes;
  readonly source: string;
}

/** The S3 section with its own run's date and machine, since it may be recorded apart from the sections above. */
export function renderS3Section(input: S3DocsInput): string {
  const { measured, machine: m, sizes } = input;
  const goals = measured.filter((f) => f.goal);
  const met = goals.filter((f) => f.goal!.met).length;
  const rounds = sizes.objects
    .map((o) => `${o.mib >= 1024 ? `${o.mib / 1024} GiB` : `${o.mib} MiB`}: ${o.rounds}`)
    .join(', ');
  return `${S3_BEGIN}
## 5. plugin-s3 vs the raw AWS SDK

Recorded on ${input.startedAt.toISOString()} (${input.minutes.toFixed(1)} min), ${m.cpu}, ${m.cores} cores, Node ${m.node},
load average ${m.loadavg.start.join(', ')} at the start and ${m.loadavg.end.join(', ')} at the end; ${input.source}.
Reproduce with \`BENCH_ONLY=s3 pnpm bench\` (S3 server from \`MLPLANE_S3_*\`, e.g. \`scripts/peers up s3\`), which merges these
figures into bench/results/latest.json and rewrites only this section.

Both contenders talk to the same server, the S3 peer (versitygw 1.8.0, posix backend on the local disk, on this
machine), with the same part size and concurrency (plugin-s3's defaults). plugin-s3: \`S3ArtifactStore.put\` and
\`get\` (the whole body hashed with SHA-256 on the way, a SHA-256 checksum per part that the server verifies, and after
an upload in parts a copy of the object onto itself that records the hash in its metadata). Raw SDK: lib-storage's
\`Upload\` with the SDK's defaults (a CRC32 checksum per part) and \`GetObject\`. Downloads read the same object, the
one plugin-s3 wrote, with both. MiB/s is the median over the rounds (${rounds}), in which the contenders alternate
which goes first. RSS growth is the peak resident set size during one transfer over the RSS after a warm-up
transfer, each contender and direction in a fresh Node process, sampled every 10 ms.

${met} of ${goals.length} figures with a goal meet it (≥ ${S3_GOAL_RATIO} of the raw SDK's MiB/s with hashing on; RSS growth < ${S3_GOAL_RSS_MIB} MiB).

${table(measured)}

MiB/s of every round, in order (the machine is shared: single rounds vary several-fold at this load, so read the
medians and their ratios, not one round):

${input.rounds.map((r) => `- ${r}`).join('\n')}
${S3_END}
`;
}

/** The S3 section of a docs file, markers included, or '' when it has none. */
export function extractS3Section(doc: string): string {
  const begin = doc.indexOf(S3_BEGIN);
  const end = doc.indexOf(S3_END);
  return begin === -1 || end === -1 ? '' : `${doc.slice(begin, end + S3_END.length)}\n`;
}

/** Puts `section` in place of the doc's S3 section, or after its end when it has none. */
export function spliceS3Section(doc: string, section: string): string {
  const begin = doc.indexOf(S3_BEGIN);
  const end = doc.indexOf(S3_END);
  if (begin !== -1 && end !== -1) return `${doc.slice(0, begin)}${section}${doc.slice(end + S3_END.length + 1)}`;
  return section ? `${doc.trimEnd()}\n\n${section}` : doc;
}
