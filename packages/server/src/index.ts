/**
 * @mlplane/server: the platform's HTTP API as a Node request listener. `createApi(v1Routes, { platform })` serves
 * /api/v1 (OpenAPI at /api/v1/openapi.json, docs at /api/v1/docs), /health and /ready; mount `api.listener` in
 * `http.createServer`, Express or fastify, or serve it on its own port with `serve(api, { port })`.
 */
export type {
  ApiEnv,
  ApiInternals,
  ApiLimits,
  ApiObserver,
  CreateApiOptions,
  MlplaneApi,
  RateLimitOptions,
} from './http/app.js';
export { API_V1, createApi } from './http/app.js';
export type { AuthenticateRequest } from './http/auth.js';
export { actorOf } from './http/auth.js';
export type { ApiErrorBody } from './http/errors.js';
export { errorResponse, HttpError } from './http/errors.js';
export type { OpenApiDocument } from './http/openapi.js';
export { buildOpenApi } from './http/openapi.js';
export { DEFAULT_PROJECT, PROJECT_TAG, ProjectScope, RESERVED_TAG_PREFIX } from './http/projects.js';
export type { HttpMethod, RouteContext, RouteDefinition, RouteScope, StreamedResult } from './http/route.js';
export { defineRoute } from './http/route.js';
export type { ApiServices } from './http/services.js';
export type { MlflowErrorBody, MlflowErrorCode } from './mlflow/index.js';
export {
  DEFAULT_EXPERIMENT_ID,
  defaultExperimentName,
  MLFLOW_API_PREFIXES,
  MLFLOW_ARTIFACTS_PREFIX,
  MLFLOW_ERROR_STATUS,
  mlflowRoutes,
  mountMlflow,
  PROJECT_HEADER,
} from './mlflow/index.js';
export { v1Routes } from './routes/index.js';
export type { ServedApi, ServeOptions } from './serve.js';
export { serve } from './serve.js';
export type { ServerTelemetry, TelemetryOptions } from './telemetry/telemetry.js';
export { createTelemetry, UNMATCHED_ROUTE } from './telemetry/telemetry.js';
