import { Readable } from 'node:stream';
import { type ComputeBackend, type JobStatus, LIST_JOBS_PAGE, NotFoundError, type ReplicaStatus } from '@mlplane/core';
import { z } from 'zod';
import { HttpError } from '../http/errors.js';
import { defineRoute, type StreamedResult } from '../http/route.js';
import type { ApiServices } from '../http/services.js';
import { iso, isoDate, pageSchema, pageWire, projectParams, queryInteger } from './wire.js';

const PHASES = ['Pending', 'Queued', 'Admitted', 'Running', 'Succeeded', 'Failed', 'Cancelled'] as const;
const jobParams = projectParams.extend({ jobId: z.string().min(1).max(255) });

const replicaSchema = z.object({
  role: z.string(),
  index: z.number().int(),
  phase: z.enum(['Pending', 'Running', 'Succeeded', 'Failed', 'Unknown']),
  attempt: z.number().int(),
  exitCode: z.number().int().optional(),
  reason: z.string().optional(),
  node: z.string().optional(),
  startedAt: isoDate.optional(),
  finishedAt: isoDate.optional(),
});
const replicaWire = (r: ReplicaStatus): z.infer<typeof replicaSchema> => ({
  role: r.role,
  index: r.index,
  phase: r.phase,
  attempt: r.attempt,
  ...(r.exitCode !== undefined ? { exitCode: r.exitCode } : {}),
  ...(r.reason !== undefined ? { reason: r.reason } : {}),
  ...(r.node !== undefined ? { node: r.node } : {}),
  ...(r.startedAt ? { startedAt: iso(r.startedAt) } : {}),
  ...(r.finishedAt ? { finishedAt: iso(r.finishedAt) } : {}),
});

export const jobSchema = z.object({
  id: z.string(),
  name: z.string(),
  project: z.string(),
  runId: z.string().optional(),
  phase: z.enum(PHASES),
  retriesUsed: z.number().int(),
  queue: z.string().optional(),
  priority: z.string().optional(),
  labels: z.record(z.string(), z.string()),
  submittedAt: isoDate,
  admittedAt: isoDate.optional(),
  startedAt: isoDate.optional(),
  finishedAt: isoDate.optional(),
  reason: z.string().optional(),
  message: z.string().optional(),
  replicas: z.array(replicaSchema),
});
export const jobWire = (j: JobStatus): z.infer<typeof jobSchema> => ({
  id: j.id,
  name: j.name,
  project: j.project,
  ...(j.runId ? { runId: j.runId } : {}),
  phase: j.phase,
  retriesUsed: j.retriesUsed,
  ...(j.queue ? { queue: j.queue } : {}),
  ...(j.priority ? { priority: j.priority } : {}),
  labels: { ...j.labels },
  submittedAt: iso(j.submittedAt),
  ...(j.admittedAt ? { admittedAt: iso(j.admittedAt) } : {}),
  ...(j.startedAt ? { startedAt: iso(j.startedAt) } : {}),
  ...(j.finishedAt ? { finishedAt: iso(j.finishedAt) } : {}),
  ...(j.reason ? { reason: j.reason } : {}),
  ...(j.message ? { message: j.message } : {}),
  replicas: j.replicas.map(replicaWire),
});

/**
 * A JobSpec without its project (the path names it). Only its outline is checked here; the ComputeBackend port
 * validates the whole spec against what the backend can do (ValidationError naming the field).
 */
const jobSpecBody = z.looseObject({
  name: z.string(),
  replicaGroups: z
    .array(
      z.looseObject({
        role: z.string(),
        command: z.array(z.string()).optional(),
        image: z.string().optional(),
        replicas: z.number().int().optional(),
      }),
    )
    .min(1),
  runId: z.string().optional(),
  experiment: z.string().optional(),
  queue: z.string().optional(),
  priority: z.string().optional(),
  retries: z.number().int().optional(),
  timeoutSeconds: z.number().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  idempotencyKey: z.string().optional(),
});

function computeOf(services: ApiServices): ComputeBackend {
  if (!services.compute) throw new HttpError(501, 'NOT_IMPLEMENTED', 'this platform has no ComputeBackend');
  return services.compute;
}

/** The job, when it belongs to `project`; NotFoundError otherwise (another project's job is not revealed). */
async function jobIn(services: ApiServices, project: string, jobId: string): Promise<JobStatus> {
  const status = await computeOf(services).get(jobId);
  if (status.project !== project) throw new NotFoundError(`job '${jobId}' does not exist in project '${project}'`);
  return status;
}

const useSchema = z.object({
  cpu: z.number(),
  memoryBytes: z.number(),
  gpus: z.number(),
  gpuTypes: z.record(z.string(), z.number()),
  running: z.number().int(),
});

export const jobRoutes = [
  defineRoute({
    operationId: 'getQueues',
    method: 'GET',
    path: '/projects/{project}/queues',
    summary: "The scheduler's queues (jobs queued, admitted, running) and the project's quota and use",
    tag: 'jobs',
    permission: 'job.read',
    scope: 'project',
    params: projectParams,
    response: z.object({
      queues: z.array(
        z.object({
          name: z.string(),
          maxRunning: z.number().int().optional(),
          queued: z.number().int(),
          admitted: z.number().int(),
          running: z.number().int(),
        }),
      ),
      project: z.object({
        queued: z.number().int(),
        use: useSchema,
        quota: z.record(z.string(), z.unknown()).optional(),
        share: z.number(),
      }),
    }),
    async handle({ params, services }) {
      if (!services.queues) {
        throw new HttpError(501, 'NOT_IMPLEMENTED', 'this platform has no scheduler (install the scheduler plugin)');
      }
      const state = await services.queues.queueState();
      const mine = state.projects.find((p) => p.project === params.project);
      return {
        queues: state.queues.map((q) => ({ ...q })),
        project: mine
          ? {
              queued: mine.queued,
              use: { ...mine.use, gpuTypes: { ...mine.use.gpuTypes } },
              ...(mine.quota ? { quota: { ...mine.quota } } : {}),
              share: mine.share,
            }
          : { queued: 0, use: { cpu: 0, memoryBytes: 0, gpus: 0, gpuTypes: {}, running: 0 }, share: 0 },
      };
    },
  }),
  defineRoute({
    operationId: 'submitJob',
    method: 'POST',
    path: '/projects/{project}/jobs',
    summary: 'Submit a job to the ComputeBackend (through the scheduler where one is installed)',
    tag: 'jobs',
    permission: 'job.submit',
    scope: 'project',
    params: projectParams,
    body: jobSpecBody,
    response: jobSchema,
    status: 201,
    async handle({ params, body, services }) {
      const { project: _ignored, ...spec } = body as Record<string, unknown>;
      const status = await computeOf(services).submit({ ...(spec as object), project: params.project } as never);
      return jobWire(status);
    },
  }),
  defineRoute({
    operationId: 'listJobs',
    method: 'GET',
    path: '/projects/{project}/jobs',
    summary: "List the project's jobs, newest first",
    tag: 'jobs',
    permission: 'job.read',
    scope: 'project',
    params: projectParams,
    query: z.object({
      phase: z.union([z.enum(PHASES), z.array(z.enum(PHASES))]).optional(),
      runId: z.string().optional(),
      maxResults: queryInteger(1, LIST_JOBS_PAGE.max).optional(),
      pageToken: z.string().max(1_048_576).optional(),
    }),
    response: pageSchema(jobSchema),
    async handle({ params, query, services }) {
      const page = await computeOf(services).list({
        project: params.project,
        ...(query.phase ? { phases: [query.phase].flat() } : {}),
        ...(query.runId ? { runId: query.runId } : {}),
        ...(query.maxResults ? { maxResults: query.maxResults } : {}),
        ...(query.pageToken ? { pageToken: query.pageToken } : {}),
      });
      return pageWire(page, jobWire);
    },
  }),
  defineRoute({
    operationId: 'getJob',
    method: 'GET',
    path: '/projects/{project}/jobs/{jobId}',
    summary: "A job's status with its replicas",
    tag: 'jobs',
    permission: 'job.read',
    scope: 'project',
    params: jobParams,
    response: jobSchema,
    async handle({ params, services }) {
      return jobWire(await jobIn(services, params.project, params.jobId));
    },
  }),
  defineRoute({
    operationId: 'cancelJob',
    method: 'POST',
    path: '/projects/{project}/jobs/{jobId}/cancel',
    summary: 'Cancel a job, killing every replica (idempotent)',
    tag: 'jobs',
    permission: 'job.cancel',
    scope: 'project',
    params: jobParams,
    body: z.object({ reason: z.string().max(1000).optional() }).strict(),
    response: jobSchema,
    async handle({ params, body, services }) {
      await jobIn(services, params.project, params.jobId);
      const status = await computeOf(services).cancel(params.jobId, body.reason ? { reason: body.reason } : {});
      return jobWire(status);
    },
  }),
  defineRoute({
    operationId: 'jobLogs',
    method: 'GET',
    path: '/projects/{project}/jobs/{jobId}/logs',
    summary: "A replica's log lines (text/plain); follow=true streams until the replica ends",
    tag: 'jobs',
    permission: 'job.read',
    scope: 'project',
    params: jobParams,
    query: z.object({
      role: z.string().optional(),
      index: queryInteger(0, 100_000).optional(),
      attempt: queryInteger(1, 1_000_000).optional(),
      tailLines: queryInteger(1, 100_000).optional(),
      follow: z.enum(['true', 'false']).optional(),
      timestamps: z.enum(['true', 'false']).optional(),
    }),
    response: 'stream',
    async handle({ params, query, services, request }): Promise<StreamedResult> {
      await jobIn(services, params.project, params.jobId);
      const lines = computeOf(services).logs(params.jobId, {
        ...(query.role ? { role: query.role } : {}),
        ...(query.index !== undefined ? { index: query.index } : {}),
        ...(query.attempt !== undefined ? { attempt: query.attempt } : {}),
        ...(query.tailLines !== undefined ? { tailLines: query.tailLines } : {}),
        follow: query.follow === 'true',
        timestamps: query.timestamps === 'true',
        signal: request.signal,
      });
      // Pull the first line before answering, so that a refusal (unknown role, follow unsupported) is a 4xx.
      const iterator = lines[Symbol.asyncIterator]();
      const first = await iterator.next();
      async function* rest() {
        if (first.done) return;
        yield Buffer.from(`${first.value}\n`);
        for (;;) {
          const next = await iterator.next();
          if (next.done) return;
          yield Buffer.from(`${next.value}\n`);
        }
      }
      return {
        stream: Readable.toWeb(Readable.from(rest())) as ReadableStream<Uint8Array>,
        contentType: 'text/plain; charset=utf-8',
      };
    },
  }),
];
