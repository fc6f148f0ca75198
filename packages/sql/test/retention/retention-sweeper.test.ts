import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteMetadataStore } from '@mlplane/defaults';
import { retentionSuite } from './retention-suite.js';

retentionSuite('embedded SQLite', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mlplane-retention-'));
  const store = await SqliteMetadataStore.open({ path: join(dir, 'meta.sqlite') });
  return {
    store,
    close: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
