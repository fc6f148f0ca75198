import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteMetadataStore } from '@mlplane/defaults';
import { outboxConformance } from '../src/testing/index.js';

outboxConformance('SQLite (temp dir)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mlplane-outbox-'));
  return {
    store: await SqliteMetadataStore.open({ path: join(dir, 'metadata.sqlite') }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});
