import { ConflictError, unlessNotFound, ValidationError } from '@mlplane/core';
import { z } from 'zod';
import { artifact } from './artifact.js';
import { type ActionContext, type ActionStepDefinition, action } from './step.js';

/** The version tag naming the pipeline step that registered a version: a resumed registration finds it. */
export const REGISTERED_BY_TAG = 'mlplane_pipeline_step';

function registryOf(ctx: ActionContext, step: string) {
  if (!ctx.registry) {
    throw new ValidationError(`step '${step}' needs a ModelRegistry: give the orchestrator one`, { field: 'registry' });
  }
  return ctx.registry;
}

const registerInputs = { model: artifact(), metric: z.number() };
const registerOutputs = { name: z.string(), version: z.number().int().positive() };

/**
 * A step registering its `model` input (an artifact) as a new version of model `model`, with the tracker run of the
 * step that produced the artifact as the version's run (so `getLineage` leads to the training run, its params,
 * metrics and dataset inputs), and `metric` as the version tag `metricName`. Cached like any step: the same
 * artifact and metric reuse the version registered before instead of adding one.
 */
export function registerModel(options: {
  readonly model: string;
  readonly metricName: string;
  readonly name?: string;
  readonly description?: string;
}): ActionStepDefinition<typeof registerInputs, typeof registerOutputs> {
  const stepName = options.name ?? 'register-model';
  return action({
    name: stepName,
    version: '1',
    inputs: registerInputs,
    outputs: registerOutputs,
    run: async ({ model, metric }, ctx) => {
      const registry = registryOf(ctx, stepName);
      if (!(await unlessNotFound(registry.getModel(options.model)))) {
        await registry.createModel({ name: options.model }).catch((err) => {
          if (!(err instanceof ConflictError)) throw err;
        });
      }
      // A registration interrupted by a crash may have happened: find it by the step's idempotency key.
      const earlier = await registry.searchVersions({
        filter: `name = '${options.model.replace(/'/g, "''")}' and tags.${REGISTERED_BY_TAG} = '${ctx.idempotencyKey}'`,
        maxResults: 1,
      });
      const found = earlier.items[0];
      if (found) return { name: found.name, version: found.version };
      const runId = ctx.producerRunOf(model);
      const version = await registry.createVersion({
        name: options.model,
        source: model.uri,
        ...(runId ? { runId } : {}),
        ...(options.description ? { description: options.description } : {}),
        tags: {
          [REGISTERED_BY_TAG]: ctx.idempotencyKey,
          [options.metricName]: String(metric),
          'mlplane.artifact.sha256': model.sha256,
        },
      });
      return { name: version.name, version: version.version };
    },
  });
}

const aliasMetricOutputs = { value: z.number().nullable(), version: z.number().int().nullable() };

/**
 * A step reading the version tag `metricName` of the version alias `alias` of model `model` points at: `value`
 * null when the alias or the tag does not exist. Never cached: the alias moves between runs.
 */
export function aliasMetric(options: {
  readonly model: string;
  readonly alias: string;
  readonly metricName: string;
  readonly name?: string;
}): ActionStepDefinition<{}, typeof aliasMetricOutputs> {
  const stepName = options.name ?? `${options.alias}-metric`;
  return action({
    name: stepName,
    version: '1',
    outputs: aliasMetricOutputs,
    cache: false,
    run: async (_inputs, ctx) => {
      const registry = registryOf(ctx, stepName);
      const current = await unlessNotFound(registry.getVersionByAlias(options.model, options.alias));
      const tag = current?.tags[options.metricName];
      const value = tag === undefined ? Number.NaN : Number(tag);
      return { value: Number.isFinite(value) ? value : null, version: current?.version ?? null };
    },
  });
}

const setAliasInputs = { version: z.number().int().positive() };
const setAliasOutputs = { previous: z.number().int().nullable() };

/** A step pointing alias `alias` of model `model` at its `version` input. Never cached: it acts on the registry. */
export function setAlias(options: {
  readonly model: string;
  readonly alias: string;
  readonly name?: string;
}): ActionStepDefinition<typeof setAliasInputs, typeof setAliasOutputs> {
  const stepName = options.name ?? `set-${options.alias}`;
  return action({
    name: stepName,
    version: '1',
    inputs: setAliasInputs,
    outputs: setAliasOutputs,
    cache: false,
    run: async ({ version }, ctx) => {
      const registry = registryOf(ctx, stepName);
      const previous = await unlessNotFound(registry.getVersionByAlias(options.model, options.alias));
      await registry.setAlias({
        name: options.model,
        alias: options.alias,
        version,
        reason: `pipeline run ${ctx.pipelineRunId}`,
      });
      return { previous: previous?.version ?? null };
    },
  });
}
