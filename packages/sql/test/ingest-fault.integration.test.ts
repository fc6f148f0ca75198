// Fault test of batch ingest: PostgreSQL restarts (clean and crash) while a client logs metric batches. A batch
// whose logBatch resolved is acknowledged and must be there afterwards, whole; an unacknowledged one is retried by
// the client (as an SDK would) and must not leave a partial batch behind. Runs on a private, durable PostgreSQL peer.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UnavailableError } from '@mlplane/core';
import { LocalArtifactStore } from '@mlplane/defaults';
import { PostgresMetadataStore } from '@mlplane/plugin-postgres';
import { SqlExperimentTracker } from '@mlplane/sql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PrivatePeers, startPrivatePeers } from '../../../test-support/private-peers.js';

const BATCHES = 300;
const METRICS_PER_BATCH = 100;

describe('batch ingest survives a PostgreSQL restart', () => {
  let peers: PrivatePeers;
  let artifacts: string;
  beforeAll(async () => {
    // fsync and synchronous commit on: without them a crash may lose commits the client was told about.
    process.env.MLPLANE_PG_DURABLE = '1';
    peers = await startPrivatePeers(['postgres']);
    artifacts = await mkdtemp(join(tmpdir(), 'mlplane-ingest-fault-'));
  }, 300_000);
  afterAll(async () => {
    await peers?.down();
    if (artifacts) await rm(artifacts, { recursive: true, force: true });
  }, 180_000);

  for (const signal of ['TERM', 'KILL'] as const) {
    it(`loses no acknowledged batch and leaves no partial one (SIG${signal})`, { timeout: 600_000 }, async () => {
      const store = await PostgresMetadataStore.connect({
        connectionString: peers.env.MLPLANE_PG_URL!,
        schema: `ingest_fault_${signal.toLowerCase()}`,
        connectionTimeoutMs: 2_000,
      });
      try {
        const tracker = await SqlExperimentTracker.open({
          store,
          artifacts: new LocalArtifactStore({ root: artifacts }),
        });
        const experiment = await tracker.createExperiment({ name: `ingest-fault-${signal}` });
        const run = await tracker.createRun({ experimentId: experiment.id });
        let acknowledged = 0;
        let retries = 0;
        let restart: Promise<void> | undefined;
        const started = performance.now();
        for (let step = 0; step < BATCHES; step += 1) {
          if (step === BATCHES / 3) restart = peers.restart('postgres', signal);
          const metrics = Array.from({ length: METRICS_PER_BATCH }, (_, i) => ({
            key: `m${i}`,
            value: step + i / 1000,
            step,
            timestamp: 1_700_000_000_000 + step,
          }));
          for (;;) {
            try {
              await tracker.logBatch(run.info.id, { metrics });
              acknowledged += 1;
              break;
            } catch (err) {
              // Only unavailability is retried; any other error is a real failure of the test.
              if (!(err instanceof UnavailableError)) throw err;
              retries += 1;
              await new Promise((r) => setTimeout(r, 100));
            }
          }
        }
        await restart;
        const seconds = (performance.now() - started) / 1000;

        expect(acknowledged).toBe(BATCHES);
        const rows = await store
          .db()
          .selectFrom('metrics')
          .select((eb) => eb.fn.countAll<string>().as('n'))
          .where('run_id', '=', run.info.id)
          .executeTakeFirstOrThrow();
        // Every acknowledged batch is there whole. A batch retried after an error whose commit actually happened
        // appears twice (metrics append, as in MLflow), so the count is a whole multiple of the batch size.
        const total = Number(rows.n);
        expect(total % METRICS_PER_BATCH).toBe(0);
        expect(total).toBeGreaterThanOrEqual(BATCHES * METRICS_PER_BATCH);
        const history = await tracker.getMetricHistory(run.info.id, 'm7');
        expect(new Set(history.items.map((m) => m.step)).size).toBe(BATCHES);
        console.log(
          `ingest fault (SIG${signal}): ${BATCHES} batches of ${METRICS_PER_BATCH} acknowledged, ${retries} retries, ` +
            `${total} rows stored (${total / METRICS_PER_BATCH - BATCHES} batches committed twice), ${seconds.toFixed(1)} s`,
        );
      } finally {
        await store.close();
      }
    });
  }
});
