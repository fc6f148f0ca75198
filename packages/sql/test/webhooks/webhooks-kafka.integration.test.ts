// WebhookDispatcher on the Kafka peer: a new subscription's group replays the topic from its start, so history must
// be skipped; retries, a dead letter in the DLQ topic and its redelivery work through Kafka.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WEBHOOK_HEADERS } from '@mlplane/core';
import { EnvFileSecretStore, SqliteMetadataStore } from '@mlplane/defaults';
import { KafkaEventBus } from '@mlplane/plugin-kafka';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kafkaBrokers, uniqueName } from '../../../../test-support/peers-env.js';
import { waitFor } from '../../../../test-support/wait.js';
import { domainEvent } from '../../src/outbox/outbox.js';
import { WebhookDispatcher } from '../../src/webhooks/webhook-dispatcher.js';
import { WebhookSubscriptions } from '../../src/webhooks/webhook-subscriptions.js';
import { type Receiver, startReceiver } from './receiver.js';

const topic = uniqueName('mlplane.it.webhooks');
let dir: string;
let store: SqliteMetadataStore;
let receiver: Receiver;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mlplane-webhooks-kafka-'));
  store = await SqliteMetadataStore.open({ path: join(dir, 'meta.sqlite') });
  receiver = await startReceiver();
});

afterAll(async () => {
  await receiver?.close();
  await store?.close();
  await rm(dir, { recursive: true, force: true });
  const admin = new Kafka({ clientId: 'mlplane-it', brokers: kafkaBrokers(), logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const existing = await admin.listTopics();
    await admin.deleteTopics({ topics: [topic, `${topic}.dlq`].filter((t) => existing.includes(t)) });
  } finally {
    await admin.disconnect();
  }
});

describe('WebhookDispatcher on the Kafka peer', () => {
  it('skips history, retries, dead-letters a 400 and redelivers it', async () => {
    const bus = new KafkaEventBus({ brokers: kafkaBrokers(), topic, partitions: 2 });
    const secrets = new EnvFileSecretStore({
      path: join(dir, 'secrets.enc'),
      masterKey: randomBytes(32).toString('base64'),
      env: {},
    });
    const subscriptions = await WebhookSubscriptions.open({ store, secrets });
    const old = domainEvent('model.alias.set', 'model:fraud', { name: 'fraud', alias: 'champion', version: 1 });
    await bus.publish(old);
    await new Promise((r) => setTimeout(r, 20));
    const { subscription } = await subscriptions.create({ url: receiver.url, eventTypes: ['model.*'] });
    const dispatcher = new WebhookDispatcher({
      store,
      bus,
      secrets,
      subscriptions,
      backoff: { initialMs: 20, maxMs: 100 },
    });
    try {
      await dispatcher.start();
      receiver.script(500, 200, 400);
      const retried = domainEvent('model.alias.set', 'model:fraud', { name: 'fraud', alias: 'champion', version: 2 });
      await bus.publish(retried);
      await waitFor('two attempts', () => receiver.requests.length === 2, 60_000);
      const rejected = domainEvent('model.tag.set', 'model:fraud', { name: 'fraud', key: 'a', value: 'b' });
      await bus.publish(rejected);
      await waitFor(
        'the dead letter',
        async () => (await dispatcher.deadLetters(subscription.id)).length === 1,
        60_000,
      );
      const [letter] = await dispatcher.deadLetters(subscription.id);
      expect(letter!.event.id).toBe(rejected.id);
      await dispatcher.redeliver(subscription.id, rejected.id);
      await waitFor('the redelivery', () => receiver.requests.length === 4, 60_000);
      const ids = receiver.requests.map((r) => r.headers[WEBHOOK_HEADERS.eventId]);
      expect(ids).toEqual([retried.id, retried.id, rejected.id, rejected.id]);
      expect(ids).not.toContain(old.id);
      await waitFor('the log', async () => (await dispatcher.deliveries(subscription.id)).length === 4);
      const log = [...(await dispatcher.deliveries(subscription.id))].reverse();
      expect(log.map((r) => [r.eventId, r.outcome, r.statusCode])).toEqual([
        [retried.id, 'retrying', 500],
        [retried.id, 'delivered', 200],
        [rejected.id, 'failed', 400],
        [rejected.id, 'delivered', 200],
      ]);
    } finally {
      await dispatcher.stop();
      await bus.close();
    }
  }, 180_000);
});
