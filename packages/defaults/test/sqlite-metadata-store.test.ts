import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { metadataStoreConformance } from '@mlplane/core/testing';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { SqliteMetadataStore } from '../src/metadata-store/sqlite-metadata-store.js';

metadataStoreConformance('SqliteMetadataStore (temp dir)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mlplane-meta-'));
  const path = join(dir, 'metadata.sqlite');
  return {
    store: await SqliteMetadataStore.open({ path }),
    openAnother: () => SqliteMetadataStore.open({ path }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

describe('SqliteMetadataStore files', () => {
  it('creates its directory 0700 and the database with its WAL files 0600, and keeps the mode of an existing file', async () => {
    const parent = await mkdtemp(join(tmpdir(), 'mlplane-meta-modes-'));
    try {
      const path = join(parent, 'fresh', 'metadata.db');
      const store = await SqliteMetadataStore.open({ path });
      try {
        await sql`create table t (x integer)`.execute(store.db());
        const mode = async (p: string) => (await stat(p)).mode & 0o777;
        expect(await mode(join(parent, 'fresh'))).toBe(0o700);
        for (const file of [path, `${path}-wal`, `${path}-shm`]) expect(await mode(file), file).toBe(0o600);
      } finally {
        await store.close();
      }
      const existing = join(parent, 'existing.db');
      await writeFile(existing, '', { mode: 0o640 });
      await (await SqliteMetadataStore.open({ path: existing })).close();
      expect((await stat(existing)).mode & 0o777).toBe(0o640);
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });
});
