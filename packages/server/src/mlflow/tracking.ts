import {
  type Experiment,
  type Metric,
  NotFoundError,
  type Run,
  type RunStatus,
  TRACKER_LIMITS,
  ValidationError,
} from '@mlplane/core';
import { z } from 'zod';
import { PROJECT_TAG } from '../http/projects.js';
import { inProject } from '../routes/experiments.js';
import { assertWritableTag, refuseReservedTags } from '../routes/wire.js';
import { MLFLOW_ARTIFACTS_SCHEME } from './artifact-uris.js';
import { DEFAULT_EXPERIMENT_ID, defaultExperimentName, type MlflowContext, mlflowRoute } from './context.js';
import {
  double,
  experimentWire,
  int64,
  keyValue,
  maxResults,
  metricWire,
  RUN_NAME_TAG,
  repeated,
  runInfoWire,
  runWire,
  tagRecord,
  viewType,
} from './wire.js';

const RUN_STATUSES = ['RUNNING', 'SCHEDULED', 'FINISHED', 'FAILED', 'KILLED'] as const;
/** MLflow's RunStatus enum numbers, which proto3 JSON also allows. */
const runStatus = z
  .union([z.enum(RUN_STATUSES), z.number().int().min(1).max(5)])
  .transform((s): RunStatus => (typeof s === 'number' ? RUN_STATUSES[s - 1]! : s));

/** Requests name a run as `run_id`, or as `run_uuid` (MLflow's older field, still sent by its client). */
const runRef = { run_id: z.string().optional(), run_uuid: z.string().optional() };
function runIdOf(input: { run_id?: string | undefined; run_uuid?: string | undefined }): string {
  const id = input.run_id || input.run_uuid;
  if (!id) throw new ValidationError("Missing value for required parameter 'run_id'", { field: 'run_id' });
  return id;
}
/** MLflow's experiment ids are integers (its message for another id says so). */
const experimentId = z.string().regex(/^\d{1,16}$/, { error: 'Experiment ID must be a valid integer' });
const experimentRef = z.object({ experiment_id: experimentId });

export async function renderExperiment(ctx: MlflowContext, e: Experiment) {
  return experimentWire(e, ctx.uris.experimentLocation(e.id, e.artifactLocation));
}

export async function renderRun(ctx: MlflowContext, run: Run) {
  return runWire(run, await ctx.uris.runArtifactUri(run.info));
}

/** The experiment's real id (`0` is the project's default experiment), checked to be in the project. */
async function experimentIn(ctx: MlflowContext, experimentId: string): Promise<string> {
  const id = await ctx.defaults.resolve(ctx.project, experimentId);
  await ctx.services.projects.experiment(ctx.project, id);
  return id;
}

async function runIn(ctx: MlflowContext, runId: string): Promise<string> {
  await ctx.services.projects.run(ctx.project, runId);
  return runId;
}

/** Checks MLflow's log-batch limits with its wording, before anything is written. */
function checkBatchCounts(metrics: number, params: number, tags: number): void {
  const over = (what: string, n: number, max: number) => {
    throw new ValidationError(
      `A batch logging request can contain at most ${max} ${what}. Got ${n} ${what}. Please split up ${what} across multiple requests and try again.`,
      { field: what },
    );
  };
  if (metrics > TRACKER_LIMITS.metricsPerBatch) over('metrics', metrics, TRACKER_LIMITS.metricsPerBatch);
  if (params > TRACKER_LIMITS.paramsPerBatch) over('params', params, TRACKER_LIMITS.paramsPerBatch);
  if (tags > TRACKER_LIMITS.tagsPerBatch) over('tags', tags, TRACKER_LIMITS.tagsPerBatch);
  const total = metrics + params + tags;
  if (total > TRACKER_LIMITS.entitiesPerBatch) {
    throw new ValidationError(
      `A batch logging request can contain at most ${TRACKER_LIMITS.entitiesPerBatch} metrics, params, and tags in total. Got ${total}. Please split up the request.`,
      { field: 'metrics' },
    );
  }
}

/**
 * Run tags as the tracker stores them: `mlflow.runName` is the run's name (MLflow keeps both in step), so it is
 * split off and applied as the name; `mlplane.*` tags are refused.
 */
function splitRunTags(tags: readonly { key: string; value: string }[] | undefined): {
  tags: { key: string; value: string }[];
  name: string | undefined;
} {
  let name: string | undefined;
  const rest: { key: string; value: string }[] = [];
  for (const tag of tags ?? []) {
    assertWritableTag(tag.key, 'tags');
    if (tag.key === RUN_NAME_TAG) name = tag.value;
    else rest.push(tag);
  }
  return { tags: rest, name };
}

const metricInput = z.object({
  key: z.string(),
  value: double,
  timestamp: int64.optional(),
  step: int64.optional(),
});

export const trackingRoutes = [
  mlflowRoute({
    method: 'POST',
    path: '/experiments/create',
    operation: 'experimentTracker.createExperiment',
    conflict: 'RESOURCE_ALREADY_EXISTS',
    input: z.object({
      name: z.string(),
      artifact_location: z.string().optional(),
      tags: repeated(keyValue).optional(),
    }),
    async handle(ctx, input) {
      const tags = tagRecord(input.tags);
      refuseReservedTags(tags);
      let artifactLocation = input.artifact_location?.trim() ? input.artifact_location : undefined;
      // `mlflow-artifacts:/<key>` names a place below the proxied root, which is the artifact store itself.
      if (artifactLocation?.startsWith(MLFLOW_ARTIFACTS_SCHEME)) {
        const key = artifactLocation
          .slice(MLFLOW_ARTIFACTS_SCHEME.length)
          .replace(/^\/\/[^/]*/, '')
          .replace(/^\/+|\/+$/g, '');
        artifactLocation = ctx.uris.storeUri(key);
      }
      const experiment = await ctx.services.tracker.createExperiment({
        name: input.name,
        ...(artifactLocation ? { artifactLocation } : {}),
        tags: { ...tags, [PROJECT_TAG]: ctx.project },
      });
      ctx.services.projects.remember('experiment', experiment.id, ctx.project);
      ctx.uris.remember(experiment.id, experiment.artifactLocation);
      return { experiment_id: experiment.id };
    },
  }),
  mlflowRoute({
    method: 'GET',
    path: '/experiments/get',
    operation: 'experimentTracker.getExperiment',
    input: experimentRef,
    async handle(ctx, input) {
      const id = await experimentIn(ctx, input.experiment_id);
      return { experiment: await renderExperiment(ctx, await ctx.services.tracker.getExperiment(id)) };
    },
  }),
  mlflowRoute({
    method: 'GET',
    path: '/experiments/get-by-name',
    operation: 'experimentTracker.getExperimentByName',
    input: z.object({ experiment_name: z.string().min(1) }),
    async handle(ctx, input) {
      if (input.experiment_name === defaultExperimentName(ctx.project)) await ctx.defaults.idOf(ctx.project);
      const experiment = await ctx.services.tracker.getExperimentByName(input.experiment_name);
      await ctx.services.projects.experiment(ctx.project, experiment.id).catch((err) => {
        // Names are unique platform-wide; another project's experiment is, to this caller, not there.
        if (err instanceof NotFoundError) {
          throw new NotFoundError(
            `experiment named '${input.experiment_name}' does not exist in project '${ctx.project}'`,
          );
        }
        throw err;
      });
      return { experiment: await renderExperiment(ctx, experiment) };
    },
  }),
  ...(['POST', 'GET'] as const).map((method) =>
    mlflowRoute({
      method,
      path: '/experiments/search',
      operation: 'experimentTracker.searchExperiments',
      input: z.object({
        max_results: maxResults.optional(),
        page_token: z.string().optional(),
        filter: z.string().optional(),
        order_by: repeated(z.string()).optional(),
        view_type: viewType.optional(),
      }),
      async handle(ctx, input) {
        const page = await ctx.services.tracker.searchExperiments({
          filter: inProject(ctx.project, input.filter),
          ...(input.order_by?.length ? { orderBy: input.order_by } : {}),
          ...(input.view_type ? { viewType: input.view_type } : {}),
          ...(input.max_results ? { maxResults: input.max_results } : {}),
          ...(input.page_token ? { pageToken: input.page_token } : {}),
        });
        const experiments = await Promise.all(page.items.map((e) => renderExperiment(ctx, e)));
        return {
          ...(experiments.length > 0 ? { experiments } : {}),
          ...(page.nextPageToken ? { next_page_token: page.nextPageToken } : {}),
        };
      },
    }),
  ),
  mlflowRoute({
    method: 'POST',
    path: '/experiments/update',
    operation: 'experimentTracker.updateExperiment',
    conflict: 'RESOURCE_ALREADY_EXISTS',
    input: z.object({ experiment_id: experimentId, new_name: z.string() }),
    async handle(ctx, input) {
      const id = await experimentIn(ctx, input.experiment_id);
      await ctx.services.tracker.updateExperiment(id, { name: input.new_name });
      ctx.defaults.forget(id);
      return {};
    },
  }),
  mlflowRoute({
    method: 'POST',
    path: '/experiments/delete',
    operation: 'experimentTracker.deleteExperiment',
    input: experimentRef,
    async handle(ctx, input) {
      await ctx.services.tracker.deleteExperiment(await experimentIn(ctx, input.experiment_id));
      return {};
    },
  }),
  mlflowRoute({
    method: 'POST',
    path: '/experiments/restore',
    operation: 'experimentTracker.restoreExperiment',
    input: experimentRef,
    async handle(ctx, input) {
      await ctx.services.tracker.restoreExperiment(await experimentIn(ctx, input.experiment_id));
      return {};
    },
  }),
  mlflowRoute({
    method: 'POST',
    path: '/experiments/set-experiment-tag',
    operation: 'experimentTracker.setExperimentTag',
    input: z.object({ experiment_id: experimentId, key: z.string(), value: z.string() }),
    async handle(ctx, input) {
      assertWritableTag(input.key);
      const id = await experimentIn(ctx, input.experiment_id);
      await ctx.services.tracker.setExperimentTag(id, input.key, input.value);
      return {};
    },
  }),

  mlflowRoute({
    method: 'POST',
    path: '/runs/create',
    operation: 'experimentTracker.createRun',
    input: z.object({
      experiment_id: z.union([experimentId, z.literal('')]).optional(),
      user_id: z.string().optional(),
      start_time: int64.optional(),
      tags: repeated(keyValue).optional(),
      run_name: z.string().optional(),
    }),
    async handle(ctx, input) {
      const experimentId = await experimentIn(ctx, input.experiment_id || DEFAULT_EXPERIMENT_ID);
      const { tags, name: tagName } = splitRunTags(input.tags);
      const record = tagRecord(tags);
      const parentRunId = record['mlflow.parentRunId'];
      if (parentRunId) await runIn(ctx, parentRunId);
      const name = input.run_name || tagName;
      const run = await ctx.services.tracker.createRun({
        experimentId,
        ...(name ? { name } : {}),
        ...(input.start_time !== undefined ? { startTime: new Date(input.start_time) } : {}),
        tags: record,
        // The authenticated caller, not the client's local user name, is who ran it.
        userId: ctx.actor,
      });
      ctx.services.projects.rememberRun(run.info.id, run.info.experimentId);
      return { run: await renderRun(ctx, run) };
    },
  }),
  mlflowRoute({
    method: 'GET',
    path: '/runs/get',
    operation: 'experimentTracker.getRun',
    input: z.object(runRef),
    async handle(ctx, input) {
      const runId = await runIn(ctx, runIdOf(input));
      return { run: await renderRun(ctx, await ctx.services.tracker.getRun(runId)) };
    },
  }),
  mlflowRoute({
    method: 'POST',
    path: '/runs/update',
    operation: 'experimentTracker.updateRun',
    input: z.object({
      ...runRef,
      status: runStatus.optional(),
      end_time: int64.optional(),
      run_name: z.string().optional(),
    }),
    async handle(ctx, input) {
      const runId = await runIn(ctx, runIdOf(input));
      const info = await ctx.services.tracker.updateRun({
        runId,
        ...(input.status ? { status: input.status } : {}),
        ...(input.end_time !== undefined ? { endTime: new Date(input.end_time) } : {}),
        ...(input.run_name ? { name: input.run_name } : {}),
      });
      return { run_info: runInfoWire(info, await ctx.uris.runArtifactUri(info)) };
    },
  }),
  mlflowRoute({
    method: 'POST',
    path: '/runs/delete',
    operation: 'experimentTracker.deleteRun',
    input: z.object({ run_id: z.string().min(1) }),
    async handle(ctx, input) {
      await ctx.services.tracker.deleteRun(await runIn(ctx, input.run_id));
      return {};
    },
  }),
  mlflowRoute({
    method: 'POST',
    path: '/runs/restore',
    operation: 'experimentTracker.restoreRun',
    input: z.object({ run_id: z.string().min(1) }),
    async handle(ctx, input) {
      await ctx.services.tracker.restoreRun(await runIn(ctx, input.run_id));
      return {};
    },
  }),
  mlflowRoute({
    method: 'POST',
    path: '/runs/log-metric',
    operation: 'experimentTracker.logMetric',
    input: z.object({ ...runRef, ...metricInput.shape }),
    async handle(ctx, input) {
      const runId = await runIn(ctx, runIdOf(input));
      await ctx.services.tracker.logMetric(runId, {
        key: input.key,
        value: input.value,
        timestamp: input.timestamp ?? Date.now(),
        step: input.step ?? 0,
      });
      return {};
    },
  }),
  mlflowRoute({
    method: 'POST',
    path: '/runs/log-parameter',
    operation: 'experimentTracker.logParam',
    input: z.object({ ...runRef, key: z.string(), value: z.string() }),
    async handle(ctx, input) {
      const runId = await runIn(ctx, runIdOf(input));
      await ctx.services.tracker.logParam(runId, { key: input.key, value: input.value });
      return {};
    },
  }),
  mlflowRoute({
    method: 'POST',
    path: '/runs/set-tag',
    operation: 'experimentTracker.setTag',
    input: z.object({ ...runRef, key: z.string(), value: z.string() }),
    async handle(ctx, input) {
      assertWritableTag(input.key);
      const runId = await runIn(ctx, runIdOf(input));
      if (input.key === RUN_NAME_TAG) await ctx.services.tracker.updateRun({ runId, name: input.value });
      else await ctx.services.tracker.setTag(runId, { key: input.key, value: input.value });
      return {};
    },
  }),
  mlflowRoute({
    method: 'POST',
    path: '/runs/delete-tag',
    operation: 'experimentTracker.deleteTag',
    input: z.object({ run_id: z.string().min(1), key: z.string() }),
    async handle(ctx, input) {
      assertWritableTag(input.key);
      await ctx.services.tracker.deleteTag(await runIn(ctx, input.run_id), input.key);
      return {};
    },
  }),
  mlflowRoute({
    method: 'POST',
    path: '/runs/log-batch',
    operation: 'experimentTracker.logBatch',
    input: z.object({
      run_id: z.string().optional(),
      metrics: repeated(metricInput).optional(),
      params: repeated(keyValue).optional(),
      tags: repeated(keyValue).optional(),
    }),
    async handle(ctx, input) {
      const metrics = input.metrics ?? [];
      const params = input.params ?? [];
      checkBatchCounts(metrics.length, params.length, input.tags?.length ?? 0);
      const runId = await runIn(ctx, runIdOf(input));
      const { tags, name } = splitRunTags(input.tags);
      const now = Date.now();
      await ctx.services.tracker.logBatch(runId, {
        metrics: metrics.map((m) => ({ key: m.key, value: m.value, timestamp: m.timestamp ?? now, step: m.step ?? 0 })),
        params,
        tags,
      });
      if (name !== undefined) await ctx.services.tracker.updateRun({ runId, name });
      return {};
    },
  }),
  mlflowRoute({
    method: 'POST',
    path: '/runs/log-inputs',
    operation: 'experimentTracker.logInputs',
    input: z.object({
      run_id: z.string().min(1),
      datasets: repeated(
        z.object({
          tags: repeated(keyValue).optional(),
          dataset: z.object({
            name: z.string(),
            digest: z.string(),
            source_type: z.string(),
            source: z.string(),
            schema: z.string().optional(),
            profile: z.string().optional(),
          }),
        }),
      ).optional(),
    }),
    async handle(ctx, input) {
      const runId = await runIn(ctx, input.run_id);
      const datasets = input.datasets ?? [];
      if (datasets.length === 0) return {};
      await ctx.services.tracker.logInputs(
        runId,
        datasets.map((d) => ({
          dataset: {
            name: d.dataset.name,
            digest: d.dataset.digest,
            sourceType: d.dataset.source_type,
            source: d.dataset.source,
            ...(d.dataset.schema ? { schema: d.dataset.schema } : {}),
            ...(d.dataset.profile ? { profile: d.dataset.profile } : {}),
          },
          tags: d.tags ?? [],
        })),
      );
      return {};
    },
  }),
  mlflowRoute({
    method: 'POST',
    path: '/runs/search',
    operation: 'experimentTracker.searchRuns',
    input: z.object({
      experiment_ids: repeated(experimentId).optional(),
      filter: z.string().optional(),
      run_view_type: viewType.optional(),
      max_results: maxResults.optional(),
      order_by: repeated(z.string()).optional(),
      page_token: z.string().optional(),
    }),
    async handle(ctx, input) {
      // As MLflow, experiments that do not exist (here: not in the project) contribute no runs rather than an error.
      const found = await Promise.all(
        (input.experiment_ids ?? []).map((id) =>
          experimentIn(ctx, id).catch((err) => {
            if (err instanceof NotFoundError) return undefined;
            throw err;
          }),
        ),
      );
      const experimentIds = found.filter((id): id is string => id !== undefined);
      if (experimentIds.length === 0) return {};
      const page = await ctx.services.tracker.searchRuns({
        experimentIds,
        ...(input.filter?.trim() ? { filter: input.filter } : {}),
        ...(input.order_by?.length ? { orderBy: input.order_by } : {}),
        ...(input.run_view_type ? { runViewType: input.run_view_type } : {}),
        ...(input.max_results ? { maxResults: input.max_results } : {}),
        ...(input.page_token ? { pageToken: input.page_token } : {}),
      });
      const runs = await Promise.all(page.items.map((run) => renderRun(ctx, run)));
      return {
        ...(runs.length > 0 ? { runs } : {}),
        ...(page.nextPageToken ? { next_page_token: page.nextPageToken } : {}),
      };
    },
  }),
  mlflowRoute({
    method: 'GET',
    path: '/metrics/get-history',
    operation: 'experimentTracker.getMetricHistory',
    input: z.object({
      ...runRef,
      metric_key: z.string().min(1),
      max_results: maxResults.optional(),
      page_token: z.string().optional(),
    }),
    async handle(ctx, input) {
      const runId = await runIn(ctx, runIdOf(input));
      const { tracker } = ctx.services;
      if (input.max_results !== undefined || input.page_token) {
        const page = await tracker.getMetricHistory(runId, input.metric_key, {
          ...(input.max_results !== undefined ? { maxResults: input.max_results } : {}),
          ...(input.page_token ? { pageToken: input.page_token } : {}),
        });
        return {
          ...(page.items.length > 0 ? { metrics: page.items.map(metricWire) } : {}),
          ...(page.nextPageToken ? { next_page_token: page.nextPageToken } : {}),
        };
      }
      // Without a page size MLflow answers the whole history, which its client expects.
      const all: Metric[] = [];
      let pageToken: string | undefined;
      do {
        const page = await tracker.getMetricHistory(runId, input.metric_key, pageToken ? { pageToken } : {});
        all.push(...page.items);
        pageToken = page.nextPageToken;
      } while (pageToken);
      return all.length > 0 ? { metrics: all.map(metricWire) } : {};
    },
  }),
  mlflowRoute({
    // MLflow 3's logged models are not kept here; its client searches them when listing a run's directories
    // (to merge in a logged model's files), so the search answers, empty, for the project's experiments.
    method: 'POST',
    path: '/logged-models/search',
    operation: 'experimentTracker.searchRuns',
    input: z.object({ experiment_ids: repeated(z.string().min(1)).optional() }).loose(),
    async handle(ctx, input) {
      await Promise.all((input.experiment_ids ?? []).map((id) => experimentIn(ctx, id)));
      return {};
    },
  }),
  mlflowRoute({
    method: 'GET',
    path: '/artifacts/list',
    operation: 'experimentTracker.listRunArtifacts',
    input: z.object({ ...runRef, path: z.string().optional(), page_token: z.string().optional() }),
    async handle(ctx, input) {
      const runId = await runIn(ctx, runIdOf(input));
      const run = await ctx.services.tracker.getRun(runId);
      const path = input.path?.replace(/^\/+|\/+$/g, '');
      const page = await ctx.services.tracker.listRunArtifacts(runId, {
        ...(path ? { path } : {}),
        ...(input.page_token ? { pageToken: input.page_token } : {}),
      });
      return {
        root_uri: await ctx.uris.runArtifactUri(run.info),
        ...(page.items.length > 0
          ? {
              files: page.items.map((f) => ({
                path: f.path,
                is_dir: f.isDir,
                ...(f.size !== undefined ? { file_size: f.size } : {}),
              })),
            }
          : {}),
        ...(page.nextPageToken ? { next_page_token: page.nextPageToken } : {}),
      };
    },
  }),
];
