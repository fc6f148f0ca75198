import { definePlugin, experimentTrackerRef, modelRegistryRef } from '@mlplane/core';
import { z } from 'zod';
import { type MlflowAuth, MlflowClient } from './client.js';
import { MlflowModelRegistry } from './registry.js';
import { MlflowExperimentTracker } from './tracker.js';

const authSchema = z
  .discriminatedUnion('kind', [
    z.object({ kind: z.literal('none') }),
    /** MLflow's MLFLOW_TRACKING_TOKEN; use `${secret:...}`. */
    z.object({ kind: z.literal('bearer'), token: z.string().min(1) }),
    /** The basic-auth app (`mlflow server --app-name basic-auth`); use `${secret:...}` for the password. */
    z.object({ kind: z.literal('basic'), username: z.string().min(1), password: z.string().min(1) }),
  ])
  .default({ kind: 'none' });

export const mlflowConfigSchema = z.object({
  /** The tracking server, e.g. `http://127.0.0.1:5000` or `https://mlflow.example.com/prefix`. */
  trackingUri: z.url({ protocol: /^https?$/ }),
  auth: authSchema,
  /** Keep-alive connections to the server; concurrent calls beyond it wait for one. */
  connections: z.number().int().positive().max(1024).default(16),
  connectTimeoutMs: z.number().int().positive().default(10_000),
  /** Longest wait for a response's headers, and between body chunks. */
  requestTimeoutMs: z.number().int().positive().default(60_000),
  /** Extra attempts for idempotent calls after an outage (connection refused, 429, 5xx), with backoff. */
  retries: z.number().int().min(0).max(10).default(3),
  /** Idle sockets are reused this long; keep it below the server's idle timeout (uvicorn 5 s, gunicorn 2 s). */
  keepAliveMs: z.number().int().positive().default(2000),
});

export type MlflowConfig = z.output<typeof mlflowConfigSchema>;

/** Opens the client that a tracker and registry share; the caller closes it. */
export function mlflowClient(config: MlflowConfig): MlflowClient {
  return new MlflowClient({
    trackingUri: config.trackingUri,
    auth: config.auth as MlflowAuth,
    connections: config.connections,
    connectTimeoutMs: config.connectTimeoutMs,
    requestTimeoutMs: config.requestTimeoutMs,
    retries: config.retries,
    keepAliveMs: config.keepAliveMs,
  });
}

/**
 * ExperimentTracker and ModelRegistry on an MLflow tracking server (REST API 2.0): runs, metrics, artifacts through
 * the server's artifacts proxy, registered models, versions, stages and aliases. Both share one connection pool.
 */
export const mlflowPlugin = definePlugin({
  id: 'mlflow',
  description: 'ExperimentTracker and ModelRegistry backed by an MLflow tracking server',
  configSchema: mlflowConfigSchema,
  register(env) {
    // One pool for both services, closed when the last of them is disposed.
    let shared: MlflowClient | undefined;
    let users = 0;
    const acquire = (config: MlflowConfig) => {
      shared ??= mlflowClient(config);
      users++;
      return shared;
    };
    const release = async () => {
      if (--users > 0 || !shared) return;
      const client = shared;
      shared = undefined;
      await client.close();
    };
    env.provide(experimentTrackerRef, {
      factory: ({ config }) => new MlflowExperimentTracker(acquire(config)),
      dispose: release,
    });
    env.provide(modelRegistryRef, {
      factory: ({ config }) => new MlflowModelRegistry(acquire(config)),
      dispose: release,
    });
  },
});
