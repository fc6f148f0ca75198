import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { modelRegistryConformance } from '@mlplane/core/testing';
import { LocalArtifactStore } from '@mlplane/defaults';
import { PostgresMetadataStore } from '@mlplane/plugin-postgres';
import { afterAll } from 'vitest';
import { dropSchema, freshSchema, pgUrl } from '../../../test-support/pg-env.js';
import { readOutbox } from '../src/outbox/outbox.js';
import { SqlModelRegistry } from '../src/registry/sql-model-registry.js';
import { SqlExperimentTracker } from '../src/tracker/sql-experiment-tracker.js';

// One schema for this file: the suite names every model with a random tag, so its tests share it safely.
const schema = freshSchema('mlplane_registry');
let shared: Promise<{ store: PostgresMetadataStore; tracker: SqlExperimentTracker; dir: string }> | undefined;

function open() {
  shared ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mlplane-registry-pg-'));
    const store = await PostgresMetadataStore.connect({ connectionString: pgUrl(), schema, maxConnections: 20 });
    const tracker = await SqlExperimentTracker.open({
      store,
      artifacts: new LocalArtifactStore({ root: join(dir, 'artifacts') }),
    });
    // Migrates once; each test then gets a registry with hooks of its own.
    await SqlModelRegistry.open({ store, tracker });
    return { store, tracker, dir };
  })();
  return shared;
}

afterAll(async () => {
  const opened = await shared;
  if (opened) {
    await opened.store.close();
    await rm(opened.dir, { recursive: true, force: true });
  }
  await dropSchema(schema);
});

modelRegistryConformance('SqlModelRegistry on PostgreSQL (peer)', async () => {
  const { store, tracker } = await open();
  const registry = new SqlModelRegistry({ store, tracker });
  return {
    registry,
    tracker,
    events: async () => (await readOutbox(store.db(), { limit: 1_000_000 })).map((e) => e.event),
    aliasHistory: (name) => registry.getAliasHistory(name),
  };
});
