// Fault tests of the outbox relay on PostgreSQL and Kafka: restart each peer while 2,000 events are being written
// and relayed, then check that a consumer group received every committed event, none lost, duplicates absorbed.
// They run on private peers (see private-peers.ts) and print a report line with the figures.
import { randomUUID } from 'node:crypto';
import { type DomainEvent, UnavailableError } from '@mlplane/core';
import { createEmbeddedTelemetry } from '@mlplane/defaults';
import { KafkaEventBus } from '@mlplane/plugin-kafka';
import { PostgresMetadataStore } from '@mlplane/plugin-postgres';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueName } from '../../../../test-support/peers-env.js';
import { type PrivatePeers, startPrivatePeers } from '../../../../test-support/private-peers.js';
import { captureLogger, waitFor } from '../../../../test-support/wait.js';
import { isUniqueViolation } from '../../src/dialect/errors.js';
import { domainEvent, readOutbox, recordEvent } from '../../src/outbox/outbox.js';
import { OutboxRelay } from '../../src/relay/outbox-relay.js';

const TOTAL = 2_000;
const PER_TRANSACTION = 50;

let peers: PrivatePeers;
const topics: string[] = [];

beforeAll(async () => {
  peers = await startPrivatePeers(['postgres', 'kafka']);
}, 400_000);

afterAll(async () => {
  if (!peers) return;
  const kafka = new Kafka({
    clientId: 'mlplane-it',
    brokers: [peers.env.MLPLANE_KAFKA_BROKERS!],
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  await admin
    .connect()
    .then(async () => {
      const existing = await admin.listTopics();
      await admin.deleteTopics({ topics: topics.filter((t) => existing.includes(t)) });
    })
    .catch(() => undefined)
    .finally(() => admin.disconnect());
  await peers.down();
}, 180_000);

/** How long one step is retried through an outage before the test gives up on it and shows the error. */
const RETRY_FOR_MS = 120_000;

/**
 * Runs `fn` until it succeeds, retrying only UnavailableError (the outage) and for RETRY_FOR_MS at most: any other
 * error, or an outage that does not end, fails the test with that error rather than a timeout with no diagnosis.
 */
async function retrying<T>(what: string, fn: () => Promise<T>, onRetry: () => void = () => {}): Promise<T> {
  const started = Date.now();
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof UnavailableError)) throw err;
      if (Date.now() - started > RETRY_FOR_MS) {
        throw new Error(`${what}: still unavailable after ${RETRY_FOR_MS} ms`, { cause: err });
      }
      onRetry();
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** Writes TOTAL events in transactions of PER_TRANSACTION, retrying each until it is known to be committed. */
async function writeAll(store: PostgresMetadataStore, relay: OutboxRelay, written: DomainEvent[]): Promise<number> {
  let retries = 0;
  for (let t = 0; t < TOTAL / PER_TRANSACTION; t++) {
    const events = Array.from({ length: PER_TRANSACTION }, (_, i) =>
      domainEvent('model.tag.set', `model:m${(t * PER_TRANSACTION + i) % 17}`, { t, i }),
    );
    let failedBefore = false;
    await retrying(
      `transaction ${t}`,
      async () => {
        try {
          await store.transaction((trx) => recordEvent(trx, events));
        } catch (err) {
          // After a failed attempt, a commit whose answer was lost may have landed: the same ids then violate the
          // unique key. On a first attempt that violation would be a real bug, and fails the test.
          if (failedBefore && isUniqueViolation(err)) return;
          throw err;
        }
      },
      () => {
        failedBefore = true;
        retries++;
      },
    );
    written.push(...events);
    relay.notify();
    // Spread the writes so that the restart lands in the middle of relaying.
    await new Promise((r) => setTimeout(r, 25));
  }
  return retries;
}

async function relayThroughRestart(peer: 'postgres' | 'kafka', signal: 'TERM' | 'KILL') {
  const schema = `relay_fault_${peer}_${randomUUID().slice(0, 8)}`;
  const topic = uniqueName(`mlplane.it.relay.${peer}`);
  topics.push(topic, `${topic}.dlq`);
  const brokers = [peers.env.MLPLANE_KAFKA_BROKERS!];
  const store = await PostgresMetadataStore.connect({
    connectionString: peers.env.MLPLANE_PG_URL!,
    schema,
    connectionTimeoutMs: 2_000,
  });
  const logger = captureLogger();
  const publisher = new KafkaEventBus({
    brokers,
    topic,
    partitions: 4,
    retry: { retries: 3, maxRetryTime: 5_000 },
    logger: logger.child({ side: 'publisher' }),
  });
  const consumerBus = new KafkaEventBus({
    brokers,
    topic,
    partitions: 4,
    sessionTimeoutMs: 10_000,
    logger: logger.child({ side: 'consumer' }),
  });
  const deliveries = new Map<string, number>();
  const relay = await OutboxRelay.open({
    store,
    bus: publisher,
    telemetry: createEmbeddedTelemetry({ logger }),
    batchSize: 100,
    pollIntervalMs: 100,
    leaseTtlMs: 10_000,
    backoff: { initialMs: 100, maxMs: 2_000 },
  });
  const subscription = await consumerBus.subscribe({
    group: 'relay-fault',
    handler: async (e) => {
      deliveries.set(e.id, (deliveries.get(e.id) ?? 0) + 1);
    },
  });
  try {
    relay.start();
    const written: DomainEvent[] = [];
    const writing = writeAll(store, relay, written);
    await waitFor('a quarter relayed', () => relay.stats().relayed >= TOTAL / 4, 120_000);
    const relayedBefore = relay.stats().relayed;
    const restartStarted = performance.now();
    await peers.restart(peer, signal);
    const restartSeconds = (performance.now() - restartStarted) / 1000;
    const writeRetries = await writing;
    const ids = new Set(written.map((e) => e.id));
    await waitFor('every event consumed', () => [...ids].every((id) => deliveries.has(id)), 240_000).catch(
      async (err: Error) => {
        // Say where the events stopped (relay, broker or consumer), with the warnings of each side.
        const unrelayed = await readOutbox(store.db(), { unrelayedOnly: true, limit: 1_000_000 }).then(
          (rows) => rows.length,
          (e: Error) => `unreadable: ${e.message}`,
        );
        const diagnosis = {
          relay: relay.stats(),
          unrelayed,
          consumed: [...ids].filter((id) => deliveries.has(id)).length,
          publisher: publisher.stats(),
          consumer: consumerBus.stats(),
          warnings: logger.lines
            .filter((l) => l.level === 'warn' || l.level === 'error')
            .slice(-30)
            .map(
              (l) =>
                `${l.level} ${String(l.fields.side ?? l.fields.component ?? '')}: ${l.msg} ${String((l.fields.err as Error | undefined)?.message ?? '')}`,
            ),
        };
        throw new Error(`${err.message}; ${JSON.stringify(diagnosis, null, 1)}`);
      },
    );
    const catchUpSeconds = (performance.now() - restartStarted) / 1000;
    const outbox = await retrying('reading the outbox', () => readOutbox(store.db(), { limit: 1_000_000 }));
    const calls = [...deliveries.values()].reduce((a, b) => a + b, 0);
    const report = {
      peer,
      signal,
      written: ids.size,
      outboxRows: outbox.length,
      unrelayed: outbox.filter((e) => e.relayedAt === undefined).length,
      consumedDistinct: deliveries.size,
      handlerCalls: calls,
      duplicatesDelivered: calls - deliveries.size,
      duplicatesDroppedByBus: consumerBus.stats().duplicatesDropped,
      relayedBeforeRestart: relayedBefore,
      relayedTotal: relay.stats().relayed,
      relayErrors: relay.stats().errors,
      writeRetries,
      restartSeconds: Number(restartSeconds.toFixed(1)),
      catchUpSeconds: Number(catchUpSeconds.toFixed(1)),
    };
    console.log(`outbox relay fault report: ${JSON.stringify(report)}`);
    expect(ids.size).toBe(TOTAL);
    expect(outbox.map((e) => e.event.id).sort()).toEqual([...ids].sort());
    expect(report.unrelayed).toBe(0);
    expect(report.consumedDistinct).toBe(TOTAL);
    expect([...deliveries.keys()].every((id) => ids.has(id))).toBe(true);
    // The outage hit the relay: it reported errors and recovered.
    expect(report.relayedBeforeRestart).toBeLessThan(TOTAL);
    expect(report.relayErrors).toBeGreaterThan(0);
    expect(logger.lines.some((l) => l.msg === 'outbox relay failed; retrying')).toBe(true);
    expect(logger.lines.some((l) => l.msg === 'outbox relay recovered')).toBe(true);
    return report;
  } finally {
    await relay.stop();
    await subscription.close();
    await consumerBus.close();
    await publisher.close();
    await store.close();
  }
}

describe('OutboxRelay fault tests on private PostgreSQL and Kafka peers', () => {
  it('loses no event when PostgreSQL restarts in the middle of relaying', async () => {
    await relayThroughRestart('postgres', 'TERM');
  }, 600_000);

  it('loses no event when Kafka crashes (SIGKILL) and restarts in the middle of relaying', async () => {
    await relayThroughRestart('kafka', 'KILL');
  }, 600_000);
});
