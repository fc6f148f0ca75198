// Figure 6 (issue 12): pipeline overhead. A 200-step fan-out of `true` run by the orchestrator on the local
// ComputeBackend (embedded platform: SQLite, local artifact store, tracker lineage on) against spawning the same 200
// processes directly from Node, with the same parallelism: the backend gets that many CPU slots and each step asks for
// one, the direct runner keeps that many children alive at once. Beside it, without goals: the same jobs submitted to
// the backend alone (the backend's share), and the pipeline on a platform whose SQLite skips the fsync per commit.
// Rounds rotate the contenders' order; the rates are medians over the rounds. Caching is off for the measured step
// (otherwise every round after the first would reuse the first's results); a fully cached rerun is reported too.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ComputeBackend, computeBackendRef, experimentTrackerRef, isTerminalJobPhase } from '@mlplane/core';
import { createPlatform } from '@mlplane/defaults';
import { PipelineOrchestrator, pipeline, step } from '@mlplane/pipelines';
import { z } from 'zod';
import { figure, type Machine, type Measured, rotated } from './lib.js';

export interface PipelineSizes {
  readonly steps: number;
  readonly parallelism: number;
  readonly rounds: number;
}

export const PIPELINE_GOAL_RATIO = 0.5;

export interface PipelineResults {
  readonly figures: Measured[];
  /** Steps/s of each round, per contender. */
  readonly rounds: string[];
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** Runs `count` `true` processes, at most `parallelism` at once; resolves with the seconds it took. */
async function spawnDirectly(count: number, parallelism: number): Promise<number> {
  const started = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      await new Promise<void>((resolve, reject) => {
        const child = spawn('true', [], { stdio: 'ignore' });
        child.once('error', reject);
        child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`true exited ${code}`))));
      });
    }
  };
  await Promise.all(Array.from({ length: parallelism }, worker));
  return (performance.now() - started) / 1000;
}

interface Embedded {
  readonly orchestrator: PipelineOrchestrator;
  readonly compute: ComputeBackend;
  /** A tracker run the backend-alone jobs name, as the orchestrator's jobs name their step's run. */
  readonly runId: string;
  stop(): Promise<void>;
}

/** An embedded platform (its own data dir) with `parallelism` CPU slots, and an orchestrator on it. */
async function embedded(root: string, sizes: PipelineSizes, synchronous: 'FULL' | 'NORMAL'): Promise<Embedded> {
  const platform = createPlatform({
    plugins: [],
    config: {
      platform: { signals: [] },
      embedded: {
        dataDir: join(root, synchronous),
        secrets: { masterKey: randomBytes(32).toString('base64') },
        metadata: { synchronous },
        compute: { cpu: sizes.parallelism, killGraceMs: 1_000 },
      },
    },
    log: { level: 'silent' },
  });
  await platform.start();
  const orchestrator = await PipelineOrchestrator.forPlatform(platform, { workspace: join(root, `${synchronous}-ws`) });
  const tracker = await platform.get(experimentTrackerRef);
  const experiment = await tracker.createExperiment({ name: 'bench-backend-alone' });
  const run = await tracker.createRun({ experimentId: experiment.id });
  return {
    orchestrator,
    compute: await platform.get(computeBackendRef),
    runId: run.info.id,
    stop: () => platform.stop(),
  };
}

/** The jobs the pipeline's steps are, submitted straight to the ComputeBackend and watched to their end. */
async function backendAlone(on: Embedded, count: number): Promise<number> {
  const started = performance.now();
  await Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const job = await on.compute.submit({
        name: `noop-${i}`,
        project: 'default',
        runId: on.runId,
        replicaGroups: [{ role: 'main', command: ['true'], resources: { cpu: 1 } }],
      });
      for await (const status of on.compute.watch({ id: job.id })) {
        if (isTerminalJobPhase(status.phase)) {
          if (status.phase !== 'Succeeded') throw new Error(`job ${job.id} ended ${status.phase}`);
          break;
        }
      }
    }),
  );
  return (performance.now() - started) / 1000;
}

export async function pipelinesBench(sizes: PipelineSizes): Promise<PipelineResults> {
  const root = await mkdtemp(join(tmpdir(), 'mlplane-bench-pipelines-'));
  const full = await embedded(root, sizes, 'FULL');
  const normal = await embedded(root, sizes, 'NORMAL');
  try {
    const noop = (cache: boolean) =>
      step({
        name: 'noop',
        version: '1',
        inputs: { i: z.number() },
        job: { command: ['true'], resources: { cpu: 1 } },
        cache,
      });
    const fanOut = (cache: boolean) =>
      pipeline({ name: 'fan-out', params: { items: z.array(z.number()) } }, (p) => {
        p.map(noop(cache), p.params.items, (i) => ({ i }));
      });
    const items = Array.from({ length: sizes.steps }, (_, i) => i);
    const viaPipeline = async (on: Embedded, cache: boolean) => {
      const started = performance.now();
      const result = await on.orchestrator.run(fanOut(cache), { items }, { maxParallel: sizes.steps });
      if (result.status !== 'Succeeded') throw new Error(`the bench pipeline ended ${result.status}: ${result.error}`);
      return (performance.now() - started) / 1000;
    };
    // One warm-up of each: the first job start compiles and caches what the rest reuse.
    await viaPipeline(full, false);
    await viaPipeline(normal, false);
    await backendAlone(full, sizes.parallelism);
    await spawnDirectly(sizes.parallelism, sizes.parallelism);

    const contenders = {
      pipeline: () => viaPipeline(full, false),
      backend: () => backendAlone(full, sizes.steps),
      normal: () => viaPipeline(normal, false),
      direct: () => spawnDirectly(sizes.steps, sizes.parallelism),
    };
    const rates: Record<keyof typeof contenders, number[]> = { pipeline: [], backend: [], normal: [], direct: [] };
    const rounds: string[] = [];
    for (let r = 0; r < sizes.rounds; r++) {
      for (const name of rotated(Object.keys(contenders) as (keyof typeof contenders)[], r)) {
        rates[name].push(sizes.steps / (await contenders[name]()));
      }
      const at = (k: keyof typeof contenders) => rates[k].at(-1)!.toFixed(1);
      const line =
        `round ${r + 1}/${sizes.rounds}: pipeline ${at('pipeline')} steps/s, backend alone ${at('backend')} jobs/s, ` +
        `pipeline on SQLite NORMAL ${at('normal')} steps/s, direct ${at('direct')} processes/s`;
      console.log(`  pipelines ${line}`);
      rounds.push(line);
    }
    // The cached rerun: first a run that fills the cache, then the measured one that reuses all of it.
    await viaPipeline(full, true);
    const cachedRate = sizes.steps / (await viaPipeline(full, true));
    console.log(`  pipelines cached rerun: ${cachedRate.toFixed(1)} steps/s`);

    const ours = median(rates.pipeline);
    const backend = median(rates.backend);
    const direct = median(rates.direct);
    const label = `${sizes.steps}-step fan-out of \`true\`, ${sizes.parallelism} at a time`;
    const peerIs = 'the same processes spawned directly from Node';
    return {
      figures: [
        figure(`pipelines ${label}, local backend vs direct spawn`, 'steps/s', ours, direct, 'higher-is-better', {
          goal: { text: `≥ ${PIPELINE_GOAL_RATIO} of direct spawn`, met: ours / direct >= PIPELINE_GOAL_RATIO },
          peerIs,
        }),
        figure(
          `pipelines ${label}, the local backend alone vs direct spawn`,
          'jobs/s',
          backend,
          direct,
          'higher-is-better',
          {
            peerIs,
          },
        ),
        figure(
          `pipelines ${label}, orchestrator vs the local backend alone`,
          'steps/s',
          ours,
          backend,
          'higher-is-better',
          {
            peerIs: 'the same jobs submitted straight to the local backend',
          },
        ),
        figure(
          `pipelines ${label}, SQLite synchronous NORMAL vs direct spawn`,
          'steps/s',
          median(rates.normal),
          direct,
          'higher-is-better',
          { peerIs },
        ),
        figure(`pipelines ${label}, every step reused from the cache`, 'steps/s', cachedRate, null, 'higher-is-better'),
      ],
      rounds,
    };
  } finally {
    await full.stop();
    await normal.stop();
    await rm(root, { recursive: true, force: true });
  }
}

const BEGIN =
  '<!-- pipelines section: written by `BENCH_ONLY=pipelines pnpm bench` or a full run; the rest of the file stays -->';
const END = '<!-- end of pipelines section -->';

export interface PipelinesDocsInput {
  readonly results: PipelineResults;
  readonly machine: Machine;
  readonly startedAt: Date;
  readonly minutes: number;
  readonly sizes: PipelineSizes;
  readonly source: string;
  readonly table: (measured: readonly Measured[]) => string;
}

/** The pipelines section with its own run's date and machine, since it may be recorded apart from the others. */
export function renderPipelinesSection(input: PipelinesDocsInput): string {
  const { results, machine: m, sizes } = input;
  const judged = results.figures.filter((f) => f.goal);
  return `${BEGIN}
## 6. Pipeline overhead: a ${sizes.steps}-step fan-out vs spawning the processes directly

Recorded on ${input.startedAt.toISOString()} (${input.minutes.toFixed(1)} min), ${m.cpu}, ${m.cores} cores, Node ${m.node},
load average ${m.loadavg.start.join(', ')} at the start and ${m.loadavg.end.join(', ')} at the end; ${input.source}.
Reproduce with \`BENCH_ONLY=pipelines pnpm bench\` (no peers needed), which merges these figures into
bench/results/latest.json and rewrites only this section.

Ours: \`PipelineOrchestrator.run\` of a pipeline whose one step fans out over ${sizes.steps} items, each a job running
\`true\` on the local ComputeBackend of an embedded platform (SQLite metadata store with its default \`synchronous:
FULL\`, local artifact store, tracker lineage: a tracker run per pipeline run and per step), the backend given
${sizes.parallelism} CPU slots and each step asking for one, caching off. Everything a step costs is in the figure: its
step record, its tracker run, the job's record, process group and log capture, its status watch. Direct: the same
${sizes.steps} \`true\` processes spawned by Node's \`child_process.spawn\`, ${sizes.parallelism} alive at once.

Beside it, to show where the time goes: the same ${sizes.steps} jobs submitted straight to the local backend and
watched to their end, without the orchestrator (the backend's own cost per job: its job records, a \`/bin/sh\` wrapper
per replica that records the exit code, the log captured into the ArtifactStore); the orchestrator against that; and
the pipeline on a second embedded platform whose SQLite commits with \`synchronous: NORMAL\` (no fsync per commit in
WAL mode), since both the orchestrator and the backend commit several times per step. All contenders run in each of
${sizes.rounds} rounds, in an order rotated each round; the rates are medians. The cached rerun reuses all
${sizes.steps} steps (cache lookups, a tracker run per reused step), reported without a goal.

Where a step's time goes, counted from the SQL statements of such a fan-out and a \`--cpu-prof\` profile of it. The
backend writes a job's row three times (inserted, already \`Queued\` when it must wait; \`Running\` with its admission
and process record; its end with the replica's), four when a job inserted \`Pending\` then waits, and the writes of
jobs changing at the same time share one transaction; an attempt that printed nothing keeps no log object. The orchestrator adds per step its step records (batched per turn),
a tracker run created, logged and finished (three tracker transactions, with their outbox events), and the five
audit entries of those events, chained in shared transactions. On SQLite \`FULL\` each commit's fsync blocks the
event loop (better-sqlite3 is synchronous): in the profile about 45% of the process's time is SQLite writes and 20%
\`child_process.spawn\` (forking the platform's process, which the direct contender's spawns pay too), the rest
being the \`/bin/sh\` wrapper per replica (it keeps the exit code for a restarted platform), the spool files, the
tracker and audit work. The first record of this section (commit 89b18de) had 8 job writes per job, each its own
commit, five audit transactions per step and a log object per attempt: 9.26 steps/s against 96.3 (0.096), the backend
alone 19.6 jobs/s (0.203).

${judged.filter((f) => f.goal!.met).length} of ${judged.length} figures with a goal meet it (≥ ${PIPELINE_GOAL_RATIO} of the direct rate, the goal of issue 12).

${input.table(results.figures)}

Rates of every round, in order:

${results.rounds.map((r) => `- ${r}`).join('\n')}
${END}
`;
}

export function extractPipelinesSection(doc: string): string {
  const begin = doc.indexOf(BEGIN);
  const end = doc.indexOf(END);
  return begin === -1 || end === -1 ? '' : `${doc.slice(begin, end + END.length)}\n`;
}

/** Puts `section` in place of the doc's pipelines section, or at the end when it has none. */
export function splicePipelinesSection(doc: string, section: string): string {
  const begin = doc.indexOf(BEGIN);
  const end = doc.indexOf(END);
  if (begin !== -1 && end !== -1) return `${doc.slice(0, begin)}${section}${doc.slice(end + END.length + 1)}`;
  return section ? `${doc.trimEnd()}\n\n${section}` : doc;
}
