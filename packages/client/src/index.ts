/**
 * @mlplane/client: a typed client for the mlplane HTTP API. Paths, parameters, bodies and answers are the types
 * openapi-typescript writes from the server's OpenAPI document (`src/schema.ts`, regenerated from the route table and
 * checked against it by a test), called through openapi-fetch:
 *
 *     const client = createClient({ url: 'http://127.0.0.1:8080', token: process.env.MLPLANE_TOKEN });
 *     const experiment = await ok(client.POST('/api/v1/projects/{project}/experiments', {
 *       params: { path: { project: 'default' } }, body: { name: 'fraud' } }));
 *
 * Every answer that is not a 2xx rejects with an ApiError carrying the server's `{code, message, details}`.
 */
import createFetchClient, {
  type Client,
  defaultPathSerializer,
  type Middleware,
  type PathSerializer,
} from 'openapi-fetch';
import { type operations, type paths, restPathParameters } from './schema.js';

export type { operations, paths } from './schema.js';

/** The API's one error shape, with the HTTP status; `status` 0 means no answer came (unreachable, refused, reset). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    /** The server's stable code (VALIDATION, UNAUTHENTICATED, PERMISSION_DENIED, NOT_FOUND...), or UNREACHABLE. */
    readonly code: string,
    message: string,
    readonly details?: Readonly<Record<string, unknown>>,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ApiError';
  }
}

export interface ClientOptions {
  /** Where the server is: `http://127.0.0.1:8080` (the API's own paths start with /api/v1). */
  readonly url: string;
  /** An API token (`mlp_...`), sent as `Authorization: Bearer`. */
  readonly token?: string;
  /** Extra headers on every request (a proxy's own credentials). */
  readonly headers?: Readonly<Record<string, string>>;
  /** Another fetch (tests, an undici dispatcher); default the global one. */
  readonly fetch?: (request: Request) => Promise<Response>;
}

/** The typed client: `GET`, `POST`, `PUT`, `PATCH`, `DELETE` over /api/v1 paths, rejecting with ApiError. */
export type MlplaneClient = Client<paths>;

/** Creates a client whose every call either answers the route's typed body or rejects with an ApiError. */
export function createClient(options: ClientOptions): MlplaneClient {
  const client = createFetchClient<paths>({
    baseUrl: options.url.replace(/\/+$/, ''),
    headers: {
      ...options.headers,
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
    },
    ...(options.fetch ? { fetch: options.fetch } : {}),
    pathSerializer: restAwarePaths,
  });
  client.use(apiErrors(options.url));
  return client;
}

/** Rest parameters (an artifact's `a/b/model.pkl`) keep their slashes; every other parameter is encoded whole. */
const restAwarePaths: PathSerializer = (url, params) => {
  // openapi-fetch hands in the base URL followed by the path template.
  let path = url;
  for (const [template, names] of Object.entries(restPathParameters)) {
    if (!url.endsWith(template)) continue;
    for (const name of names) {
      const value = params[name];
      if (typeof value === 'string')
        path = path.replace(`{${name}}`, value.split('/').map(encodeURIComponent).join('/'));
    }
  }
  return defaultPathSerializer(path, params);
};

/** Turns error answers and failed connections into ApiErrors. */
function apiErrors(url: string): Middleware {
  return {
    async onResponse({ response }) {
      if (response.ok) return undefined;
      throw await apiErrorOf(response);
    },
    onError({ error }) {
      if (error instanceof ApiError) return error;
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      const reason = cause?.code ?? cause?.message ?? (error as Error).message;
      return new ApiError(0, 'UNREACHABLE', `cannot reach the mlplane server at ${url}: ${reason}`, undefined, {
        cause: error,
      });
    },
  };
}

/** The ApiError an error answer stands for; answers that are not the API's JSON (a proxy's page) keep their status. */
export async function apiErrorOf(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { code?: unknown; message?: unknown; details?: unknown };
    if (typeof body.code === 'string' && typeof body.message === 'string') {
      const details =
        typeof body.details === 'object' && body.details !== null
          ? (body.details as Record<string, unknown>)
          : undefined;
      return new ApiError(response.status, body.code, body.message, details);
    }
  } catch {}
  const firstLine = text.split('\n', 1)[0]!.trim().slice(0, 200);
  return new ApiError(
    response.status,
    `HTTP_${response.status}`,
    `the server answered ${response.status} ${response.statusText}${firstLine ? `: ${firstLine}` : ''}`.trim(),
  );
}

/**
 * The body of a successful call (`await ok(client.GET(...))`). Calls of a client from `createClient` already
 * reject on errors; this also turns the `error` of any openapi-fetch client into an ApiError.
 */
export async function ok<Data>(pending: Promise<{ data?: Data; error?: unknown; response: Response }>): Promise<Data> {
  const { data, error, response } = await pending;
  if (error !== undefined || !response.ok) {
    const body = (error ?? {}) as { code?: string; message?: string; details?: Record<string, unknown> };
    throw new ApiError(
      response.status,
      body.code ?? `HTTP_${response.status}`,
      body.message ?? `the server answered ${response.status}`,
      body.details,
    );
  }
  return data as Data;
}

type JsonBody<Response> = Response extends { content: { 'application/json': infer Body } } ? Body : never;

/** The JSON answer of an operation by its operationId: `ResultOf<'getRun'>`. */
export type ResultOf<Operation extends keyof operations> = {
  [Status in keyof operations[Operation]['responses']]: Status extends 200 | 201
    ? JsonBody<operations[Operation]['responses'][Status]>
    : never;
}[keyof operations[Operation]['responses']];

/** The JSON body an operation takes: `BodyOf<'createExperiment'>`. */
export type BodyOf<Operation extends keyof operations> = operations[Operation] extends {
  requestBody: { content: { 'application/json': infer Body } };
}
  ? Body
  : never;

export type Experiment = ResultOf<'getExperiment'>;
export type Run = ResultOf<'getRun'>;
export type TokenInfo = ResultOf<'listTokens'>['items'][number];
