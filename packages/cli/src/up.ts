import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  ALL_PROJECTS,
  type Authorizer,
  actingAs,
  authorizerRef,
  deepMerge,
  loadConfig,
  type Platform,
  type RawConfig,
  telemetryRef,
  WiringError,
} from '@mlplane/core';
import { localComputeTrackingRef } from '@mlplane/defaults';
import { PipelineOrchestrator } from '@mlplane/pipelines';
import {
  API_V1,
  createApi,
  createTelemetry,
  type MlplaneApi,
  mountMlflow,
  type RateLimitOptions,
  type ServedApi,
  serve,
  v1Routes,
} from '@mlplane/server';
import { createReferencePlatform } from './distribution.js';
import { ADMIN_TOKEN_FILE } from './files.js';

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export interface UpOptions {
  /** Where the embedded defaults keep their data and `admin-token` is written; default the config's, else `.mlplane`. */
  readonly dataDir?: string;
  /** Default 8080; 0 picks a free port. */
  readonly port?: number;
  /** Default 127.0.0.1; 0.0.0.0 to listen on every interface (behind a proxy, in a container). */
  readonly host?: string;
  /**
   * A production config file: its sections install the production plugins, and `platform.strict` is on unless the
   * file turns it off. Without one, `$MLPLANE_CONFIG` or `./mlplane.yaml` is read as before, strict only if it says so.
   */
  readonly config?: string;
  /** Environment for config overrides and `${env:...}`; default process.env. */
  readonly env?: NodeJS.ProcessEnv;
  /** The URL the OpenAPI document names as its server (where a proxy exposes the API). */
  readonly publicUrl?: string;
  /**
   * Serve /metrics without a token. Off by default: a scrape then needs a token holding `telemetry.read` in every
   * project; turn it on only where the network keeps strangers away from the port.
   */
  readonly publicMetrics?: boolean;
  /**
   * The API's per-token rate limit (createApi's `rateLimit`: 2,000 requests a second per token by default); for a
   * program embedding `up`, such as the API benchmark, whose clients all share one token.
   */
  readonly rateLimit?: RateLimitOptions;
}

/** The principal `up` creates on a first start, holding `admin` in every project. */
export const ADMIN_PRINCIPAL = 'admin';
const ADMIN_TOKEN_DAYS = 365;
const DAY_MS = 86_400_000;

export interface RunningDistribution {
  readonly platform: Platform;
  readonly api: MlplaneApi;
  readonly served: ServedApi;
  readonly dataDir: string;
  /** The config file read, if any. */
  readonly configFile: string | undefined;
  /** Signals on which `up` stops gracefully (the config's `platform.signals`). */
  readonly signals: readonly NodeJS.Signals[];
  /** Set on the start that created the admin token (the first one for this data dir): the secret, to show once. */
  readonly newAdminToken: string | undefined;
  /** Where the admin token is kept (mode 600). */
  readonly adminTokenFile: string;
  /** Links to print. */
  readonly urls: {
    readonly api: string;
    readonly docs: string;
    readonly openapi: string;
    /** MLFLOW_TRACKING_URI for the stock mlflow client. */
    readonly mlflow: string;
    /** Prometheus metrics (a token with `telemetry.read` in `*` unless `publicMetrics`). */
    readonly metrics: string;
  };
  /**
   * Stops gracefully: the HTTP server takes no new connection and lets requests in flight finish (within the
   * platform's shutdown deadline), then the platform stops (the outbox relay hands over what it holds, stores close).
   * Resolves with whether everything finished in time.
   */
  stop(): Promise<{ readonly clean: boolean }>;
}

/**
 * Starts the reference distribution as `mlplane up` runs it: the platform (embedded defaults, or the production
 * plugins of the config), its background workers (outbox relay, audit consumer, webhooks, retention), the HTTP API on
 * `port`, and on a first start an admin principal with a token written to `<dataDir>/admin-token`.
 */
export async function startDistribution(options: UpOptions = {}): Promise<RunningDistribution> {
  const env = options.env ?? process.env;
  const configFile = options.config ?? env.MLPLANE_CONFIG ?? (existsSync('mlplane.yaml') ? 'mlplane.yaml' : undefined);
  let config: RawConfig = await loadConfig({ files: configFile ? [configFile] : [], env });
  const fileSection = (name: string): Record<string, unknown> =>
    isPlainObject(config[name]) ? (config[name] as Record<string, unknown>) : {};

  const dataDir = resolve(options.dataDir ?? (fileSection('embedded').dataDir as string | undefined) ?? '.mlplane');
  const platformSection = fileSection('platform');
  const signals = (platformSection.signals as NodeJS.Signals[] | undefined) ?? ['SIGTERM', 'SIGINT'];
  config = deepMerge(config, {
    embedded: { dataDir },
    // `up` handles the signals itself, so that the HTTP server drains before the platform stops.
    platform: {
      signals: [],
      ...(options.config !== undefined && platformSection.strict === undefined ? { strict: true } : {}),
    },
  });

  const platform = createReferencePlatform(config);
  await platform.start();
  let served: ServedApi | undefined;
  try {
    const { logger } = await platform.get(telemetryRef);
    const port = options.port ?? 8080;
    // Prometheus /metrics, request metrics per route, and each request's trace and log context.
    const telemetry = await createTelemetry(platform, { publicMetrics: options.publicMetrics ?? false });
    // Pipeline runs are served read-only (their steps and cache explanations); the workspace is where steps
    // exchange files, inside the data dir.
    const pipelineRuns = await PipelineOrchestrator.forPlatform(platform, { workspace: join(dataDir, 'pipelines') });
    const api = await createApi(v1Routes, {
      platform,
      pipelineRuns,
      logger: telemetry.logger,
      observer: telemetry.observer,
      ...(options.publicUrl ? { publicUrl: options.publicUrl } : {}),
      // Beside /api/v1: /metrics, and the MLflow-compatible API (/api/2.0/mlflow: the stock mlflow client's
      // MLFLOW_TRACKING_URI is this server).
      mount: [...telemetry.mount, mountMlflow()],
      ...(options.rateLimit ? { rateLimit: options.rateLimit } : {}),
    });
    served = await serve(api, {
      port,
      ...(options.host ? { host: options.host } : {}),
      closeDeadlineMs: platform.platformConfig?.shutdownDeadlineMs ?? 10_000,
    });
    // After the port is taken: a start that fails there issues no token, so the first one that succeeds shows it.
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    const authorizer = await platform.get(authorizerRef);
    const admin = await ensureAdminToken(authorizer, dataDir);
    const base = options.publicUrl?.replace(/\/+$/, '') ?? served.url;
    await connectJobsToTracking(platform, authorizer, served.url);
    const urls = {
      api: `${base}${API_V1}`,
      docs: `${base}${API_V1}/docs`,
      openapi: `${base}${API_V1}/openapi.json`,
      mlflow: base,
      metrics: `${base}/metrics`,
    };
    const httpServer = served;
    let stopping: Promise<{ clean: boolean }> | undefined;
    return {
      platform,
      api,
      served: httpServer,
      dataDir,
      configFile,
      signals,
      newAdminToken: admin.created ? admin.secret : undefined,
      adminTokenFile: admin.file,
      urls,
      stop: () => {
        stopping ??= (async () => {
          const { cut } = await httpServer.close();
          let platformStopped = true;
          await platform.stop().catch((err: unknown) => {
            platformStopped = false;
            logger.error({ err }, 'platform stopped with errors');
          });
          if (cut > 0) logger.warn({ cut }, 'requests still running at the shutdown deadline were cut');
          return { clean: cut === 0 && platformStopped };
        })();
        return stopping;
      },
    };
  } catch (err) {
    await served?.close(0);
    await platform.stop().catch(() => undefined);
    throw err;
  }
}

/** The principal jobs' MLflow clients log as: `editor` in each project it has run a job for. */
export const JOBS_PRINCIPAL = 'jobs';
const JOB_TOKEN_DAYS = 7;

/**
 * Jobs of the embedded ComputeBackend get MLFLOW_TRACKING_URI (this server) and a token scoped to their project, so
 * that training code logs with the stock mlflow client unchanged. Each launch gets its own token, acting for the
 * `jobs` principal with `editor` in that project only, expiring after 7 days. Platforms whose ComputeBackend is not
 * the embedded one (Kubernetes) configure tracking through that plugin.
 */
async function connectJobsToTracking(platform: Platform, authorizer: Authorizer, url: string): Promise<void> {
  const tracking = await platform.get(localComputeTrackingRef).catch((err: unknown) => {
    if (err instanceof WiringError) return undefined;
    throw err;
  });
  if (!tracking) return;
  tracking.uri = url;
  tracking.tokenFor = (project, job) =>
    actingAs({ actor: 'mlplane-up', project }, async () => {
      await authorizer.grant(JOBS_PRINCIPAL, project, 'editor');
      const created = await authorizer.createToken({
        principal: await authorizer.getPrincipal(JOBS_PRINCIPAL, 'service'),
        name: `job ${job.id}`,
        projects: [project],
        roles: ['editor'],
        expiresAt: new Date(Date.now() + JOB_TOKEN_DAYS * DAY_MS),
      });
      return created.secret;
    });
}

/**
 * The admin token of this data dir: read from `<dataDir>/admin-token` when there, else created (principal `admin`
 * granted `admin` in every project, a token of 365 days) and written there with mode 600. Deleting the file and
 * starting again issues a new token; revoke the old one with `mlplane tokens revoke`.
 */
export async function ensureAdminToken(
  authorizer: Authorizer,
  dataDir: string,
): Promise<{ secret: string; created: boolean; file: string }> {
  const file = join(dataDir, ADMIN_TOKEN_FILE);
  const existing = await readFile(file, 'utf8').then(
    (text) => text.trim(),
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    },
  );
  if (existing) return { secret: existing, created: false, file };
  const created = await actingAs({ actor: 'mlplane-up' }, async () => {
    await authorizer.grant(ADMIN_PRINCIPAL, ALL_PROJECTS, 'admin');
    return authorizer.createToken({
      principal: await authorizer.getPrincipal(ADMIN_PRINCIPAL, 'user'),
      name: 'admin (mlplane up)',
      projects: [ALL_PROJECTS],
      roles: ['admin'],
      expiresAt: new Date(Date.now() + ADMIN_TOKEN_DAYS * DAY_MS),
    });
  });
  try {
    // 'wx': a file another start wrote meanwhile wins, and this token is revoked below.
    await writeFile(file, `${created.secret}\n`, { mode: 0o600, flag: 'wx' });
    await chmod(file, 0o600);
    return { secret: created.secret, created: true, file };
  } catch (err) {
    await authorizer.revokeToken(created.id);
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return ensureAdminToken(authorizer, dataDir);
    throw err;
  }
}
