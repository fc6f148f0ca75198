// KafkaGroupMember against the Kafka peer: a consumer that kafkajs stops for good (a crash it does not restart
// from, e.g. no group coordinator while a restarted broker loads its offsets) is replaced, and the group keeps
// consuming. Such a crash cannot be provoked on demand, so the test does what kafkajs does then (disconnect the
// consumer, emit CRASH with restart: false) on a real consumer; joining, fetching and committing are the broker's.
import { randomUUID } from 'node:crypto';
import type { DomainEvent } from '@mlplane/core';
import { emptyStats, RecentIds, subscriberSettings } from '@mlplane/core';
import { type Consumer, type ConsumerConfig, Kafka, logLevel } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { kafkaBrokers, uniqueName } from '../../../test-support/peers-env.js';
import { captureLogger, waitFor } from '../../../test-support/wait.js';
import { KafkaEventBus } from '../src/kafka-event-bus.js';
import { KafkaGroupMember, type KafkaGroupMemberOptions } from '../src/kafka-group-member.js';

const topics: string[] = [];
afterAll(async () => {
  const admin = new Kafka({ clientId: 'mlplane-it', brokers: kafkaBrokers(), logLevel: logLevel.NOTHING }).admin();
  await admin
    .connect()
    .then(() => admin.deleteTopics({ topics }))
    .catch(() => undefined)
    .finally(() => admin.disconnect());
});

/** A real Kafka client that hands out real consumers and keeps each one's CRASH listener, to fire it. */
function recordingKafka() {
  const kafka = new Kafka({ clientId: 'mlplane-it', brokers: kafkaBrokers(), logLevel: logLevel.NOTHING });
  const consumers: { consumer: Consumer; crash: (payload: object) => void }[] = [];
  const recording = Object.create(kafka) as Kafka;
  recording.consumer = (config: ConsumerConfig) => {
    const consumer = kafka.consumer(config);
    const entry = { consumer, crash: (_payload: object) => {} };
    const on = consumer.on.bind(consumer);
    consumer.on = ((name: string, listener: (event: { payload: object }) => void) => {
      if (name === consumer.events.CRASH) entry.crash = (payload) => listener({ payload });
      return on(name as never, listener as never);
    }) as Consumer['on'];
    consumers.push(entry);
    return consumer;
  };
  return { kafka: recording, consumers };
}

/** A member of a fresh group on `topic`, through `kafka`; options as the bus sets them, rejoin backoff as given. */
function member(
  kafka: Kafka,
  topic: string,
  group: string,
  options: Pick<KafkaGroupMemberOptions, 'logger' | 'rejoinBackoff'>,
): KafkaGroupMember {
  return new KafkaGroupMember({
    kafka,
    topic,
    group,
    groupId: uniqueName(`mlplane.it.${group}`),
    concurrency: 2,
    sessionTimeoutMs: 10_000,
    fetchMaxWaitMs: 200,
    joinTimeoutMs: 30_000,
    retry: { retries: 5 },
    recent: new RecentIds(1000),
    stats: emptyStats(),
    writeDeadLetter: async () => {},
    ...options,
  });
}

function event(subject: string): DomainEvent {
  return {
    id: randomUUID(),
    type: 'it.thing.happened',
    version: 1,
    occurredAt: new Date().toISOString(),
    subject,
    payload: {},
  };
}

describe('KafkaGroupMember (Kafka peer)', () => {
  it('replaces a consumer kafkajs stopped for good and goes on consuming the group', async () => {
    const topic = uniqueName('mlplane.it.member');
    topics.push(topic, `${topic}.dlq`);
    const publisher = new KafkaEventBus({ brokers: kafkaBrokers(), topic, partitions: 2 });
    const logger = captureLogger();
    const { kafka, consumers } = recordingKafka();
    const rejoining = member(kafka, topic, 'rejoin', { logger, rejoinBackoff: { initialMs: 100, maxMs: 1_000 } });
    const seen = new Set<string>();
    rejoining.subscribers.add(subscriberSettings({ group: 'rejoin', handler: async (e) => void seen.add(e.id) }));
    try {
      await publisher.publish(event('it:warmup'));
      await rejoining.start();
      const before = Array.from({ length: 10 }, (_, i) => event(`it:${i}`));
      await publisher.publish(before);
      await waitFor('the first events', () => before.every((e) => seen.has(e.id)), 30_000);

      // What kafkajs does on a crash it will not restart from.
      const first = consumers[0]!;
      await first.consumer.disconnect();
      first.crash({ error: new Error('The group coordinator is not available'), groupId: 'x', restart: false });

      const after = Array.from({ length: 10 }, (_, i) => event(`it:${i}`));
      await publisher.publish(after);
      await waitFor('events published after the crash', () => after.every((e) => seen.has(e.id)), 60_000);
      expect(consumers).toHaveLength(2);
      expect(logger.lines.map((l) => l.msg)).toEqual(
        expect.arrayContaining([
          "Kafka consumer for group 'rejoin' stopped; rejoining with a new consumer",
          "Kafka consumer for group 'rejoin' rejoined",
        ]),
      );
    } finally {
      await rejoining.stop();
      await publisher.close();
    }
  }, 120_000);

  it('stops at once while waiting to rejoin, and starts no new consumer', async () => {
    const topic = uniqueName('mlplane.it.member');
    topics.push(topic, `${topic}.dlq`);
    const publisher = new KafkaEventBus({ brokers: kafkaBrokers(), topic, partitions: 1 });
    const { kafka, consumers } = recordingKafka();
    const stopping = member(kafka, topic, 'stop', {
      logger: undefined,
      rejoinBackoff: { initialMs: 60_000, maxMs: 60_000 },
    });
    stopping.subscribers.add(subscriberSettings({ group: 'stop', handler: async () => {} }));
    try {
      await publisher.publish(event('it:warmup'));
      await stopping.start();
      await consumers[0]!.consumer.disconnect();
      consumers[0]!.crash({ error: new Error('fatal'), groupId: 'x', restart: false });
      const started = performance.now();
      await stopping.stop();
      expect(performance.now() - started).toBeLessThan(10_000);
      expect(consumers).toHaveLength(1);
    } finally {
      await stopping.stop();
      await publisher.close();
    }
  }, 60_000);
});
