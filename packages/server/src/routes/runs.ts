import { TRACKER_LIMITS } from '@mlplane/core';
import { z } from 'zod';
import { defineRoute } from '../http/route.js';
import {
  assertWritableTag,
  isoDate,
  metricSchema,
  metricValue,
  metricWire,
  pageQuery,
  pageSchema,
  pageWire,
  projectParams,
  refuseReservedTags,
  runInfoSchema,
  runInfoWire,
  runSchema,
  runWire,
  stringRecord,
  toMetricValue,
} from './wire.js';

const runParams = projectParams.extend({ runId: z.string().min(1).max(64) });
const keyValue = z.object({ key: z.string(), value: z.string() }).strict();

const metricEntry = z
  .object({
    key: z.string(),
    value: metricValue,
    step: z.number().int().optional(),
    timestamp: z.number().int().optional(),
  })
  .strict();
type MetricEntry = z.infer<typeof metricEntry>;

/** The body of log-batch: MLflow's limits (1000 metrics, 100 params, 100 tags) are checked by the port. */
const logBatchBody = z
  .object({
    metrics: z.array(metricEntry).max(TRACKER_LIMITS.metricsPerBatch).optional(),
    params: z.array(keyValue).max(TRACKER_LIMITS.paramsPerBatch).optional(),
    tags: z.array(keyValue).max(TRACKER_LIMITS.tagsPerBatch).optional(),
  })
  .strict();

const METRIC_FIELDS = new Set(['key', 'value', 'step', 'timestamp']);
const METRIC_WORDS = new Set(['NaN', 'Infinity', '-Infinity']);
const describe = (value: unknown) => (value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value);

/** What is wrong with one metric of a log-batch body, as `metricEntry` would say it; undefined when nothing. */
function metricEntryProblem(metric: unknown): [(string | number)[], string] | undefined {
  if (typeof metric !== 'object' || metric === null || Array.isArray(metric)) {
    return [[], `must be a metric { key, value, step?, timestamp? }, got ${describe(metric)}`];
  }
  for (const field in metric) {
    if (!METRIC_FIELDS.has(field)) return [[], `unknown field '${field}'`];
  }
  const { key, value, step, timestamp } = metric as Record<string, unknown>;
  if (typeof key !== 'string') return [['key'], `must be a string, got ${describe(key)}`];
  if (typeof value !== 'number' && !(typeof value === 'string' && METRIC_WORDS.has(value))) {
    return [['value'], `must be a number or 'NaN', 'Infinity', '-Infinity', got ${describe(value)}`];
  }
  if (step !== undefined && !Number.isInteger(step)) return [['step'], `must be an integer, got ${describe(step)}`];
  if (timestamp !== undefined && !Number.isInteger(timestamp)) {
    return [['timestamp'], `must be an integer, got ${describe(timestamp)}`];
  }
  return undefined;
}

/**
 * log-batch's body as requests are checked: `logBatchBody` (which the OpenAPI document shows) with its metrics
 * checked by plain code rather than a zod object each, since up to 1,000 of them come in every request and the
 * tracker's port checks each again (keys, values, counts).
 */
const logBatchCheck = logBatchBody.extend({
  metrics: z
    .array(z.unknown())
    .max(TRACKER_LIMITS.metricsPerBatch)
    .check((ctx) => {
      for (let i = 0; i < ctx.value.length; i++) {
        const problem = metricEntryProblem(ctx.value[i]);
        if (problem)
          ctx.issues.push({ code: 'custom', input: undefined, path: [i, ...problem[0]], message: problem[1] });
      }
    })
    .optional() as unknown as z.ZodOptional<z.ZodArray<z.ZodType<MetricEntry>>>,
});

export const runRoutes = [
  defineRoute({
    operationId: 'createRun',
    method: 'POST',
    path: '/projects/{project}/runs',
    summary: 'Start a run in one of the project’s experiments',
    tag: 'runs',
    permission: 'experiment.write',
    scope: 'project',
    params: projectParams,
    body: z
      .object({
        experimentId: z.string().min(1).max(64),
        name: z.string().optional(),
        startTime: isoDate.optional(),
        status: z.enum(['RUNNING', 'SCHEDULED']).optional(),
        tags: stringRecord.optional(),
        parentRunId: z.string().optional(),
      })
      .strict(),
    response: runSchema,
    status: 201,
    async handle({ params, body, principal, services }) {
      await services.projects.experiment(params.project, body.experimentId);
      refuseReservedTags(body.tags);
      if (body.parentRunId) await services.projects.run(params.project, body.parentRunId);
      const run = await services.tracker.createRun({
        experimentId: body.experimentId,
        ...(body.name !== undefined ? { name: body.name } : {}),
        ...(body.startTime ? { startTime: new Date(body.startTime) } : {}),
        ...(body.status ? { status: body.status } : {}),
        ...(body.tags ? { tags: body.tags } : {}),
        ...(body.parentRunId ? { parentRunId: body.parentRunId } : {}),
        userId: principal.ownerId ?? principal.id,
      });
      services.projects.rememberRun(run.info.id, run.info.experimentId);
      return runWire(run);
    },
  }),
  defineRoute({
    operationId: 'getRun',
    method: 'GET',
    path: '/projects/{project}/runs/{runId}',
    summary: 'Get a run with its latest metrics, params, tags and inputs',
    tag: 'runs',
    permission: 'experiment.read',
    scope: 'project',
    params: runParams,
    response: runSchema,
    async handle({ params, services }) {
      await services.projects.run(params.project, params.runId);
      return runWire(await services.tracker.getRun(params.runId));
    },
  }),
  defineRoute({
    operationId: 'updateRun',
    method: 'PATCH',
    path: '/projects/{project}/runs/{runId}',
    summary: "Change a run's status, end time or name",
    tag: 'runs',
    permission: 'experiment.write',
    scope: 'project',
    params: runParams,
    body: z
      .object({
        status: z.enum(['RUNNING', 'SCHEDULED', 'FINISHED', 'FAILED', 'KILLED']).optional(),
        endTime: isoDate.optional(),
        name: z.string().optional(),
      })
      .strict(),
    response: runInfoSchema,
    async handle({ params, body, services }) {
      await services.projects.run(params.project, params.runId);
      const info = await services.tracker.updateRun({
        runId: params.runId,
        ...(body.status ? { status: body.status } : {}),
        ...(body.endTime ? { endTime: new Date(body.endTime) } : {}),
        ...(body.name !== undefined ? { name: body.name } : {}),
      });
      return runInfoWire(info);
    },
  }),
  defineRoute({
    operationId: 'deleteRun',
    method: 'DELETE',
    path: '/projects/{project}/runs/{runId}',
    summary: 'Delete a run (restorable)',
    tag: 'runs',
    permission: 'experiment.delete',
    scope: 'project',
    params: runParams,
    response: 'empty',
    async handle({ params, services }) {
      await services.projects.run(params.project, params.runId);
      await services.tracker.deleteRun(params.runId);
      return undefined;
    },
  }),
  defineRoute({
    operationId: 'restoreRun',
    method: 'POST',
    path: '/projects/{project}/runs/{runId}/restore',
    summary: 'Restore a deleted run',
    tag: 'runs',
    permission: 'experiment.delete',
    scope: 'project',
    params: runParams,
    response: 'empty',
    async handle({ params, services }) {
      await services.projects.run(params.project, params.runId);
      await services.tracker.restoreRun(params.runId);
      return undefined;
    },
  }),
  defineRoute({
    operationId: 'logBatch',
    method: 'POST',
    path: '/projects/{project}/runs/{runId}/log-batch',
    summary: 'Log metrics, params and tags in one atomic call',
    tag: 'runs',
    permission: 'experiment.write',
    scope: 'project',
    params: runParams,
    body: logBatchBody,
    bodyCheck: logBatchCheck,
    response: 'empty',
    async handle({ params, body, services }) {
      await services.projects.run(params.project, params.runId);
      for (const tag of body.tags ?? []) assertWritableTag(tag.key, 'tags');
      await services.tracker.logBatch(params.runId, {
        ...(body.metrics
          ? {
              metrics: body.metrics.map((m) => ({
                key: m.key,
                value: toMetricValue(m.value),
                ...(m.step !== undefined ? { step: m.step } : {}),
                ...(m.timestamp !== undefined ? { timestamp: m.timestamp } : {}),
              })),
            }
          : {}),
        ...(body.params ? { params: body.params } : {}),
        ...(body.tags ? { tags: body.tags } : {}),
      });
      return undefined;
    },
  }),
  defineRoute({
    operationId: 'getMetricHistory',
    method: 'GET',
    path: '/projects/{project}/runs/{runId}/metrics/{key}',
    summary: 'Every logged value of a metric, by step',
    tag: 'runs',
    permission: 'experiment.read',
    scope: 'project',
    params: runParams.extend({ key: z.string().min(1) }),
    query: pageQuery,
    response: pageSchema(metricSchema),
    async handle({ params, query, services }) {
      await services.projects.run(params.project, params.runId);
      const page = await services.tracker.getMetricHistory(params.runId, params.key, {
        ...(query.maxResults ? { maxResults: query.maxResults } : {}),
        ...(query.pageToken ? { pageToken: query.pageToken } : {}),
      });
      return pageWire(page, metricWire);
    },
  }),
  defineRoute({
    operationId: 'setRunTag',
    method: 'PUT',
    path: '/projects/{project}/runs/{runId}/tags/{key}',
    summary: 'Set a tag on a run',
    tag: 'runs',
    permission: 'experiment.write',
    scope: 'project',
    params: runParams.extend({ key: z.string().min(1) }),
    body: z.object({ value: z.string() }).strict(),
    response: 'empty',
    async handle({ params, body, services }) {
      assertWritableTag(params.key);
      await services.projects.run(params.project, params.runId);
      await services.tracker.setTag(params.runId, { key: params.key, value: body.value });
      return undefined;
    },
  }),
  defineRoute({
    operationId: 'deleteRunTag',
    method: 'DELETE',
    path: '/projects/{project}/runs/{runId}/tags/{key}',
    summary: 'Delete a tag from a run',
    tag: 'runs',
    permission: 'experiment.write',
    scope: 'project',
    params: runParams.extend({ key: z.string().min(1) }),
    response: 'empty',
    async handle({ params, services }) {
      assertWritableTag(params.key);
      await services.projects.run(params.project, params.runId);
      await services.tracker.deleteTag(params.runId, params.key);
      return undefined;
    },
  }),
  defineRoute({
    operationId: 'searchRuns',
    method: 'POST',
    path: '/projects/{project}/runs/search',
    summary: "Search runs of the project's experiments (MLflow's filter language and ordering)",
    tag: 'runs',
    permission: 'experiment.read',
    scope: 'project',
    params: projectParams,
    body: z
      .object({
        experimentIds: z.array(z.string().min(1).max(64)).min(1).max(TRACKER_LIMITS.experimentIdsPerSearch),
        filter: z.string().optional(),
        orderBy: z.array(z.string()).optional(),
        runViewType: z.enum(['ACTIVE_ONLY', 'DELETED_ONLY', 'ALL']).optional(),
        maxResults: z.number().int().min(1).optional(),
        pageToken: z.string().optional(),
      })
      .strict(),
    response: pageSchema(runSchema),
    async handle({ params, body, services }) {
      await Promise.all(body.experimentIds.map((id) => services.projects.experiment(params.project, id)));
      const page = await services.tracker.searchRuns({
        experimentIds: body.experimentIds,
        ...(body.filter !== undefined ? { filter: body.filter } : {}),
        ...(body.orderBy ? { orderBy: body.orderBy } : {}),
        ...(body.runViewType ? { runViewType: body.runViewType } : {}),
        ...(body.maxResults ? { maxResults: body.maxResults } : {}),
        ...(body.pageToken ? { pageToken: body.pageToken } : {}),
      });
      return pageWire(page, runWire);
    },
  }),
];
