// The Iris training pipeline end to end on an embedded platform's local ComputeBackend: scikit-learn in a venv made
// by the example's own setup, the champion alias moved by the pipeline, and a rerun that reuses every cached step.
import { join } from 'node:path';
import { experimentTrackerRef, modelRegistryRef } from '@mlplane/core';
import { startTestPlatform, type TestPlatform } from '@mlplane/defaults/testing';
import { PipelineOrchestrator, type PipelineRunResult } from '@mlplane/pipelines';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureIrisVenv, IRIS_MODEL, runIrisPipeline } from '../src/iris-pipeline.js';

let platform: TestPlatform;
let orchestrator: PipelineOrchestrator;
let python: string;

beforeAll(async () => {
  python = await ensureIrisVenv();
  platform = await startTestPlatform({ config: { embedded: { compute: { cpu: 4 } } } });
  orchestrator = await PipelineOrchestrator.forPlatform(platform, { workspace: join(platform.dataDir, 'pipelines') });
}, 600_000);
afterAll(async () => {
  await platform?.stop();
});

const statuses = (r: PipelineRunResult) => Object.fromEntries(r.steps.map((s) => [s.stepId, s.status]));
const JOB_STEPS = ['ingest', 'features', 'train[0]', 'train[1]', 'train[2]', 'train[3]', 'evaluate'];

describe('the iris pipeline example', () => {
  let first: PipelineRunResult;

  it('trains, evaluates, registers the best model and makes it the champion', async () => {
    first = await runIrisPipeline(orchestrator, { python });
    expect(first.error).toBeUndefined();
    expect(first.status).toBe('Succeeded');
    expect(statuses(first)).toEqual({
      'champion-metric': 'Succeeded',
      evaluate: 'Succeeded',
      features: 'Succeeded',
      ingest: 'Succeeded',
      'register-model': 'Succeeded',
      'set-champion': 'Succeeded',
      train: 'Succeeded',
      'train[0]': 'Succeeded',
      'train[1]': 'Succeeded',
      'train[2]': 'Succeeded',
      'train[3]': 'Succeeded',
    });
    expect(first.outputs('ingest')?.rows).toBe(150);
    expect(first.outputs('features')?.trainRows).toBe(105);
    const evaluated = first.outputs('evaluate')!;
    expect(evaluated.accuracy).toBeGreaterThan(0.8);
    expect(evaluated.scores).toHaveLength(4);

    const registry = await platform.get(modelRegistryRef);
    const registered = first.outputs('register-model') as { name: string; version: number };
    const champion = await registry.getVersionByAlias(IRIS_MODEL, 'champion');
    expect(champion.version).toBe(registered.version);
    expect(Number(champion.tags.accuracy)).toBe(evaluated.accuracy);

    // The version's lineage leads to the training run of the chosen regularization strength.
    const lineage = await registry.getLineage(IRIS_MODEL, registered.version);
    const best = first.steps.find((s) => s.stepId === `train[${evaluated.bestIndex}]`)!;
    expect(lineage.runId).toBe(best.trackerRunId);
    const trainRun = await (await platform.get(experimentTrackerRef)).getRun(best.trackerRunId!);
    expect(Number(trainRun.data.params.c)).toBe([0.01, 0.1, 1, 10][evaluated.bestIndex as number]);
    expect(trainRun.data.metrics.trainAccuracy).toBeDefined();
  });

  it('reuses every cached step on a rerun, explains why, and leaves the champion alone', async () => {
    const again = await runIrisPipeline(orchestrator, { python });
    expect(again.status).toBe('Succeeded');
    const s = statuses(again);
    for (const id of [...JOB_STEPS, 'train', 'register-model']) expect(s[id], id).toBe('Cached');
    // Reading the champion is never cached (the alias moves between runs); it equals the new model, so no move.
    expect(s['champion-metric']).toBe('Succeeded');
    expect(s['set-champion']).toBe('Skipped');

    const why = await orchestrator.explainCache(again.runId);
    for (const id of [...JOB_STEPS, 'register-model']) {
      const e = why.find((x) => x.step === id)!;
      expect(e.decision, id).toBe('reused');
      expect(e.reusedFrom?.runId).toBe(first.runId);
      expect(e.reasons[0]).toContain(`same cache key as step '${id}' of run ${first.runId}`);
    }
    expect(why.find((x) => x.step === 'champion-metric')!.reasons).toEqual(['caching is off for this step']);
    expect(why.find((x) => x.step === 'set-champion')!.reasons[0]).toContain(
      'condition false: the new model is more accurate than the champion',
    );

    const registry = await platform.get(modelRegistryRef);
    const versions = await registry.searchVersions({ filter: `name = '${IRIS_MODEL}'` });
    expect(versions.items).toHaveLength(1);
    expect((await registry.getVersionByAlias(IRIS_MODEL, 'champion')).version).toBe(
      (first.outputs('register-model') as { version: number }).version,
    );
  });
});
