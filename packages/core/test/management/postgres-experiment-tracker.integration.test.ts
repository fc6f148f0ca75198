import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { LocalArtifactStore } from '../../src/embedded/artifact-store/local-artifact-store.js';
import { SqlExperimentTracker } from '../../src/embedded/tracker/sql-experiment-tracker.js';
import { PostgresMetadataStore } from '../../src/infra/postgres/postgres-metadata-store.js';
import { readOutbox } from '../../src/infra/sql/outbox.js';
import {
  type ExperimentTrackerFixture,
  experimentTrackerConformance,
} from '../../src/testing/conformance/experiment-tracker.js';
import { readAll } from '../../src/testing/conformance/support.js';
import { dropSchema, freshSchema, pgUrl } from './pg-env.js';

// One schema for this file: the suite names everything with a random tag, so its tests share it safely.
const schema = freshSchema('mlplane_tracker');
let shared: Promise<{ fixture: ExperimentTrackerFixture; close: () => Promise<void> }> | undefined;

function open() {
  shared ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mlplane-tracker-pg-'));
    const store = await PostgresMetadataStore.connect({ connectionString: pgUrl(), schema });
    const artifacts = new LocalArtifactStore({ root: join(dir, 'artifacts') });
    const tracker = await SqlExperimentTracker.open({ store, artifacts });
    return {
      fixture: {
        tracker,
        events: async () => (await readOutbox(store.db(), { limit: 1_000_000 })).map((e) => e.event),
        readArtifact: async (key: string) => readAll((await artifacts.get(key)).body),
      },
      close: async () => {
        await store.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  })();
  return shared;
}

afterAll(async () => {
  await (await shared)?.close();
  await dropSchema(schema);
});

experimentTrackerConformance('SqlExperimentTracker on PostgreSQL (peer)', async () => (await open()).fixture);
