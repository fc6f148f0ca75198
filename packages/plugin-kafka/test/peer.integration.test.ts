// Checks the Kafka peer (`scripts/peers up kafka`): create a topic, produce messages, consume them back.
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { describe, expect, it } from 'vitest';

function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run scripts/peers up kafka, then eval "$(scripts/peers env)"`);
  return value;
}

describe('kafka peer', () => {
  it('produces to a new topic and consumes the same messages', async () => {
    const brokers = requireEnv('MLPLANE_KAFKA_BROKERS').split(',');
    const kafka = new Kafka({ clientId: 'mlplane-it', brokers, logLevel: logLevel.WARN });
    const suffix = Date.now().toString(36);
    const topic = `mlplane-it-${suffix}`;

    const admin = kafka.admin();
    await admin.connect();
    try {
      expect(
        await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }], waitForLeaders: true }),
      ).toBe(true);
      expect(await admin.listTopics()).toContain(topic);
    } finally {
      await admin.disconnect();
    }

    const sent = [
      { key: 'k1', value: 'first' },
      { key: 'k2', value: 'second' },
      { key: 'k3', value: JSON.stringify({ n: 3 }) },
    ];
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    try {
      const meta = await producer.send({ topic, messages: sent });
      expect(meta[0]?.errorCode).toBe(0);
    } finally {
      await producer.disconnect();
    }

    const consumer = kafka.consumer({ groupId: `mlplane-it-${suffix}` });
    await consumer.connect();
    try {
      await consumer.subscribe({ topic, fromBeginning: true });
      const received: { key: string; value: string; offset: string }[] = [];
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`only ${received.length} of ${sent.length} messages arrived`)),
          60_000,
        );
        consumer
          .run({
            eachMessage: async ({ message }) => {
              received.push({
                key: message.key?.toString() ?? '',
                value: message.value?.toString() ?? '',
                offset: message.offset,
              });
              if (received.length === sent.length) {
                clearTimeout(timer);
                resolve();
              }
            },
          })
          .catch(reject);
      });
      expect(received.map(({ key, value }) => ({ key, value }))).toEqual(sent);
      expect(received.map((m) => m.offset)).toEqual(['0', '1', '2']);
    } finally {
      await consumer.disconnect();
    }
  });
});
