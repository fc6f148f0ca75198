import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { experimentTrackerConformance, readAll } from '@mlplane/core/testing';
import { LocalArtifactStore, SqliteMetadataStore } from '@mlplane/defaults';
import { readOutbox } from '../src/outbox/outbox.js';
import { SqlExperimentTracker } from '../src/tracker/sql-experiment-tracker.js';

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
