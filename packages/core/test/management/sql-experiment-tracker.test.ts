import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalArtifactStore } from '../../src/embedded/artifact-store/local-artifact-store.js';
import { SqliteMetadataStore } from '../../src/embedded/metadata-store/sqlite-metadata-store.js';
import { SqlExperimentTracker } from '../../src/embedded/tracker/sql-experiment-tracker.js';
import { readOutbox } from '../../src/infra/sql/outbox.js';
import { experimentTrackerConformance } from '../../src/testing/conformance/experiment-tracker.js';
import { readAll } from '../../src/testing/conformance/support.js';

experimentTrackerConformance('SqlExperimentTracker on SQLite (temp dir)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mlplane-tracker-'));
  const store = await SqliteMetadataStore.open({ path: join(dir, 'metadata.sqlite') });
  const artifacts = new LocalArtifactStore({ root: join(dir, 'artifacts') });
  const tracker = await SqlExperimentTracker.open({ store, artifacts });
  return {
    tracker,
    events: async () => (await readOutbox(store.db(), { limit: 1_000_000 })).map((e) => e.event),
    readArtifact: async (key) => readAll((await artifacts.get(key)).body),
    cleanup: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
