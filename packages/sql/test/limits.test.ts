import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteMetadataStore } from '@mlplane/defaults';
import { limitsSuite } from './limits/limits-suite.js';

limitsSuite('embedded SQLite', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mlplane-limits-db-'));
  const store = await SqliteMetadataStore.open({ path: join(dir, 'metadata.sqlite') });
  return {
    store,
    close: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
