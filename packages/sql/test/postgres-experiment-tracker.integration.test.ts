import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { actingAs } from '@mlplane/core';
import { type ExperimentTrackerFixture, experimentTrackerConformance, readAll } from '@mlplane/core/testing';
import { LocalArtifactStore } from '@mlplane/defaults';
import { PostgresMetadataStore } from '@mlplane/plugin-postgres';
import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { dropSchema, freshSchema, pgUrl } from '../../../test-support/pg-env.js';
import { readOutbox } from '../src/outbox/outbox.js';
import { SqlExperimentTracker } from '../src/tracker/sql-experiment-tracker.js';

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

describe('search planning on PostgreSQL (peer)', () => {
  it('estimates a param filter by its key-value pair frequency, not by key and value apart', async () => {
    const own = freshSchema('mlplane_tracker_stats');
    const dir = await mkdtemp(join(tmpdir(), 'mlplane-tracker-stats-'));
    const store = await PostgresMetadataStore.connect({ connectionString: pgUrl(), schema: own });
    try {
      const tracker = await SqlExperimentTracker.open({ store, artifacts: new LocalArtifactStore({ root: dir }) });
      const experimentId = (await tracker.createExperiment({ name: 'stats' })).id;
      // Values are disjoint per key: counted apart, `lr = '0.01'` looks like 1/3 (key) x 1/9 (value) of the rows;
      // as a pair it is 1/9 of them (100 of 900).
      for (let i = 0; i < 300; i++) {
        const run = await tracker.createRun({ experimentId });
        await tracker.logBatch(run.info.id, {
          params: [
            { key: 'lr', value: ['0.1', '0.01', '0.001'][i % 3]! },
            { key: 'optimizer', value: i % 2 ? 'adam' : 'sgd' },
            { key: 'seed', value: String(i) },
          ],
        });
      }
      await sql`ANALYZE params`.execute(store.db());
      const { rows } = await sql<{ 'QUERY PLAN': [{ Plan: { 'Plan Rows': number } }] }>`
        EXPLAIN (FORMAT JSON) SELECT run_id FROM params WHERE key = 'lr' AND value = '0.01'`.execute(store.db());
      const estimate = rows[0]!['QUERY PLAN'][0].Plan['Plan Rows'];
      // Without the pair statistics the estimate is about 33.
      expect(estimate).toBeGreaterThanOrEqual(80);
      expect(estimate).toBeLessThanOrEqual(120);
    } finally {
      await store.close();
      await dropSchema(own);
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('actingAs on PostgreSQL (peer)', () => {
  it('names the actor on the event of a metrics-only batch, which takes the one-statement path', async () => {
    const { fixture } = await open();
    const tracker = fixture.tracker;
    const run = await actingAs({ actor: 'frank', project: 'ads' }, async () => {
      const experiment = await tracker.createExperiment({ name: `acting-pg-${Date.now()}` });
      const created = await tracker.createRun({ experimentId: experiment.id });
      await tracker.logBatch(created.info.id, { metrics: [{ key: 'loss', value: 0.5, step: 1 }] });
      return created;
    });
    const logged = (await fixture.events!()).filter(
      (e) => e.type === 'run.metrics.logged' && e.subject === `run:${run.info.id}`,
    );
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ actor: 'frank', project: 'ads' });
    expect(run.info.userId).toBe('frank');
  });
});
