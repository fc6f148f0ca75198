import type { Permission, Principal } from '@mlplane/core';
import type { z } from 'zod';
import type { ApiServices } from './services.js';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/**
 * Whose permission a route checks, and in which project:
 * - `project`: the `{project}` path parameter (every route under `/projects/{project}`);
 * - `platform`: grants in every project (`*`): tokens' owners, roles, the audit log;
 * - a function: the projects the request names (creating a token for projects A and B needs the permission in both).
 */
export type RouteScope =
  | 'project'
  | 'platform'
  | ((input: { params: any; query: any; body: any }) => readonly string[]);

/** What a handler sees: validated input, who is calling, in which project, and the platform's ports. */
export interface RouteContext<Params, Query, Body> {
  readonly params: Params;
  readonly query: Query;
  readonly body: Body;
  readonly principal: Principal;
  /** The `{project}` of the path; ALL_PROJECTS on platform routes. */
  readonly project: string;
  readonly services: ApiServices;
  /** The request as received, for routes that stream their body (artifact uploads). */
  readonly request: Request;
  readonly requestId: string;
}

/** A streamed response: the route sets its own content type and length. */
export interface StreamedResult {
  readonly stream: ReadableStream<Uint8Array>;
  readonly contentType: string;
  readonly contentLength?: number;
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * One operation of the HTTP API. The route table (`routes/`) lists them all: the server mounts them, checks
 * authentication and `permission` before `handle` runs, validates `params`, `query` and `body` with their schemas,
 * and writes the OpenAPI document from the same definitions, so the document cannot drift from what is served.
 */
export interface RouteDefinition<Params = any, Query = any, Body = any, Result = any> {
  /** OpenAPI operationId and the typed client's method name: `createExperiment`. */
  readonly operationId: string;
  readonly method: HttpMethod;
  /**
   * Below `/api/v1`, OpenAPI-style parameters: `/projects/{project}/experiments/{experimentId}`. A last parameter
   * written `{name...}` takes the rest of the path, slashes included (`/runs/{runId}/artifacts/{path...}`).
   */
  readonly path: string;
  readonly summary: string;
  /** Groups operations in the docs: `experiments`, `runs`, `models`... */
  readonly tag: string;
  /** Checked by the Authorizer in `scope` before the handler runs; `authenticated` needs only a valid caller. */
  readonly permission: Permission | 'authenticated';
  readonly scope: RouteScope;
  readonly params?: z.ZodType<Params>;
  readonly query?: z.ZodType<Query>;
  /** A JSON body schema, or `stream` for a raw body the handler reads from `request` (artifact uploads). */
  readonly body?: z.ZodType<Body> | 'stream';
  /**
   * What the request's body is checked with when it differs from `body`, which the OpenAPI document is written
   * from: a hot route checks a long list with plain code (the same rules, the same field paths) rather than a zod
   * object per item.
   */
  readonly bodyCheck?: z.ZodType<Body>;
  /** The JSON answer's schema; `empty` answers 204; `stream` answers a StreamedResult. */
  readonly response: z.ZodType<Result> | 'empty' | 'stream';
  /** Success status for JSON answers; default 200. */
  readonly status?: 200 | 201;
  readonly handle: (ctx: RouteContext<Params, Query, Body>) => Promise<Result | StreamedResult | undefined>;
}

/** Declares a route with its types inferred from its schemas. */
export function defineRoute<Params = undefined, Query = undefined, Body = undefined, Result = undefined>(
  route: RouteDefinition<Params, Query, Body, Result>,
): RouteDefinition<Params, Query, Body, Result> {
  return route;
}

const PARAMETER = /\{(\w+)(\.\.\.)?\}/g;

/** The route's path as hono's router writes it: `{id}` is `:id`, a rest parameter `{path...}` is `:path{.+}`. */
export function honoPath(path: string): string {
  return path.replace(PARAMETER, (_, name: string, rest: string | undefined) => (rest ? `:${name}{.+}` : `:${name}`));
}

/** The route's path as OpenAPI writes it: `{path...}` is `{path}` (OpenAPI has no rest parameters). */
export function openApiPath(path: string): string {
  return path.replace(PARAMETER, '{$1}');
}

/** The names of a path's parameters, in order; `rest` for a `{name...}` parameter. */
export function pathParameters(path: string): { readonly name: string; readonly rest: boolean }[] {
  return [...path.matchAll(PARAMETER)].map((m) => ({ name: m[1]!, rest: m[2] !== undefined }));
}
