import { definePlugin, metadataStoreRef } from '@mlplane/core';
import { z } from 'zod';
import { PostgresMetadataStore } from './postgres-metadata-store.js';

/**
 * The MetadataStore on PostgreSQL. The tracker, registry, audit log, authorizer and outbox relay of the embedded
 * defaults run on it unchanged, since they only know the MetadataStore port.
 */
export const postgresPlugin = definePlugin({
  id: 'postgres',
  configSchema: z.object({
    /** `postgres://user:password@host:5432/db`; use `${secret:...}` for the password. */
    connectionString: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL'),
    /** Schema holding every table, created when absent. */
    schema: z
      .string()
      .regex(/^[a-z_][a-z0-9_]*$/)
      .optional(),
    maxConnections: z.number().int().positive().max(1000).default(10),
    connectionTimeoutMs: z.number().int().positive().default(10_000),
    /** Server settings for the store's sessions, over its defaults (parallel workers and JIT off); null keeps the server's. */
    settings: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])).optional(),
    /** Hot reads as named prepared statements; false behind a pooler that cannot keep them (PgBouncer transaction mode). */
    preparedStatements: z.boolean().default(true),
  }),
  register(env) {
    env.provide(metadataStoreRef, {
      factory: ({ config }) =>
        PostgresMetadataStore.connect({
          connectionString: config.connectionString,
          maxConnections: config.maxConnections,
          connectionTimeoutMs: config.connectionTimeoutMs,
          preparedStatements: config.preparedStatements,
          ...(config.schema ? { schema: config.schema } : {}),
          ...(config.settings ? { settings: config.settings } : {}),
        }),
      dispose: (store) => store.close(),
    });
  },
});
