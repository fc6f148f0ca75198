import type { Readable } from 'node:stream';
import {
  ConflictError,
  type MlplaneError,
  NotFoundError,
  PermissionDeniedError,
  UnavailableError,
  ValidationError,
} from '@mlplane/core';
import pRetry, { AbortError } from 'p-retry';
import { Pool } from 'undici';

/** How the client proves who it is: MLflow's `MLFLOW_TRACKING_TOKEN` (bearer) or basic auth (the auth app). */
export type MlflowAuth =
  | { readonly kind: 'none' }
  | { readonly kind: 'bearer'; readonly token: string }
  | { readonly kind: 'basic'; readonly username: string; readonly password: string };

export interface MlflowClientOptions {
  /** `http://host:port`, optionally with a path prefix where a proxy mounts the server (`https://x/mlflow`). */
  readonly trackingUri: string;
  readonly auth?: MlflowAuth;
  /** Keep-alive connections to the server; concurrent calls beyond it queue. */
  readonly connections: number;
  readonly connectTimeoutMs: number;
  /** Longest wait for a response's headers, and for each body chunk after them. */
  readonly requestTimeoutMs: number;
  /** Extra attempts for idempotent calls that met an outage (connection failure, 429, 5xx); 0 disables. */
  readonly retries: number;
  /**
   * How long an idle socket is kept for reuse. It must stay below the server's own idle timeout (uvicorn, which
   * `mlflow server` runs, closes after 5 s; gunicorn after 2 s), or a call may go out on a socket the server is
   * closing and fail with "other side closed". Default 2 s.
   */
  readonly keepAliveMs?: number;
  /** First retry delay; each next one doubles, up to 2 s. */
  readonly retryMinDelayMs?: number;
}

export interface CallOptions {
  /** GET: sent as the query string (arrays as repeated keys). Other methods: the JSON body. */
  readonly params?: Record<string, unknown>;
  /** Whether repeating the call after an outage cannot change the outcome; only such calls are retried. */
  readonly idempotent: boolean;
  /** A JSON body serialized by the caller, sent instead of `params` (log-batch builds its bodies itself). */
  readonly body?: string;
}

/** MLflow's error body: `{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "..."}`. */
interface MlflowErrorBody {
  readonly error_code?: string;
  readonly message?: string;
}

/** An error answered by the server, kept as the cause of the typed error it maps to. */
export class MlflowApiError extends Error {
  constructor(
    readonly status: number,
    readonly errorCode: string,
    /** The server's own words, which the typed error repeats. */
    readonly detail: string,
  ) {
    super(`MLflow answered ${status} ${errorCode}: ${detail}`);
    this.name = 'MlflowApiError';
  }
}

const RETRIABLE_STATUS = new Set([429, 500, 502, 503, 504]);

/**
 * MLflow's REST API 2.0 over one keep-alive undici pool. Maps MLflow's error codes to mlplane's typed errors,
 * connection failures to UnavailableError (with the cause), and retries idempotent calls with backoff.
 */
export class MlflowClient {
  readonly #pool: Pool;
  readonly #origin: string;
  readonly #prefix: string;
  readonly #headers: Record<string, string>;
  readonly #retries: number;
  readonly #retryMinDelayMs: number;
  /** Attempts repeated after an outage, for tests and telemetry. */
  retriesDone = 0;

  constructor(options: MlflowClientOptions) {
    const url = new URL(options.trackingUri);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new ValidationError(`trackingUri must be an http(s) URL, got '${options.trackingUri}'`, {
        field: 'trackingUri',
      });
    }
    this.#origin = url.origin;
    this.#prefix = url.pathname.replace(/\/+$/, '');
    this.#pool = new Pool(url.origin, {
      connections: options.connections,
      connectTimeout: options.connectTimeoutMs,
      headersTimeout: options.requestTimeoutMs,
      bodyTimeout: options.requestTimeoutMs,
      keepAliveTimeout: options.keepAliveMs ?? 2000,
      // The server sends no Keep-Alive header, so nothing should stretch the idle time past ours.
      keepAliveMaxTimeout: options.keepAliveMs ?? 2000,
    });
    this.#headers = { accept: 'application/json', ...authHeader(options.auth ?? { kind: 'none' }) };
    this.#retries = options.retries;
    this.#retryMinDelayMs = options.retryMinDelayMs ?? 100;
  }

  /** The server's base URL, for messages. */
  get trackingUri(): string {
    return `${this.#origin}${this.#prefix}`;
  }

  /** Calls `<prefix>/api/2.0/<path>` and returns the decoded JSON answer; typed errors otherwise. */
  async call<T>(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, options: CallOptions): Promise<T> {
    const isGet = method === 'GET';
    const target = `${this.#prefix}/api/2.0/${path}${isGet ? queryString(options.params) : ''}`;
    const body = isGet ? undefined : (options.body ?? encodeJson(options.params ?? {}));
    return this.#withRetry(options.idempotent, async () => {
      const res = await this.#request({
        method,
        path: target,
        headers: body === undefined ? this.#headers : { ...this.#headers, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body }),
      });
      const text = await res.body.text();
      if (res.statusCode >= 400) throw this.#apiError(res.statusCode, text, `${method} ${path}`);
      return (text === '' ? {} : JSON.parse(text)) as T;
    });
  }

  /**
   * PUT of raw bytes to the artifacts proxy (`<prefix>/api/2.0/mlflow-artifacts/artifacts/<path>`). A buffer is
   * retried after an outage (the same bytes replace the same file); a stream is sent once.
   */
  async upload(artifactPath: string, body: Uint8Array | Readable): Promise<void> {
    const retriable = body instanceof Uint8Array;
    await this.#withRetry(retriable, async () => {
      const res = await this.#request({
        method: 'PUT',
        path: `${this.#prefix}/api/2.0/mlflow-artifacts/artifacts/${encodePath(artifactPath)}`,
        headers: { ...this.#headers, 'content-type': 'application/octet-stream' },
        body,
      });
      const text = await res.body.text();
      if (res.statusCode >= 400) throw this.#apiError(res.statusCode, text, `upload of '${artifactPath}'`);
    });
  }

  /** Streams a file from the artifacts proxy; NotFoundError when there is none at `artifactPath`. */
  async download(artifactPath: string): Promise<{ body: Readable; size: number | undefined }> {
    return this.#withRetry(true, async () => {
      const res = await this.#request({
        method: 'GET',
        path: `${this.#prefix}/api/2.0/mlflow-artifacts/artifacts/${encodePath(artifactPath)}`,
        headers: this.#headers,
      });
      if (res.statusCode >= 400) {
        const text = await res.body.text();
        throw this.#apiError(res.statusCode, text, `download of '${artifactPath}'`);
      }
      const length = Number(res.headers['content-length']);
      return { body: res.body, size: Number.isSafeInteger(length) ? length : undefined };
    });
  }

  async close(): Promise<void> {
    await this.#pool.close();
  }

  async #request(options: Parameters<Pool['request']>[0]) {
    try {
      return await this.#pool.request(options);
    } catch (cause) {
      throw new UnavailableError(
        `the MLflow tracking server at ${this.trackingUri} did not answer ${options.method} ${options.path}: ${(cause as Error).message}`,
        { cause },
      );
    }
  }

  #withRetry<T>(idempotent: boolean, attempt: () => Promise<T>): Promise<T> {
    if (!idempotent || this.#retries === 0) return attempt();
    return pRetry(
      async (n) => {
        if (n > 1) this.retriesDone++;
        try {
          return await attempt();
        } catch (err) {
          // Outages are worth repeating, and so is a lost write race (the winner's row is there now, and the call
          // is idempotent); any other answer would come back the same.
          throw err instanceof UnavailableError || isWriteRace(err) ? err : new AbortError(err as Error);
        }
      },
      { retries: this.#retries, minTimeout: this.#retryMinDelayMs, maxTimeout: 2000, factor: 2, randomize: true },
    );
  }

  #apiError(status: number, text: string, what: string): MlplaneError {
    let parsed: MlflowErrorBody = {};
    try {
      parsed = JSON.parse(text) as MlflowErrorBody;
    } catch {
      // A proxy's HTML error page or an empty body: the status alone decides.
    }
    const code = parsed.error_code ?? `HTTP_${status}`;
    const message = parsed.message ?? (text.slice(0, 200) || `status ${status}`);
    return mapMlflowError(new MlflowApiError(status, code, message), what, this.trackingUri);
  }
}

/**
 * A unique-index violation the server reports as a bad request: two writers inserted the same row at once (a param
 * or an alias logged concurrently). The loser's write is a conflict, and repeating an idempotent one succeeds.
 */
const WRITE_RACE = /IntegrityError|UNIQUE constraint failed|UniqueViolation|duplicate key value|Duplicate entry/;

/** Whether `err` is a write that lost a race for the same row (see WRITE_RACE). */
export function isWriteRace(err: unknown): boolean {
  return err instanceof ConflictError && err.cause instanceof MlflowApiError && WRITE_RACE.test(err.cause.detail);
}

/** MLflow's error codes (databricks.proto ErrorCode) as mlplane's typed errors; the MLflow error is the cause. */
export function mapMlflowError(err: MlflowApiError, what: string, server: string): MlplaneError {
  const options = { cause: err };
  if (err.status < 500 && WRITE_RACE.test(err.detail)) {
    return new ConflictError(`a concurrent write to the same record won (${what}): ${err.detail}`, options);
  }
  switch (err.errorCode) {
    case 'RESOURCE_ALREADY_EXISTS':
      return new ConflictError(err.detail, options);
    case 'RESOURCE_DOES_NOT_EXIST':
    case 'NOT_FOUND':
    case 'ENDPOINT_NOT_FOUND':
      return new NotFoundError(err.detail, options);
    case 'INVALID_PARAMETER_VALUE':
    case 'BAD_REQUEST':
    case 'MALFORMED_REQUEST':
    case 'INVALID_ARGUMENT':
      return new ValidationError(err.detail, options);
    // A write to a deleted run or experiment, or another clash with the current state.
    case 'INVALID_STATE':
    case 'RESOURCE_CONFLICT':
    case 'ABORTED':
      return new ConflictError(err.detail, options);
    case 'PERMISSION_DENIED':
    case 'UNAUTHENTICATED':
    case 'CUSTOMER_UNAUTHORIZED':
      return new PermissionDeniedError(`the MLflow server refused ${what}: ${err.detail}`, options);
  }
  if (err.status === 401 || err.status === 403) {
    return new PermissionDeniedError(`the MLflow server refused ${what}: ${err.detail}`, options);
  }
  if (err.status === 404) return new NotFoundError(err.detail, options);
  if (RETRIABLE_STATUS.has(err.status) || err.status >= 500) {
    return new UnavailableError(`the MLflow tracking server at ${server} failed ${what}: ${err.detail}`, options);
  }
  return new ValidationError(err.detail, options);
}

function authHeader(auth: MlflowAuth): Record<string, string> {
  switch (auth.kind) {
    case 'bearer':
      return { authorization: `Bearer ${auth.token}` };
    case 'basic':
      return { authorization: `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}` };
    default:
      return {};
  }
}

function queryString(params: Record<string, unknown> | undefined): string {
  if (!params) return '';
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined) continue;
    for (const item of Array.isArray(value) ? value : [value]) search.append(key, String(item));
  }
  const s = search.toString();
  return s === '' ? '' : `?${s}`;
}

/** Artifact paths keep their slashes; each segment is percent-encoded. */
function encodePath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/');
}

/** JSON with MLflow's spelling of non-finite doubles (`"NaN"`, `"Infinity"`, `"-Infinity"`); JSON has none. */
function encodeJson(value: unknown): string {
  return JSON.stringify(value, (_key, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v));
}
