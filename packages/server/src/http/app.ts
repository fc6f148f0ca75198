import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { getRequestListener } from '@hono/node-server';
import {
  ALL_PROJECTS,
  actingAs,
  checkInput,
  type Logger,
  type Platform,
  type Principal,
  validateNoControlCharacters,
} from '@mlplane/core';
import { type Context, Hono } from 'hono';
import { routePath } from 'hono/route';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { z } from 'zod';
import { type AuthenticateRequest, actorOf, authenticate, authorizeRoute } from './auth.js';
import { queryObject, readJsonBody } from './body.js';
import { errorResponse, HttpError } from './errors.js';
import { buildOpenApi, type OpenApiDocument, swaggerUiAsset, swaggerUiHtml } from './openapi.js';
import { honoPath, type RouteDefinition, type StreamedResult } from './route.js';
import { type ApiServices, type PipelineRunReader, resolveServices } from './services.js';

/** Where the v1 API lives below the mount point. */
export const API_V1 = '/api/v1';

export interface ApiLimits {
  /** JSON request bodies; default 4 MiB (a full MLflow log-batch is under 1 MB). */
  readonly jsonBodyBytes?: number;
}

export interface RateLimitOptions {
  /** Requests each token may make per `durationSeconds`; default 2000 per second. */
  readonly points: number;
  readonly durationSeconds: number;
}

export interface ApiObserver {
  /**
   * Runs the whole handling of each request, its response log line included, inside `handle`: a telemetry observer
   * sets the trace and log context there (`withTraceContext`, `withLogContext`).
   */
  around?(
    request: { readonly requestId: string; readonly method: string; readonly headers: Headers },
    handle: () => Promise<void>,
  ): Promise<void>;
  /** Called when the caller of a request is known, inside `around`. */
  onAuthenticated?(principal: Principal): void;
  /** Called once per request when its answer is written, with the route template (or undefined when none matched). */
  onResponse?(event: {
    readonly method: string;
    readonly route: string | undefined;
    readonly status: number;
    readonly code: string | undefined;
    readonly seconds: number;
  }): void;
}

export interface CreateApiOptions {
  readonly platform: Pick<Platform, 'get' | 'state'>;
  /** Extra route tables (the MLflow-compatible API, a host's own), mounted beside /api/v1. */
  readonly mount?: readonly ((app: Hono<ApiEnv>, api: ApiInternals) => void)[];
  /** A host's own authentication; see AuthenticateRequest. */
  readonly authenticate?: AuthenticateRequest;
  readonly limits?: ApiLimits;
  /** Per-token rate limit; `false` turns it off. */
  readonly rateLimit?: RateLimitOptions | false;
  /** Request logs (one line per request at info, unexpected errors at error); default: the platform's logger. */
  readonly logger?: Logger;
  readonly observer?: ApiObserver;
  /** Extra checks for `/ready` besides the platform running (a database ping). */
  readonly readiness?: () => Promise<void>;
  /** Pipeline runs to serve under /projects/{project}/pipeline-runs (an @mlplane/pipelines orchestrator). */
  readonly pipelineRuns?: PipelineRunReader;
  /** Served as the OpenAPI document's `servers` entry (where the host mounts the API). */
  readonly publicUrl?: string;
}

export interface ApiEnv {
  Variables: { requestId: string; principal?: Principal; route?: string; errorCode?: string };
}

/** What route tables mounted beside /api/v1 share with it: services, authentication, the request pipeline. */
export interface ApiInternals {
  readonly services: ApiServices;
  readonly limits: Required<ApiLimits>;
  authenticate(c: Context<ApiEnv>): Promise<Principal>;
  /** Counts the request against the caller's rate limit; HttpError 429 when exceeded. */
  rateLimit(principal: Principal): Promise<void>;
  errorResponse(c: Context<ApiEnv>, err: unknown): Response;
}

export interface MlplaneApi {
  /** The API as a fetch handler (`Request` in, `Response` out). */
  readonly fetch: (request: Request) => Promise<Response>;
  /** The API as a Node request listener, to mount in `http.createServer`, Express or fastify. */
  readonly listener: (req: IncomingMessage, res: ServerResponse) => void;
  readonly openapi: OpenApiDocument;
  readonly routes: readonly RouteDefinition[];
  readonly services: ApiServices;
}

const DEFAULT_JSON_BODY_BYTES = 4 * 1024 * 1024;
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * The HTTP API over a started platform: every route of `routes` under /api/v1 with authentication, the route's
 * permission checked by the Authorizer (default deny), the handler run inside `actingAs` so events and audit name
 * the caller, one error shape, request ids, per-token rate limits, `/health`, `/ready`, the OpenAPI document at
 * /api/v1/openapi.json and browsable docs at /api/v1/docs.
 */
export async function createApi(routes: readonly RouteDefinition[], options: CreateApiOptions): Promise<MlplaneApi> {
  const services = await resolveServices(options.platform, options.pipelineRuns);
  const limits: Required<ApiLimits> = { jsonBodyBytes: options.limits?.jsonBodyBytes ?? DEFAULT_JSON_BODY_BYTES };
  const log = options.logger;
  const rate =
    options.rateLimit === false
      ? undefined
      : new RateLimiterMemory({
          points: options.rateLimit?.points ?? 2000,
          duration: options.rateLimit?.durationSeconds ?? 1,
        });
  const openapi = buildOpenApi(routes, { ...(options.publicUrl ? { serverUrl: options.publicUrl } : {}) });

  const app = new Hono<ApiEnv>();

  const respondError = (c: Context<ApiEnv>, err: unknown): Response => {
    const { status, body, headers, unexpected } = errorResponse(err);
    c.set('errorCode', body.code);
    if (unexpected) log?.error({ err, requestId: c.get('requestId') }, 'request failed');
    return c.json(body, status as 500, headers as Record<string, string> | undefined);
  };

  const internals: ApiInternals = {
    services,
    limits,
    authenticate: async (c) => {
      const principal = await authenticate(
        c.req.raw,
        services.authorizer,
        clientAddress(c),
        options.authenticate,
        incomingOf(c),
      );
      c.set('principal', principal);
      options.observer?.onAuthenticated?.(principal);
      return principal;
    },
    rateLimit: async (principal) => {
      if (!rate) return;
      try {
        await rate.consume(principal.id);
      } catch (err) {
        if (!(err instanceof RateLimiterRes)) throw err;
        const retryAfter = Math.max(1, Math.ceil(err.msBeforeNext / 1000));
        throw new HttpError(
          429,
          'RATE_LIMITED',
          `too many requests for this token; retry after ${retryAfter}s`,
          { retryAfterSeconds: retryAfter },
          { 'retry-after': String(retryAfter) },
        );
      }
    },
    errorResponse: respondError,
  };

  app.use(async (c, next) => {
    const started = performance.now();
    const offered = c.req.header('x-request-id');
    const requestId = offered && REQUEST_ID.test(offered) ? offered : randomUUID();
    c.set('requestId', requestId);
    const around = options.observer?.around;
    if (around)
      await around({ requestId, method: c.req.method, headers: c.req.raw.headers }, () => handle(c, next, started));
    else await handle(c, next, started);
  });
  const handle = async (c: Context<ApiEnv>, next: () => Promise<void>, started: number) => {
    const requestId = c.get('requestId');
    await next();
    c.header('x-request-id', requestId);
    const seconds = (performance.now() - started) / 1000;
    // Routes mounted beside /api/v1 need not name their template: the one hono matched is it.
    const route = c.get('route') ?? routeTemplate(routePath(c));
    const principal = c.get('principal');
    options.observer?.onResponse?.({
      method: c.req.method,
      route,
      status: c.res.status,
      code: c.get('errorCode'),
      seconds,
    });
    log?.info(
      {
        requestId,
        method: c.req.method,
        route: route ?? c.req.path,
        status: c.res.status,
        ms: Math.round(seconds * 1e4) / 10,
        ...(principal ? { actor: actorOf(principal), principal: principal.id } : {}),
      },
      'request',
    );
  };

  app.onError((err, c) => respondError(c, err));
  app.notFound((c) =>
    respondError(
      c,
      new HttpError(404, 'NOT_FOUND', `no route ${c.req.method} ${c.req.path}; see ${API_V1}/openapi.json`),
    ),
  );

  app.get('/health', (c) => c.json({ status: 'ok' }));
  app.get('/ready', async (c) => {
    try {
      if (options.platform.state !== 'running') throw new Error(`platform is ${options.platform.state}`);
      await options.readiness?.();
      return c.json({ status: 'ready' });
    } catch (err) {
      return c.json({ code: 'UNAVAILABLE', message: `not ready: ${(err as Error).message}` }, 503);
    }
  });
  app.get(`${API_V1}/openapi.json`, (c) => c.json(openapi));
  app.get(`${API_V1}/docs`, (c) => c.html(swaggerUiHtml('openapi.json')));
  app.get(`${API_V1}/docs/:asset`, async (c) => {
    const asset = await swaggerUiAsset(c.req.param('asset'));
    if (!asset) return respondError(c, new HttpError(404, 'NOT_FOUND', 'no such docs asset'));
    return c.body(asset.body, 200, { 'content-type': asset.contentType, 'cache-control': 'max-age=3600' });
  });

  for (const route of routes) {
    const template = `${API_V1}${route.path}`;
    const querySchema = strictQuery(route.query);
    app.on(route.method, honoPath(template), async (c) => {
      c.set('route', template);
      assertDecodablePath(c.req.path);
      const principal = await internals.authenticate(c);
      await internals.rateLimit(principal);
      const params = parse(route.params, printableParams(c.req.param()), 'path');
      const input = { params, query: undefined as unknown, body: undefined as unknown };
      const early = typeof route.scope !== 'function';
      if (early) await authorizeRoute(services.authorizer, route, principal, input);
      input.query = parse(querySchema, querySchema ? queryObject(new URL(c.req.url)) : undefined, 'query');
      if (route.body !== undefined && route.body !== 'stream') {
        input.body = parse(route.bodyCheck ?? route.body, await readJsonBody(c.req.raw, limits.jsonBodyBytes), 'body');
      }
      if (!early) await authorizeRoute(services.authorizer, route, principal, input);
      const project = route.scope === 'project' ? (params as { project: string }).project : ALL_PROJECTS;
      const result = await actingAs(
        { actor: actorOf(principal), ...(project !== ALL_PROJECTS ? { project } : {}) },
        () =>
          route.handle({
            ...input,
            principal,
            project,
            services,
            request: c.req.raw,
            requestId: c.get('requestId'),
          }),
      );
      if (route.response === 'empty') return c.body(null, 204);
      if (route.response === 'stream') {
        const streamed = result as StreamedResult;
        return c.body(streamed.stream, 200, {
          'content-type': streamed.contentType,
          ...(streamed.contentLength !== undefined ? { 'content-length': String(streamed.contentLength) } : {}),
          ...streamed.headers,
        });
      }
      return c.json(result as object, route.status ?? 200);
    });
  }

  for (const extend of options.mount ?? []) extend(app, internals);

  return {
    fetch: async (request: Request) => app.fetch(request),
    // The Node adapter hands the socket in as `env.incoming`, which clientAddress reads.
    listener: getRequestListener((request, env) => app.fetch(request, env)),
    openapi,
    routes,
    services,
  };
}

/**
 * The router leaves a parameter it cannot percent-decode as it was sent (`%FF` stays the three characters), which
 * would store an artifact or grant under a name the client never meant: such a path is refused.
 */
function assertDecodablePath(path: string): void {
  try {
    decodeURIComponent(path);
  } catch {
    throw new HttpError(400, 'VALIDATION', 'the path is not valid percent-encoded UTF-8', { field: 'path' });
  }
}

/** No name the platform stores holds a control character, so a path parameter with one is refused, not looked up. */
function printableParams(params: Record<string, string>): Record<string, string> {
  for (const [name, value] of Object.entries(params)) {
    validateNoControlCharacters(value, `path.${name}`, `path parameter ${name}`);
  }
  return params;
}

/** A query schema that refuses parameters it does not name: a misspelt `maxresults` is a 400, not ignored. */
function strictQuery<T>(schema: z.ZodType<T> | undefined): z.ZodType<T> | undefined {
  return schema instanceof z.ZodObject ? (schema.strict() as unknown as z.ZodType<T>) : schema;
}

/** Validates one part of the request; a ValidationError naming the field (`body.metrics[3].value`) otherwise. */
function parse<T>(schema: z.ZodType<T> | undefined, value: unknown, part: 'path' | 'query' | 'body'): T {
  if (!schema) return undefined as T;
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  checkInput(schema, value, part, part !== 'body');
  throw new HttpError(400, 'VALIDATION', `invalid ${part}`);
}

function incomingOf(c: Context<ApiEnv>): IncomingMessage | undefined {
  return (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
}

/** A hono route pattern as an OpenAPI-style template (`/runs/:runId` is `/runs/{runId}`); undefined for no route. */
function routeTemplate(pattern: string): string | undefined {
  if (pattern === '' || pattern === '*' || pattern === '/*') return undefined;
  return pattern.replace(/:(\w+)(\{[^}]*\})?\??/g, '{$1}');
}

function clientAddress(c: Context<ApiEnv>): string | undefined {
  return incomingOf(c)?.socket?.remoteAddress ?? undefined;
}
