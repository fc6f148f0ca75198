// Fault test of batch ingest: PostgreSQL restarts (clean and crash) while a client logs metric batches. A batch
// whose logBatch resolved is acknowledged and must be there afterwards, whole; an unacknowledged one is retried by
// the client (as an SDK would) and must not leave a partial batch behind. Runs on a private, durable PostgreSQL peer.
// The client keeps logging until the restart is over, so batches meet the whole outage; the test asserts they did.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UnavailableError } from '@mlplane/core';
import { LocalArtifactStore } from '@mlplane/defaults';
import { PostgresMetadataStore } from '@mlplane/plugin-postgres';
import { SqlExperimentTracker } from '@mlplane/sql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OutageWatch } from '../../../test-support/outage.js';
import { type PrivatePeers, startPrivatePeers } from '../../../test-support/private-peers.js';

/** Batches logged at least; more while the restart is still under way. */
const BATCHES = 300;
const METRICS_PER_BATCH = 100;
/** How long one batch is retried through the outage before the test gives up on it. */
const RETRY_FOR_MS = 120_000;

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
        let retries = 0;
        let batchesMeetingOutage = 0;
        let restartDone = false;
        let restart: Promise<void> | undefined;
        const watch = OutageWatch.start(peers.address('postgres'));
        const started = performance.now();
        let step = 0;
        try {
          // Logs until BATCHES are acknowledged and the restart is over, so that the outage cannot fall after the
          // last batch; the restart starts after a third of them.
          for (; step < BATCHES || (restart !== undefined && !restartDone); step += 1) {
            if (step === BATCHES / 3) {
              restart = peers.restart('postgres', signal).finally(() => {
                restartDone = true;
              });
            }
            const metrics = Array.from({ length: METRICS_PER_BATCH }, (_, i) => ({
              key: `m${i}`,
              value: step + i / 1000,
              step,
              timestamp: 1_700_000_000_000 + step,
            }));
            const batchStarted = Date.now();
            for (;;) {
              try {
                await tracker.logBatch(run.info.id, { metrics });
                break;
              } catch (err) {
                // Only unavailability is retried, for a while; any other error is a real failure of the test.
                if (!(err instanceof UnavailableError) || Date.now() - batchStarted > RETRY_FOR_MS) throw err;
                retries += 1;
                await new Promise((r) => setTimeout(r, 100));
              }
            }
            if (watch.overlaps(batchStarted, Date.now())) batchesMeetingOutage += 1;
          }
          await restart;
        } finally {
          await restart?.catch(() => {});
          await watch.stop();
        }
        const batches = step;
        const seconds = (performance.now() - started) / 1000;

        // The fault was hit: PostgreSQL's port was closed while batches were being logged, and some failed.
        expect(watch.windows.length, 'PostgreSQL never refused a connection: no outage').toBeGreaterThan(0);
        expect(batchesMeetingOutage, 'no batch was being logged while PostgreSQL was down').toBeGreaterThan(0);
        expect(retries, 'no logBatch failed during the outage').toBeGreaterThan(0);

        // Every step holds whole batches: all METRICS_PER_BATCH keys, each as often as the others. A batch retried
        // after an error whose commit actually happened is there twice (metrics append, as in MLflow); a partial
        // batch would leave some keys of its step short.
        const perKey = await store
          .db()
          .selectFrom('metrics')
          .select(['step', 'key', (eb) => eb.fn.countAll<string>().as('n')])
          .where('run_id', '=', run.info.id)
          .groupBy(['step', 'key'])
          .execute();
        const steps = new Map<number, number[]>();
        for (const row of perKey) steps.set(Number(row.step), [...(steps.get(Number(row.step)) ?? []), Number(row.n)]);
        expect([...steps.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: batches }, (_, i) => i));
        const partial = [...steps].filter(
          ([, counts]) => counts.length !== METRICS_PER_BATCH || counts.some((n) => n !== counts[0]),
        );
        expect(
          partial.map(([s]) => s),
          'steps holding part of a batch',
        ).toEqual([]);
        const twice = [...steps.values()].filter((counts) => counts[0]! > 1).length;
        const history = await tracker.getMetricHistory(run.info.id, 'm7');
        expect(new Set(history.items.map((m) => m.step)).size).toBe(batches);
        console.log(
          `ingest fault (SIG${signal}): ${batches} batches of ${METRICS_PER_BATCH} acknowledged, ${retries} retries, ` +
            `${batchesMeetingOutage} batches met the outage (${watch.downSeconds.toFixed(1)} s down), ` +
            `${twice} batches committed twice, ${seconds.toFixed(1)} s`,
        );
      } finally {
        await store.close();
      }
    });
  }
});
