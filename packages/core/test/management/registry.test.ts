import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalArtifactStore } from '../../src/embedded/artifact-store/local-artifact-store.js';
import { SqliteMetadataStore } from '../../src/embedded/metadata-store/sqlite-metadata-store.js';
import { SqlModelRegistry } from '../../src/embedded/registry/sql-model-registry.js';
import { SqlExperimentTracker } from '../../src/embedded/tracker/sql-experiment-tracker.js';
import { readOutbox } from '../../src/infra/sql/outbox.js';
import { createPlatformHooks } from '../../src/kernel/hooks.js';
import { modelRegistryConformance } from '../../src/testing/conformance/model-registry.js';

modelRegistryConformance('SqlModelRegistry on SQLite (temp dir)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mlplane-registry-'));
  const store = await SqliteMetadataStore.open({ path: join(dir, 'metadata.sqlite') });
  const tracker = await SqlExperimentTracker.open({
    store,
    artifacts: new LocalArtifactStore({ root: join(dir, 'artifacts') }),
  });
  const hooks = createPlatformHooks();
  const registry = await SqlModelRegistry.open({ store, hooks, tracker });
  return {
    registry,
    hooks,
    tracker,
    events: async () => (await readOutbox(store.db(), { limit: 1_000_000 })).map((e) => e.event),
    aliasHistory: (name) => registry.getAliasHistory(name),
    cleanup: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
