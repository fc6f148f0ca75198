// Figure 6 (issue 12): pipeline overhead. A 200-step fan-out of `true` run by the orchestrator on the local
// ComputeBackend (embedded platform: SQLite, local artifact store, tracker lineage on) against spawning the same 200
// processes directly from Node, with the same parallelism: the backend gets that many CPU slots and each step asks for
// one, the direct runner keeps that many children alive at once. Rounds alternate which contender goes first; the
// rates are medians over the rounds. Caching is off for the measured step (otherwise every round after the first would
// reuse the first's results); a fully cached rerun of the same fan-out is reported beside it, without a goal.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

export async function pipelinesBench(sizes: PipelineSizes): Promise<PipelineResults> {
  const root = await mkdtemp(join(tmpdir(), 'mlplane-bench-pipelines-'));
  const platform = createPlatform({
    plugins: [],
    config: {
      platform: { signals: [] },
      embedded: {
        dataDir: join(root, 'data'),
        secrets: { masterKey: randomBytes(32).toString('base64') },
        compute: { cpu: sizes.parallelism, killGraceMs: 1_000 },
      },
    },
    log: { level: 'silent' },
  });
  await platform.start();
  try {
    const orchestrator = await PipelineOrchestrator.forPlatform(platform, { workspace: join(root, 'workspace') });
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
    const viaPipeline = async (cache: boolean) => {
      const started = performance.now();
      const result = await orchestrator.run(fanOut(cache), { items }, { maxParallel: sizes.steps });
      if (result.status !== 'Succeeded') throw new Error(`the bench pipeline ended ${result.status}: ${result.error}`);
      return (performance.now() - started) / 1000;
    };
    // One warm-up of each: the first job start compiles and caches what the rest reuse.
    await viaPipeline(false);
    await spawnDirectly(sizes.parallelism, sizes.parallelism);

    const rates = { pipeline: [] as number[], direct: [] as number[] };
    const rounds: string[] = [];
    for (let r = 0; r < sizes.rounds; r++) {
      const contenders = rotated(
        [
          ['pipeline', () => viaPipeline(false)],
          ['direct', () => spawnDirectly(sizes.steps, sizes.parallelism)],
        ] as const,
        r,
      );
      for (const [who, run] of contenders) rates[who].push(sizes.steps / (await run()));
      const line = `round ${r + 1}/${sizes.rounds}: pipeline ${rates.pipeline.at(-1)!.toFixed(1)} steps/s, direct ${rates.direct.at(-1)!.toFixed(1)} processes/s`;
      console.log(`  pipelines ${line}`);
      rounds.push(line);
    }
    // The cached rerun: first a run that fills the cache, then the measured one that reuses all of it.
    await viaPipeline(true);
    const cachedRate = sizes.steps / (await viaPipeline(true));
    console.log(`  pipelines cached rerun: ${cachedRate.toFixed(1)} steps/s`);

    const ours = median(rates.pipeline);
    const direct = median(rates.direct);
    const label = `${sizes.steps}-step fan-out of \`true\`, ${sizes.parallelism} at a time`;
    return {
      figures: [
        figure(`pipelines ${label}, local backend vs direct spawn`, 'steps/s', ours, direct, 'higher-is-better', {
          goal: { text: `≥ ${PIPELINE_GOAL_RATIO} of direct spawn`, met: ours / direct >= PIPELINE_GOAL_RATIO },
          peerIs: 'the same processes spawned directly from Node',
        }),
        figure(`pipelines ${label}, every step reused from the cache`, 'steps/s', cachedRate, null, 'higher-is-better'),
      ],
      rounds,
    };
  } finally {
    await platform.stop();
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
\`true\` on the local ComputeBackend of an embedded platform (SQLite metadata store with \`synchronous: FULL\`, local
artifact store, tracker lineage: a tracker run per pipeline run and per step), the backend given ${sizes.parallelism} CPU
slots and each step asking for one, caching off. Everything a step costs is in the figure: its step record, its tracker
run, the job's record, process group and log capture, its status watch. Direct: the same ${sizes.steps} \`true\`
processes spawned by Node's \`child_process.spawn\`, ${sizes.parallelism} alive at once. Rates are medians over
${sizes.rounds} rounds whose order alternates. The cached rerun reuses all ${sizes.steps} steps (cache lookups, a tracker
run per reused step), reported without a goal.

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
