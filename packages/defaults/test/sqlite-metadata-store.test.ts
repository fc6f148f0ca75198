import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { metadataStoreConformance } from '@mlplane/core/testing';
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
