import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  artifactStoreRef,
  coreServices,
  definePlugin,
  eventBusRef,
  metadataStoreRef,
  secretStoreRef,
  telemetryRef,
} from '@mlplane/core';
import { z } from 'zod';
import { LocalArtifactStore } from './artifact-store/local-artifact-store.js';
import { InProcessEventBus } from './event-bus/in-process-event-bus.js';
import { SqliteMetadataStore } from './metadata-store/sqlite-metadata-store.js';
import { EnvFileSecretStore } from './secret-store/file-secret-store.js';
import { createEmbeddedTelemetry } from './telemetry/embedded-telemetry.js';

export const embeddedConfigSchema = z.object({
  /** Everything the embedded defaults keep on disk lives under this directory. */
  dataDir: z.string().default('.mlplane'),
  secrets: z
    .object({
      /** Encrypted secrets file; relative paths are under dataDir. */
      file: z.string().default('secrets.enc'),
      /**
       * 32-byte key, base64 or hex; use `${env:MLPLANE_MASTER_KEY}`. When absent, a key is generated once into
       * `<dataDir>/master.key` (mode 0600), which suits a single machine, not a shared deployment.
       */
      masterKey: z.string().optional(),
    })
    .default({ file: 'secrets.enc' }),
  metadata: z
    .object({
      /** SQLite database file; relative paths are under dataDir. */
      file: z.string().default('metadata.db'),
      /** FULL survives power loss; NORMAL (WAL) only loses the last commits on an OS crash. */
      synchronous: z.enum(['FULL', 'NORMAL']).default('FULL'),
    })
    .default({ file: 'metadata.db', synchronous: 'FULL' }),
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
    'secrets and telemetry',
  configSchema: embeddedConfigSchema,
  register(env) {
    env.provide(artifactStoreRef, {
      asDefault: true,
      factory: ({ config }) => new LocalArtifactStore({ root: join(resolve(config.dataDir), 'artifacts') }),
    });
    env.provide(eventBusRef, {
      asDefault: true,
      factory: () => new InProcessEventBus(),
      dispose: (bus) => bus.close(),
    });
    env.provide(secretStoreRef, {
      asDefault: true,
      factory: async ({ config }) => {
        const dataDir = resolve(config.dataDir);
        return new EnvFileSecretStore({
          path: resolve(dataDir, config.secrets.file),
          masterKey: config.secrets.masterKey ?? (await localMasterKey(dataDir)),
        });
      },
    });
    env.provide(metadataStoreRef, {
      asDefault: true,
      factory: ({ config }) =>
        SqliteMetadataStore.open({
          path: resolve(resolve(config.dataDir), config.metadata.file),
          synchronous: config.metadata.synchronous,
        }),
      dispose: (store) => store.close(),
    });
    env.provide(telemetryRef, {
      asDefault: true,
      deps: { logger: coreServices.logger },
      factory: ({ logger }) => createEmbeddedTelemetry({ logger }),
    });
  },
});

async function localMasterKey(dataDir: string): Promise<string> {
  const path = join(dataDir, 'master.key');
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdir(dataDir, { recursive: true });
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
