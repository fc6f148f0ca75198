import { actingAs, type Principal, ValidationError } from '@mlplane/core';
import { permissionFor } from '@mlplane/sql';
import type { Context, Hono } from 'hono';
import type { z } from 'zod';
import type { ApiEnv, ApiInternals } from '../http/app.js';
import { actorOf, resourceKindOf } from '../http/auth.js';
import { queryObject, readLimited } from '../http/body.js';
import { ArtifactUris } from './artifact-uris.js';
import { artifactOperations, artifactPathOf, MLFLOW_ARTIFACTS_PREFIX } from './artifacts.js';
import { DefaultExperiments, type MlflowContext, type MlflowRoute, projectOf } from './context.js';
import { MlflowApiError, type MlflowErrorCode, mlflowError } from './errors.js';
import { registryRoutes } from './registry.js';
import { trackingRoutes } from './tracking.js';

export { DEFAULT_EXPERIMENT_ID, defaultExperimentName, PROJECT_HEADER } from './context.js';
export type { MlflowErrorBody, MlflowErrorCode } from './errors.js';
export { MLFLOW_ERROR_STATUS } from './errors.js';

/** Where MLflow's REST API lives; its web UI's copy at /ajax-api/2.0/mlflow is served too. */
export const MLFLOW_API_PREFIXES = Object.freeze(['/api/2.0/mlflow', '/ajax-api/2.0/mlflow']);
export { MLFLOW_ARTIFACTS_PREFIX };

/** Every MLflow endpoint served, below /api/2.0/mlflow. */
export const mlflowRoutes: readonly MlflowRoute[] = [...trackingRoutes, ...registryRoutes];

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The JSON body of a POST, PATCH or DELETE; an empty one is the empty message, as MLflow's server reads it. */
async function readMessage(request: Request, limit: number): Promise<unknown> {
  const bytes = await readLimited(request, limit);
  if (bytes.byteLength === 0) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8.decode(bytes));
  } catch (err) {
    throw new ValidationError(
      err instanceof RangeError
        ? 'the JSON body is nested too deeply'
        : `the request body is not valid UTF-8 JSON: ${(err as Error).message.slice(0, 120)}`,
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ValidationError('the request body must be a JSON object');
  }
  return parsed;
}

/** The request message checked against the endpoint's schema, with MLflow's wording for what is wrong. */
function parseMessage<T>(schema: z.ZodType<T>, raw: unknown): T {
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const field = issue.path.map(String).join('.') || 'request';
  let value: unknown = raw;
  for (const part of issue.path) value = (value as Record<PropertyKey, unknown> | undefined)?.[part as string];
  if (value === undefined) {
    throw new ValidationError(`Missing value for required parameter '${field}'`, { field });
  }
  const shown = typeof value === 'string' ? JSON.stringify(value.slice(0, 64)) : typeof value;
  throw new ValidationError(`Invalid value ${shown} for parameter '${field}' supplied: ${issue.message}`, { field });
}

/**
 * The MLflow-compatible REST API as a `mount` for createApi: `/api/2.0/mlflow/...` (experiments, runs, metrics,
 * registered models, model versions, aliases, stages) and the `/api/2.0/mlflow-artifacts/artifacts` proxy storing
 * into the ArtifactStore, so the stock `mlflow` client runs unchanged with MLFLOW_TRACKING_URI pointing here and
 * MLFLOW_TRACKING_TOKEN holding an mlplane token. Each request is authenticated like /api/v1, works in one project
 * (`projectOf`), needs the permission PORT_PERMISSIONS gives its port operation there, and runs inside `actingAs`;
 * errors answer MLflow's `{error_code, message}`.
 */
export function mountMlflow(): (app: Hono<ApiEnv>, api: ApiInternals) => void {
  return (app, api) => {
    const { services } = api;
    const uris = new ArtifactUris(services.tracker, services.artifacts);
    const defaults = new DefaultExperiments(services);

    const fail = (c: Context<ApiEnv>, err: unknown, conflict?: MlflowErrorCode): Response => {
      const answer = mlflowError(err, conflict);
      // The shared error path logs what was unexpected under the request id; its body is not MLflow's.
      if (answer.unexpected) api.errorResponse(c, err);
      c.set('errorCode', answer.body.error_code);
      return c.json(answer.body, answer.status as 400, answer.headers as Record<string, string> | undefined);
    };

    /** Authenticates, rate-limits, picks the project and checks `operation`'s permission there. */
    const admit = async (c: Context<ApiEnv>, operation: string) => {
      const principal: Principal = await api.authenticate(c);
      await api.rateLimit(principal);
      const project = projectOf(c.req.raw, principal);
      const permission = permissionFor(operation);
      await services.authorizer.require(principal, permission, { project, kind: resourceKindOf(permission) });
      const context: MlflowContext = {
        project,
        principal,
        actor: actorOf(principal),
        services,
        uris,
        defaults,
        request: c.req.raw,
      };
      return context;
    };

    for (const prefix of MLFLOW_API_PREFIXES) {
      for (const route of mlflowRoutes) {
        const template = `${prefix}${route.path}`;
        app.on(route.method, template, async (c) => {
          c.set('route', template);
          try {
            const ctx = await admit(c, route.operation);
            const raw =
              route.method === 'GET'
                ? queryObject(new URL(c.req.url))
                : await readMessage(c.req.raw, api.limits.jsonBodyBytes);
            const input = parseMessage(route.input, raw);
            const result = await actingAs({ actor: ctx.actor, project: ctx.project }, () => route.handle(ctx, input));
            return c.json(result);
          } catch (err) {
            return fail(c, err, route.conflict);
          }
        });
      }
    }

    // The list (the prefix itself) goes first: hono's `/*` also matches the bare prefix.
    for (const op of [...artifactOperations].sort((a, b) => Number(a.withPath) - Number(b.withPath))) {
      const template = op.withPath ? `${MLFLOW_ARTIFACTS_PREFIX}/*` : MLFLOW_ARTIFACTS_PREFIX;
      app.on(op.method, template, async (c) => {
        c.set('route', `${MLFLOW_ARTIFACTS_PREFIX}${op.withPath ? '/{path}' : ''}`);
        try {
          const ctx = await admit(c, op.operation);
          const path = op.withPath ? artifactPathOf(new URL(c.req.url)) : '';
          return await actingAs({ actor: ctx.actor, project: ctx.project }, () => op.handle(ctx, path));
        } catch (err) {
          return fail(c, err);
        }
      });
    }

    // MLflow's answer for an endpoint it does not have (the REST API's newer parts, traces, logged models...).
    for (const prefix of [...MLFLOW_API_PREFIXES, '/api/2.0/mlflow-artifacts']) {
      app.all(`${prefix}/*`, (c) =>
        fail(
          c,
          new MlflowApiError('ENDPOINT_NOT_FOUND', `this server has no MLflow endpoint ${c.req.method} ${c.req.path}`),
        ),
      );
    }
  };
}
