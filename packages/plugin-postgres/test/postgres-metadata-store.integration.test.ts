import { ValidationError } from '@mlplane/core';
import { metadataStoreConformance } from '@mlplane/core/testing';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { dropSchema, freshSchema, pgUrl } from '../../../test-support/pg-env.js';
import { PostgresMetadataStore } from '../src/postgres-metadata-store.js';

metadataStoreConformance('PostgresMetadataStore (peer, schema per test)', async () => {
  const schema = freshSchema('mlplane_meta');
  const open = () => PostgresMetadataStore.connect({ connectionString: pgUrl(), schema });
  return { store: await open(), openAnother: open, cleanup: () => dropSchema(schema) };
});

describe('PostgresMetadataStore session settings (peer)', () => {
  const show = async (store: PostgresMetadataStore, name: string) => {
    const { rows } = await sql<{ v: string }>`SELECT current_setting(${name}) AS v`.execute(store.db());
    return rows[0]!.v;
  };

  it('runs every pooled session serially and without JIT by default, with the schema on the search path', async () => {
    const schema = freshSchema('mlplane_settings');
    const store = await PostgresMetadataStore.connect({ connectionString: pgUrl(), schema, maxConnections: 3 });
    try {
      // Concurrent reads take several pooled connections; each must carry the startup settings.
      const seen = await Promise.all(
        Array.from({ length: 6 }, async () => [
          await show(store, 'max_parallel_workers_per_gather'),
          await show(store, 'jit'),
          await show(store, 'search_path'),
        ]),
      );
      for (const s of seen) expect(s).toEqual(['0', 'off', schema]);
    } finally {
      await store.close();
      await dropSchema(schema);
    }
  });

  it('applies overrides and keeps the server value for a setting set to null', async () => {
    const store = await PostgresMetadataStore.connect({
      connectionString: pgUrl(),
      settings: { statement_timeout: '1500ms', jit: null },
    });
    try {
      expect(await show(store, 'statement_timeout')).toBe('1500ms');
      expect(await show(store, 'max_parallel_workers_per_gather')).toBe('0');
      // The peer's server default.
      expect(await show(store, 'jit')).toBe('on');
    } finally {
      await store.close();
    }
  });

  it('rejects setting names and values that are not plain tokens before connecting', async () => {
    await expect(
      PostgresMetadataStore.connect({ connectionString: pgUrl(), settings: { 'work_mem; drop': '4MB' } }),
    ).rejects.toMatchObject({
      constructor: ValidationError,
      message: "settings: 'work_mem; drop' is not a PostgreSQL setting name",
      field: 'settings.work_mem; drop',
    });
    await expect(
      PostgresMetadataStore.connect({ connectionString: pgUrl(), settings: { application_name: 'my app' } }),
    ).rejects.toMatchObject({
      constructor: ValidationError,
      message: "settings.application_name: 'my app' must be letters, digits and _ . : + - (no spaces or quotes)",
      field: 'settings.application_name',
    });
  });
});
