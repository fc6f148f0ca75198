// KafkaEventBus against the Kafka peer: the EventBus conformance suite plus Kafka-specific guarantees.
import { Kafka, logLevel } from 'kafkajs';
import { afterAll } from 'vitest';
import { KafkaEventBus } from '../../src/infra/kafka/kafka-event-bus.js';
import { eventBusConformance } from '../../src/testing/conformance/event-bus.js';
import { kafkaBrokers, uniqueName } from './peers-env.js';

const topic = uniqueName('mlplane.it.conformance');

eventBusConformance(
  'KafkaEventBus',
  async () => {
    const bus = new KafkaEventBus({ brokers: kafkaBrokers(), topic, partitions: 4 });
    return { bus, cleanup: () => bus.close() };
  },
  // Group joins and fetch long-polls make a broker slower than memory; the budgets say so.
  { deliveryTimeoutMs: 30_000, quietMs: 1_000 },
);

afterAll(async () => {
  const admin = new Kafka({ clientId: 'mlplane-it', brokers: kafkaBrokers(), logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const existing = await admin.listTopics();
    await admin.deleteTopics({ topics: [topic, `${topic}.dlq`].filter((t) => existing.includes(t)) });
  } finally {
    await admin.disconnect();
  }
});
