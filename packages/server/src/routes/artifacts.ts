import { Readable } from 'node:stream';
import {
  ARTIFACT_KEY_MAX_BYTES,
  ARTIFACT_MAX_SINGLE_PUT_BYTES,
  experimentTrackerInputs,
  RUN_ARTIFACTS_PAGE,
  type RunArtifact,
} from '@mlplane/core';
import { z } from 'zod';
import { payloadTooLarge } from '../http/errors.js';
import { defineRoute, type StreamedResult } from '../http/route.js';
import { argumentSchema, pageSchema, pageWire, projectParams } from './wire.js';

const runParams = projectParams.extend({
  runId: argumentSchema(experimentTrackerInputs.getRun, 0) as z.ZodType<string>,
});
/** A path below the run's artifact root: the port's schema; its segments are checked by the tracker (400 `path`). */
const artifactPath = argumentSchema(experimentTrackerInputs.openArtifact, 1) as z.ZodType<string>;

const artifactSchema = z.object({ path: z.string(), isDir: z.boolean(), size: z.number().int().optional() });
const artifactWire = (a: RunArtifact): z.infer<typeof artifactSchema> => ({
  path: a.path,
  isDir: a.isDir,
  ...(a.size !== undefined ? { size: a.size } : {}),
});

const storedSchema = z.object({
  path: z.string(),
  size: z.number().int(),
  sha256: z.string().optional(),
  etag: z.string(),
  contentType: z.string(),
});

/** Header a client may send with the upload's hex sha256: the store refuses a body that hashes otherwise. */
export const SHA256_HEADER = 'x-content-sha256';

/**
 * The request body as a Node stream that fails once it passes `limit` bytes, so a client that sends more than it
 * declared (or declares nothing) cannot push an unbounded body into the store.
 */
export function limitedBody(request: Request, limit: number): Readable {
  const declared = request.headers.get('content-length');
  if (declared !== null && Number(declared) > limit) throw payloadTooLarge(limit);
  if (request.body === null) return Readable.from([]);
  const source = request.body.getReader();
  let size = 0;
  return new Readable({
    async read() {
      try {
        const { done, value } = await source.read();
        if (done) return void this.push(null);
        size += value.byteLength;
        if (size > limit) {
          await source.cancel();
          return void this.destroy(payloadTooLarge(limit));
        }
        this.push(value);
      } catch (err) {
        this.destroy(err as Error);
      }
    },
    destroy(err, callback) {
      source.cancel().catch(() => undefined);
      callback(err);
    },
  });
}

export const artifactRoutes = [
  defineRoute({
    operationId: 'uploadRunArtifact',
    method: 'PUT',
    path: '/projects/{project}/runs/{runId}/artifacts/{path...}',
    summary:
      "Store a file below the run's artifact root, streamed (raw body; Content-Type kept; x-content-sha256 checked)",
    tag: 'artifacts',
    permission: 'experiment.write',
    scope: 'project',
    params: runParams.extend({ path: artifactPath }),
    body: 'stream',
    response: storedSchema,
    status: 201,
    async handle({ params, request, services }) {
      await services.projects.run(params.project, params.runId);
      const contentType = request.headers.get('content-type');
      const sha256 = request.headers.get(SHA256_HEADER);
      const stored = await services.tracker.logArtifact(
        params.runId,
        params.path,
        limitedBody(request, ARTIFACT_MAX_SINGLE_PUT_BYTES),
        {
          ...(contentType ? { contentType } : {}),
          ...(sha256 ? { expectedSha256: sha256 } : {}),
        },
      );
      return {
        path: params.path,
        size: stored.size,
        ...(stored.sha256 ? { sha256: stored.sha256 } : {}),
        etag: stored.etag,
        contentType: stored.contentType,
      };
    },
  }),
  defineRoute({
    operationId: 'listRunArtifacts',
    method: 'GET',
    path: '/projects/{project}/runs/{runId}/artifacts',
    summary: 'One directory level of the run’s artifacts (below ?path=, the root when absent), sorted by path',
    tag: 'artifacts',
    permission: 'experiment.read',
    scope: 'project',
    params: runParams,
    query: z.object({
      path: z.string().max(ARTIFACT_KEY_MAX_BYTES).optional(),
      maxResults: z.coerce.number().int().min(1).max(RUN_ARTIFACTS_PAGE.max).optional(),
      pageToken: z.string().max(1_048_576).optional(),
    }),
    response: pageSchema(artifactSchema),
    async handle({ params, query, services }) {
      await services.projects.run(params.project, params.runId);
      const page = await services.tracker.listRunArtifacts(params.runId, {
        ...(query.path ? { path: query.path } : {}),
        ...(query.maxResults ? { maxResults: query.maxResults } : {}),
        ...(query.pageToken ? { pageToken: query.pageToken } : {}),
      });
      return pageWire(page, artifactWire);
    },
  }),
  defineRoute({
    operationId: 'downloadRunArtifact',
    method: 'GET',
    path: '/projects/{project}/runs/{runId}/artifacts/{path...}',
    summary: 'Download a file of the run, streamed with its Content-Length',
    tag: 'artifacts',
    permission: 'experiment.read',
    scope: 'project',
    params: runParams.extend({ path: artifactPath }),
    response: 'stream',
    async handle({ params, services }): Promise<StreamedResult> {
      await services.projects.run(params.project, params.runId);
      const { info, body } = await services.tracker.openArtifact(params.runId, params.path);
      const name = params.path.slice(params.path.lastIndexOf('/') + 1);
      return {
        stream: Readable.toWeb(body) as unknown as ReadableStream<Uint8Array>,
        contentType: 'application/octet-stream',
        ...(info.size !== undefined ? { contentLength: info.size } : {}),
        headers: { 'content-disposition': `attachment; filename*=UTF-8''${encodeURIComponent(name)}` },
      };
    },
  }),
];
