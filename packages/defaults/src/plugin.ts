import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import {
  artifactStoreRef,
  computeBackendRef,
  coreServices,
  createServiceRef,
  definePlugin,
  eventBusRef,
  experimentTrackerRef,
  metadataStoreRef,
  secretStoreRef,
  telemetryRef,
} from '@mlplane/core';
import { z } from 'zod';
import { LocalArtifactStore } from './artifact-store/local-artifact-store.js';
import { type JobTracking, LocalComputeBackend } from './compute/local-compute-backend.js';

/**
 * Where the embedded ComputeBackend's jobs send their MLflow clients: a host that serves the tracking API after the
 * platform started (`mlplane up`) sets `uri` and `tokenFor` here, and each job launched afterwards gets
 * MLFLOW_TRACKING_URI and a token scoped to its project.
 */
export const localComputeTrackingRef = createServiceRef<JobTracking>({ id: 'embedded.computeTracking' });

import { DataDirOwnership } from './data-dir.js';
import { InProcessEventBus } from './event-bus/in-process-event-bus.js';
import { SqliteMetadataStore } from './metadata-store/sqlite-metadata-store.js';
import { EnvFileSecretStore } from './secret-store/file-secret-store.js';
import { createEmbeddedTelemetry } from './telemetry/embedded-telemetry.js';

/** The local ComputeBackend's settings (docs/plugins/local-compute.md). */
export const localComputeConfigSchema = z.object({
  /** Cores jobs may hold at once; default the host's available parallelism. */
  cpu: z.number().positive().optional(),
  /** Memory jobs may hold at once, a quantity (`16Gi`); default the host's total memory. */
  memory: z.string().min(1).optional(),
  /**
   * GPUs to hand out through CUDA_VISIBLE_DEVICES: a count (devices 0..n-1) or device ids (`["0", "2"]`, UUIDs).
   * Default: what nvidia-smi reports, none without it.
   */
  gpus: z.union([z.number().int().nonnegative(), z.array(z.string().min(1))]).optional(),
  /** Experiment (by name) in which jobs whose spec names none get their tracker run. */
  experiment: z.string().min(1).default('Default'),
  /** ArtifactStore prefix of the logs of finished attempts. */
  logPrefix: z.string().min(1).default('compute/logs'),
  /** Milliseconds between SIGTERM and SIGKILL when a job is cancelled, times out or restarts. */
  killGraceMs: z
    .number()
    .int()
    .nonnegative()
    .max(2 ** 31 - 1)
    .default(5_000),
  /** Delay before a failed job's next attempt, doubled at each restart up to 60 s. */
  restartBackoffMs: z.number().int().nonnegative().max(60_000).default(1_000),
  /** Environment variables of the platform's process that jobs inherit; nothing else is passed on. */
  inheritEnv: z.array(z.string().min(1)).optional(),
  /** Working directory of replicas whose group sets none; default the platform's. */
  workingDir: z.string().min(1).optional(),
  /** MLFLOW_TRACKING_URI given to every replica, so that stock MLflow clients reach the platform's tracker. */
  trackingUri: z.string().min(1).optional(),
});
export type LocalComputeConfig = z.output<typeof localComputeConfigSchema>;

export const embeddedConfigSchema = z.object({
  /**
   * Everything the embedded defaults keep on disk lives under this directory, created private to the user (0700,
   * files 0600). One platform owns it at a time, from the first embedded service that keeps files there until
   * the platform stops; a second one fails with the owner's pid (see docs/security.md).
   */
  dataDir: z.string().default('.mlplane'),
  secrets: z
    .object({
      /** Encrypted secrets file; relative paths are under dataDir. */
      file: z.string().default('secrets.enc'),
      /**
       * 32-byte key, base64 or hex; use `${env:MLPLANE_MASTER_KEY}`. When absent, the key is read from
       * `masterKeyFile`, and generated there once (mode 0600) when that file does not exist.
       */
      masterKey: z.string().optional(),
      /**
       * Where the key lives when `masterKey` is not given; relative paths are under dataDir. The default keeps it
       * next to the file it decrypts, which suits one machine: put it elsewhere (a mounted secret, another disk)
       * so that a copy of the data dir alone does not reveal the secrets.
       */
      masterKeyFile: z.string().default('master.key'),
    })
    .default({ file: 'secrets.enc', masterKeyFile: 'master.key' }),
  metadata: z
    .object({
      /** SQLite database file; relative paths are under dataDir. */
      file: z.string().default('metadata.db'),
      /** FULL survives power loss; NORMAL (WAL) only loses the last commits on an OS crash. */
      synchronous: z.enum(['FULL', 'NORMAL']).default('FULL'),
    })
    .default({ file: 'metadata.db', synchronous: 'FULL' }),
  /** The local ComputeBackend: jobs as process groups on this host, within CPU, memory and GPU slots. */
  compute: localComputeConfigSchema.default({
    experiment: 'Default',
    logPrefix: 'compute/logs',
    killGraceMs: 5_000,
    restartBackoffMs: 1_000,
  }),
});
export type EmbeddedConfig = z.output<typeof embeddedConfigSchema>;

/**
 * The embedded defaults: every port they cover works on one machine with no servers. Each provision is a
 * default, so installing a plugin that provides the same port replaces it without further config.
 */
export const embeddedPlugin = definePlugin({
  id: 'embedded',
  description:
    'Embedded defaults: SQLite metadata store, local artifact store, in-process event bus, env + encrypted-file ' +
    'secrets, telemetry and local process compute',
  configSchema: embeddedConfigSchema,
  register(env) {
    // register runs once per platform, so this is the hold of this platform on its data dir.
    const dataDirOwner = new DataDirOwnership();
    /** Creates a service that keeps files in the data dir, holding a share of the data dir while it lives. */
    const inDataDir =
      <T>(create: (dataDir: string, config: EmbeddedConfig) => Promise<T>) =>
      async ({ config }: { config: EmbeddedConfig }): Promise<T> => {
        const dataDir = await dataDirOwner.acquire(config.dataDir);
        try {
          return await create(dataDir, config);
        } catch (err) {
          await dataDirOwner.release();
          throw err;
        }
      };
    // Every provision below except telemetry keeps its data on this machine (`local`): with `platform.strict` the
    // kernel refuses to fall back to it unless config platform.providers chooses it.
    env.provide(artifactStoreRef, {
      asDefault: true,
      local: true,
      factory: inDataDir((dataDir) => LocalArtifactStore.open({ root: join(dataDir, 'artifacts') })),
      dispose: async (store) => {
        // The factory above made it; the port type does not know close().
        await (store as LocalArtifactStore).close();
        await dataDirOwner.release();
      },
    });
    env.provide(eventBusRef, {
      asDefault: true,
      local: true,
      factory: () => new InProcessEventBus(),
      dispose: (bus) => bus.close(),
    });
    env.provide(secretStoreRef, {
      asDefault: true,
      local: true,
      factory: inDataDir(
        async (dataDir, config) =>
          new EnvFileSecretStore({
            path: resolve(dataDir, config.secrets.file),
            masterKey:
              config.secrets.masterKey ?? (await localMasterKey(resolve(dataDir, config.secrets.masterKeyFile))),
          }),
      ),
      dispose: () => dataDirOwner.release(),
    });
    env.provide(metadataStoreRef, {
      asDefault: true,
      local: true,
      factory: inDataDir((dataDir, config) =>
        SqliteMetadataStore.open({
          path: resolve(dataDir, config.metadata.file),
          synchronous: config.metadata.synchronous,
        }),
      ),
      dispose: async (store) => {
        await store.close();
        await dataDirOwner.release();
      },
    });
    env.provide(localComputeTrackingRef, { factory: (): JobTracking => ({}) });
    env.provide(computeBackendRef, {
      asDefault: true,
      local: true,
      deps: {
        tracking: localComputeTrackingRef,
        store: metadataStoreRef,
        artifacts: artifactStoreRef,
        secrets: secretStoreRef,
        tracker: experimentTrackerRef,
        logger: coreServices.logger,
      },
      factory: ({ tracking, store, artifacts, secrets, tracker, logger, config }) =>
        inDataDir((dataDir) => {
          const c = config.compute;
          return LocalComputeBackend.open({
            store,
            artifacts,
            secrets,
            tracker,
            logger,
            workDir: join(dataDir, 'compute'),
            capacity: {
              ...(c.cpu !== undefined ? { cpu: c.cpu } : {}),
              ...(c.memory !== undefined ? { memory: c.memory } : {}),
              ...(c.gpus !== undefined ? { gpus: c.gpus } : {}),
            },
            experiment: c.experiment,
            logPrefix: c.logPrefix,
            killGraceMs: c.killGraceMs,
            restartBackoffMs: c.restartBackoffMs,
            ...(c.inheritEnv ? { inheritEnv: c.inheritEnv } : {}),
            ...(c.workingDir ? { workingDir: resolve(c.workingDir) } : {}),
            ...(c.trackingUri ? { trackingUri: c.trackingUri } : {}),
            tracking,
          });
        })({ config }),
      dispose: async (backend) => {
        // Running jobs keep running: the next platform on this data dir finds them again.
        await (backend as LocalComputeBackend).close();
        await dataDirOwner.release();
      },
    });
    env.provide(telemetryRef, {
      asDefault: true,
      deps: { logger: coreServices.logger },
      factory: ({ logger }) => createEmbeddedTelemetry({ logger }),
    });
  },
});

async function localMasterKey(path: string): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const key = randomBytes(32).toString('base64');
  try {
    // 'wx' so two processes starting together agree on the first key written.
    await writeFile(path, `${key}\n`, { mode: 0o600, flag: 'wx' });
    return key;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return (await readFile(path, 'utf8')).trim();
    throw err;
  }
}
