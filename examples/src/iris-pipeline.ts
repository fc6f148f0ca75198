// A training pipeline on the Iris dataset shipped in examples/iris-pipeline/data: ingest, features, train (a fan-out
// over regularization strengths, scikit-learn in a venv this file sets up), evaluate (the fan-in), register the best
// model, and move the `champion` alias to it when it beats the current champion.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  aliasMetric,
  artifact,
  type PipelineOrchestrator,
  type PipelineRunResult,
  pipeline,
  registerModel,
  setAlias,
  step,
  when,
} from '@mlplane/pipelines';
import { z } from 'zod';

const run = promisify(execFile);

/** examples/iris-pipeline: the dataset, the Python steps and their requirements (found from src/ or dist/src/). */
export const IRIS_ASSETS = findAssets(dirname(fileURLToPath(import.meta.url)));

function findAssets(from: string): string {
  for (let dir = from; dir !== dirname(dir); dir = dirname(dir)) {
    const candidate = join(dir, 'iris-pipeline');
    if (existsSync(join(candidate, 'requirements.txt'))) return candidate;
  }
  throw new Error(`examples/iris-pipeline not found above ${from}`);
}

/**
 * The Python the steps run with: a venv outside the repository (MLPLANE_EXAMPLES_CACHE, default
 * ~/.cache/mlplane/examples) with requirements.txt installed by pip, made once and remade when the requirements
 * change.
 */
export async function ensureIrisVenv(): Promise<string> {
  const cache = process.env.MLPLANE_EXAMPLES_CACHE ?? join(homedir(), '.cache', 'mlplane', 'examples');
  const venv = join(cache, 'iris-pipeline-venv');
  const python = join(venv, 'bin', 'python');
  const requirements = join(IRIS_ASSETS, 'requirements.txt');
  const wanted = createHash('sha256')
    .update(await readFile(requirements))
    .digest('hex');
  const marker = join(venv, '.mlplane-requirements');
  if ((await readFile(marker, 'utf8').catch(() => '')) === wanted && existsSync(python)) return python;
  await rm(venv, { recursive: true, force: true });
  await mkdir(cache, { recursive: true });
  await run(process.env.MLPLANE_PYTHON ?? 'python3', ['-m', 'venv', venv]);
  await run(python, ['-m', 'pip', 'install', '--quiet', '-r', requirements], { maxBuffer: 16 * 2 ** 20 });
  await writeFile(marker, wanted);
  return python;
}

/** A step's code version: the hash of its script and the helper it imports, so editing either invalidates the cache. */
async function scriptVersion(script: string): Promise<string> {
  const hash = createHash('sha256');
  for (const file of [script, 'step_io.py']) hash.update(await readFile(join(IRIS_ASSETS, 'steps', file)));
  return hash.digest('hex').slice(0, 16);
}

export const IRIS_MODEL = 'iris-classifier';

/** Builds the pipeline for the venv's Python. */
export async function irisPipeline(python: string) {
  const script = (name: string) => ({ command: [python, join(IRIS_ASSETS, 'steps', name)] });

  const ingest = step({
    name: 'ingest',
    version: await scriptVersion('ingest.py'),
    inputs: { raw: artifact() },
    outputs: { dataset: artifact(), rows: z.number().int().positive() },
    job: script('ingest.py'),
  });
  const features = step({
    name: 'features',
    version: await scriptVersion('features.py'),
    inputs: { dataset: artifact(), testFraction: z.number().gt(0).lt(1), seed: z.number().int() },
    outputs: { train: artifact(), test: artifact(), trainRows: z.number().int() },
    job: script('features.py'),
  });
  const train = step({
    name: 'train',
    version: await scriptVersion('train.py'),
    inputs: { train: artifact(), c: z.number().positive() },
    outputs: { model: artifact(), trainAccuracy: z.number().min(0).max(1) },
    job: script('train.py'),
    retry: { retries: 1, minDelayMs: 500 },
    timeoutSeconds: 300,
  });
  const evaluate = step({
    name: 'evaluate',
    version: await scriptVersion('evaluate.py'),
    inputs: { models: z.array(artifact()), test: artifact() },
    outputs: {
      best: artifact(),
      accuracy: z.number().min(0).max(1),
      scores: z.array(z.number()),
      bestIndex: z.number().int(),
    },
    job: script('evaluate.py'),
  });

  return pipeline(
    {
      name: 'iris',
      description: 'Iris species classifier: the best of a few regularization strengths becomes the champion',
      params: {
        raw: artifact(),
        cs: z.array(z.number().positive()).min(1),
        seed: z.number().int(),
        testFraction: z.number(),
      },
    },
    (p) => {
      const data = p.step(ingest, { raw: p.params.raw });
      const split = p.step(features, {
        dataset: data.dataset,
        testFraction: p.params.testFraction,
        seed: p.params.seed,
      });
      const models = p.map(train, p.params.cs, (c) => ({ train: split.train, c }));
      const scored = p.step(evaluate, { models: models.model, test: split.test });
      const champion = p.step(aliasMetric({ model: IRIS_MODEL, alias: 'champion', metricName: 'accuracy' }), {});
      const registered = p.step(registerModel({ model: IRIS_MODEL, metricName: 'accuracy' }), {
        model: scored.best,
        metric: scored.accuracy,
      });
      p.step(
        setAlias({ model: IRIS_MODEL, alias: 'champion' }),
        { version: registered.version },
        {
          when: when(
            { accuracy: scored.accuracy, champion: champion.value },
            ({ accuracy, champion }) => champion === null || accuracy > champion,
            'the new model is more accurate than the champion (or there is none)',
          ),
        },
      );
    },
  );
}

/** Runs the pipeline on the shipped dataset. */
export async function runIrisPipeline(
  orchestrator: PipelineOrchestrator,
  options: { readonly python: string; readonly cs?: readonly number[] },
): Promise<PipelineRunResult> {
  const raw = await orchestrator.importArtifact(join(IRIS_ASSETS, 'data', 'iris.csv'));
  return orchestrator.run(await irisPipeline(options.python), {
    raw,
    cs: [...(options.cs ?? [0.01, 0.1, 1, 10])],
    seed: 7,
    testFraction: 0.3,
  });
}
