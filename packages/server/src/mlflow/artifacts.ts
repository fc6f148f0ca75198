import { Readable } from 'node:stream';
import { ARTIFACT_DELETE_MANY_MAX, type ArtifactStore, ValidationError } from '@mlplane/core';
import type { PortOperation } from '@mlplane/sql';
import type { MlflowContext } from './context.js';

/** Where the stock client's MlflowArtifactsRepository sends `mlflow-artifacts:/` reads and writes. */
export const MLFLOW_ARTIFACTS_PREFIX = '/api/2.0/mlflow-artifacts/artifacts';

/** A content type the ArtifactStore accepts as given; anything else is stored as octet-stream. */
const CONTENT_TYPE = /^[\x21-\x7e]+\/[\x21-\x7e]+(\s*;[\x20-\x7e]*)?$/;

export interface ArtifactOperation {
  readonly method: 'GET' | 'PUT' | 'DELETE';
  /** `true`: below the prefix (`/<path>`); `false`: the prefix itself with `?path=` (list). */
  readonly withPath: boolean;
  /** The tracker operation whose permission applies (run artifacts belong to their experiment). */
  readonly operation: PortOperation;
  handle(ctx: MlflowContext, path: string): Promise<Response>;
}

/** The artifact path of a proxied request, each segment percent-decoded; ValidationError for a bad encoding. */
export function artifactPathOf(url: URL): string {
  const rest = url.pathname.slice(MLFLOW_ARTIFACTS_PREFIX.length).replace(/^\/+/, '');
  try {
    return rest.split('/').map(decodeURIComponent).join('/');
  } catch {
    throw new ValidationError(`artifact path '${rest.slice(0, 200)}' is not valid percent-encoding`, { field: 'path' });
  }
}

const json = (body: object, status = 200) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

async function keysUnder(store: ArtifactStore, prefix: string, delimiter?: '/') {
  const files: { key: string; size: number }[] = [];
  const dirs: string[] = [];
  let pageToken: string | undefined;
  do {
    const page = await store.list({ prefix, ...(delimiter ? { delimiter } : {}), ...(pageToken ? { pageToken } : {}) });
    for (const item of page.items) files.push({ key: item.key, size: item.size });
    dirs.push(...page.prefixes);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return { files, dirs };
}

export const artifactOperations: readonly ArtifactOperation[] = [
  {
    method: 'PUT',
    withPath: true,
    operation: 'experimentTracker.logArtifact',
    async handle(ctx, path) {
      if (!path.includes('/')) {
        throw new ValidationError(`artifact path '${path}' names an experiment, not a file below it`, {
          field: 'path',
        });
      }
      const key = await ctx.uris.keyForPath(ctx.services.projects, ctx.project, path);
      const type = ctx.request.headers.get('content-type');
      // Streamed into the store as it arrives: an artifact is never held whole in memory.
      await ctx.services.artifacts.put(key, ctx.request.body ?? new Uint8Array(0), {
        ...(type && CONTENT_TYPE.test(type) && type.length <= 255 ? { contentType: type } : {}),
      });
      return json({});
    },
  },
  {
    method: 'GET',
    withPath: true,
    operation: 'experimentTracker.openArtifact',
    async handle(ctx, path) {
      const key = await ctx.uris.keyForPath(ctx.services.projects, ctx.project, path);
      const { info, body } = await ctx.services.artifacts.get(key);
      return new Response(Readable.toWeb(body) as ReadableStream<Uint8Array>, {
        status: 200,
        headers: {
          'content-type': info.contentType,
          'content-length': String(info.size),
          etag: info.etag,
        },
      });
    },
  },
  {
    method: 'GET',
    withPath: false,
    operation: 'experimentTracker.listRunArtifacts',
    async handle(ctx) {
      const path = (new URL(ctx.request.url).searchParams.get('path') ?? '').replace(/^\/+|\/+$/g, '');
      if (path === '') {
        throw new ValidationError(
          "list needs a path below an experiment ('<experiment id>/<run id>/artifacts'): the root lists every project's artifacts",
          { field: 'path' },
        );
      }
      const key = await ctx.uris.keyForPath(ctx.services.projects, ctx.project, path);
      const prefix = `${key}/`;
      const { files, dirs } = await keysUnder(ctx.services.artifacts, prefix, '/');
      const entries = [
        ...dirs.map((d) => ({ path: d.slice(prefix.length).replace(/\/$/, ''), is_dir: true })),
        ...files.map((f) => ({ path: f.key.slice(prefix.length), is_dir: false, file_size: f.size })),
      ].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
      return json(entries.length > 0 ? { files: entries } : {});
    },
  },
  {
    method: 'DELETE',
    withPath: true,
    operation: 'experimentTracker.deleteRun',
    async handle(ctx, path) {
      const key = await ctx.uris.keyForPath(ctx.services.projects, ctx.project, path);
      const { files } = await keysUnder(ctx.services.artifacts, `${key}/`);
      // A path names a file or a directory: both go, with everything below the directory.
      const keys = [key, ...files.map((f) => f.key)];
      for (let i = 0; i < keys.length; i += ARTIFACT_DELETE_MANY_MAX) {
        await ctx.services.artifacts.deleteMany(keys.slice(i, i + ARTIFACT_DELETE_MANY_MAX));
      }
      return json({});
    },
  },
];
