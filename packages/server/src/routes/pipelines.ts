import { NotFoundError } from '@mlplane/core';
import { z } from 'zod';
import { HttpError } from '../http/errors.js';
import { defineRoute } from '../http/route.js';
import type { ApiServices, PipelineRunReader } from '../http/services.js';
import { iso, isoDate, projectParams } from './wire.js';

const runParams = projectParams.extend({ runId: z.string().min(1).max(255) });

function readerOf(services: ApiServices): PipelineRunReader {
  if (!services.pipelineRuns) {
    throw new HttpError(501, 'NOT_IMPLEMENTED', 'this server runs no pipeline orchestrator');
  }
  return services.pipelineRuns;
}

async function runIn(services: ApiServices, project: string, runId: string) {
  const result = await readerOf(services).result(runId);
  if (result.project !== project) {
    throw new NotFoundError(`pipeline run '${runId}' does not exist in project '${project}'`);
  }
  return result;
}

const explanationSchema = z.object({
  step: z.string(),
  decision: z.enum(['reused', 'ran', 'skipped', 'failed', 'pending']),
  reasons: z.array(z.string()),
  cacheKey: z.string().optional(),
  reusedFrom: z.object({ runId: z.string(), stepId: z.string(), finishedAt: z.string() }).optional(),
  resumed: z.boolean().optional(),
});

export const pipelineRoutes = [
  defineRoute({
    operationId: 'getPipelineRun',
    method: 'GET',
    path: '/projects/{project}/pipeline-runs/{runId}',
    summary: 'A pipeline run and the state of each step',
    tag: 'pipelines',
    permission: 'job.read',
    scope: 'project',
    params: runParams,
    response: z.object({
      runId: z.string(),
      pipeline: z.string(),
      project: z.string(),
      status: z.string(),
      error: z.string().optional(),
      trackerRunId: z.string().optional(),
      steps: z.array(
        z.object({
          stepId: z.string(),
          node: z.string(),
          status: z.string(),
          attempt: z.number().int(),
          jobId: z.string().optional(),
          trackerRunId: z.string().optional(),
          error: z.string().optional(),
          startedAt: isoDate.optional(),
          finishedAt: isoDate.optional(),
        }),
      ),
    }),
    async handle({ params, services }) {
      const run = await runIn(services, params.project, params.runId);
      return {
        runId: run.runId,
        pipeline: run.pipeline,
        project: run.project,
        status: run.status,
        ...(run.error ? { error: run.error } : {}),
        ...(run.trackerRunId ? { trackerRunId: run.trackerRunId } : {}),
        steps: run.steps.map((s) => ({
          stepId: s.stepId,
          node: s.node,
          status: s.status,
          attempt: s.attempt,
          ...(s.jobId ? { jobId: s.jobId } : {}),
          ...(s.trackerRunId ? { trackerRunId: s.trackerRunId } : {}),
          ...(s.error ? { error: s.error } : {}),
          ...(s.startedAt ? { startedAt: iso(s.startedAt) } : {}),
          ...(s.finishedAt ? { finishedAt: iso(s.finishedAt) } : {}),
        })),
      };
    },
  }),
  defineRoute({
    operationId: 'explainPipelineCache',
    method: 'GET',
    path: '/projects/{project}/pipeline-runs/{runId}/cache',
    summary: 'Why each step of a pipeline run was or was not reused from the cache',
    tag: 'pipelines',
    permission: 'job.read',
    scope: 'project',
    params: runParams,
    response: z.object({ items: z.array(explanationSchema) }),
    async handle({ params, services }) {
      await runIn(services, params.project, params.runId);
      const steps = await readerOf(services).explainCache(params.runId);
      return { items: steps.map((s) => ({ ...s, reasons: [...s.reasons] })) };
    },
  }),
];
