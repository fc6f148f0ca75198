import type { DatasetInput, ExperimentTracker, Logger, RunStatus } from '@mlplane/core';
import { ConflictError, DATASET_CONTEXT_TAG, NotFoundError, TRACKER_LIMITS } from '@mlplane/core';
import { isArtifactRef } from '../define/artifact.js';

/** Tags the orchestrator sets on tracker runs, so a run's place in a pipeline can be searched. */
export const LINEAGE_TAGS = Object.freeze({
  pipeline: 'mlplane.pipeline',
  pipelineRun: 'mlplane.pipeline.run_id',
  step: 'mlplane.pipeline.step',
  cacheKey: 'mlplane.pipeline.cache_key',
  reusedFrom: 'mlplane.pipeline.reused_from',
  /** Prefix of one tag per output: an artifact's URI and sha256, or a value's JSON. */
  output: 'mlplane.output.',
});

const clip = (text: string, max: number) => (text.length <= max ? text : `${text.slice(0, max - 3)}...`);

/**
 * Records pipeline runs in the ExperimentTracker: one run per pipeline run (experiment `pipelines/<name>`) and a
 * child run per step, with the step's input values as params, its artifact inputs as dataset inputs (digest =
 * sha256), numeric outputs as metrics and every output as a tag. Without a tracker it records nothing.
 */
export class Lineage {
  readonly #tracker: ExperimentTracker | undefined;
  readonly #log: Logger | undefined;
  readonly #experiments = new Map<string, Promise<string>>();

  constructor(tracker: ExperimentTracker | undefined, log: Logger | undefined) {
    this.#tracker = tracker;
    this.#log = log;
  }

  get enabled(): boolean {
    return this.#tracker !== undefined;
  }

  experimentOf(pipeline: string): Promise<string> {
    let id = this.#experiments.get(pipeline);
    if (!id) {
      id = this.#ensureExperiment(`pipelines/${pipeline}`);
      id.catch(() => this.#experiments.delete(pipeline));
      this.#experiments.set(pipeline, id);
    }
    return id;
  }

  async #ensureExperiment(name: string): Promise<string> {
    const tracker = this.#tracker!;
    try {
      return (await tracker.getExperimentByName(name)).id;
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
    try {
      return (await tracker.createExperiment({ name })).id;
    } catch (err) {
      // Another orchestrator created it meanwhile.
      if (err instanceof ConflictError) return (await tracker.getExperimentByName(name)).id;
      throw err;
    }
  }

  async startPipeline(
    pipeline: string,
    runId: string,
    params: Readonly<Record<string, unknown>>,
  ): Promise<string | undefined> {
    if (!this.#tracker) return undefined;
    const run = await this.#tracker.createRun({
      experimentId: await this.experimentOf(pipeline),
      name: `${pipeline}-${runId.slice(0, 8)}`,
      tags: { [LINEAGE_TAGS.pipeline]: pipeline, [LINEAGE_TAGS.pipelineRun]: runId },
    });
    const entries = Object.entries(params).slice(0, TRACKER_LIMITS.paramsPerBatch);
    if (entries.length > 0) {
      await this.#tracker.logBatch(run.info.id, {
        params: entries.map(([key, v]) => ({
          key,
          value: clip(JSON.stringify(v) ?? 'null', TRACKER_LIMITS.paramValueLength),
        })),
      });
    }
    return run.info.id;
  }

  async startStep(
    pipeline: string,
    runId: string,
    parentRunId: string | undefined,
    stepId: string,
    extraTags: Readonly<Record<string, string>> = {},
  ): Promise<string | undefined> {
    if (!this.#tracker) return undefined;
    const run = await this.#tracker.createRun({
      experimentId: await this.experimentOf(pipeline),
      name: stepId,
      ...(parentRunId ? { parentRunId } : {}),
      tags: {
        [LINEAGE_TAGS.pipeline]: pipeline,
        [LINEAGE_TAGS.pipelineRun]: runId,
        [LINEAGE_TAGS.step]: stepId,
        ...extraTags,
      },
    });
    return run.info.id;
  }

  /**
   * The unfinished tracker run of a step, made by an orchestrator that died before recording it (it creates the run,
   * submits the job, then writes both ids): a resumed run adopts it instead of leaving it RUNNING forever.
   */
  async findStepRun(pipeline: string, runId: string, stepId: string): Promise<string | undefined> {
    if (!this.#tracker) return undefined;
    const page = await this.#tracker.searchRuns({
      experimentIds: [await this.experimentOf(pipeline)],
      filter: `tags.\`${LINEAGE_TAGS.pipelineRun}\` = '${runId}' and tags.\`${LINEAGE_TAGS.step}\` = '${stepId.replace(/'/g, "''")}' and attributes.status = 'RUNNING'`,
      maxResults: 1,
    });
    return page.items[0]?.info.id;
  }

  /** Logs a finished step's inputs and outputs and ends its tracker run with `status`. */
  async finishStep(
    trackerRunId: string | undefined,
    inputs: Readonly<Record<string, unknown>>,
    outputs: Readonly<Record<string, unknown>> | undefined,
    status: RunStatus,
    tags: Readonly<Record<string, string>> = {},
  ): Promise<void> {
    const tracker = this.#tracker;
    if (!tracker || !trackerRunId) return;
    const datasets: DatasetInput[] = [];
    const params: { key: string; value: string }[] = [];
    for (const [name, value] of Object.entries(inputs)) {
      const refs =
        Array.isArray(value) && value.length > 0 && value.every(isArtifactRef)
          ? value
          : isArtifactRef(value)
            ? [value]
            : [];
      if (refs.length === 0) {
        params.push({ key: name, value: clip(JSON.stringify(value) ?? 'null', TRACKER_LIMITS.paramValueLength) });
        continue;
      }
      for (const [i, ref] of refs.entries()) {
        datasets.push({
          dataset: {
            name: refs.length > 1 ? `${name}[${i}]` : name,
            digest: ref.sha256.slice(0, TRACKER_LIMITS.datasetDigestLength),
            sourceType: 'mlplane-artifact',
            source: ref.uri,
          },
          tags: [{ key: DATASET_CONTEXT_TAG, value: 'input' }],
        });
      }
    }
    const metrics: { key: string; value: number }[] = [];
    const outputTags: { key: string; value: string }[] = Object.entries(tags).map(([key, value]) => ({ key, value }));
    for (const [name, value] of Object.entries(outputs ?? {})) {
      if (typeof value === 'number' && Number.isFinite(value)) metrics.push({ key: name, value });
      const text = isArtifactRef(value) ? `${value.uri} sha256:${value.sha256}` : (JSON.stringify(value) ?? 'null');
      outputTags.push({ key: `${LINEAGE_TAGS.output}${name}`, value: clip(text, TRACKER_LIMITS.runTagValueLength) });
    }
    const batch = {
      params: params.slice(0, TRACKER_LIMITS.paramsPerBatch),
      metrics: metrics.slice(0, 400),
      tags: outputTags.slice(0, TRACKER_LIMITS.tagsPerBatch),
    };
    try {
      if (batch.params.length + batch.metrics.length + batch.tags.length > 0)
        await tracker.logBatch(trackerRunId, batch);
      if (datasets.length > 0 && tracker.capabilities.datasetInputs) {
        await tracker.logInputs(trackerRunId, datasets.slice(0, TRACKER_LIMITS.datasetsPerBatch));
      }
    } catch (err) {
      // A resumed step may log what its first try logged already: params are immutable, so equal ones conflict.
      if (!(err instanceof ConflictError)) throw err;
      this.#log?.debug({ err, trackerRunId }, 'step lineage was logged before');
    }
    await tracker.updateRun({ runId: trackerRunId, status, endTime: new Date() });
  }

  async finishPipeline(trackerRunId: string | undefined, status: RunStatus): Promise<void> {
    if (!this.#tracker || !trackerRunId) return;
    await this.#tracker.updateRun({ runId: trackerRunId, status, endTime: new Date() });
  }
}
