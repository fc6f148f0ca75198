// Webhook subscriptions and the delivery log on the PostgreSQL peer (the dialect production uses).
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { verifyWebhook } from '@mlplane/core';
import { EnvFileSecretStore, InProcessEventBus } from '@mlplane/defaults';
import { PostgresMetadataStore } from '@mlplane/plugin-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dropSchema, freshSchema, pgUrl } from '../../../../test-support/pg-env.js';
import { waitFor } from '../../../../test-support/wait.js';
import { domainEvent, recordEvent } from '../../src/outbox/outbox.js';
import { OutboxRelay } from '../../src/relay/outbox-relay.js';
import { WebhookDispatcher } from '../../src/webhooks/webhook-dispatcher.js';
import { WebhookSubscriptions } from '../../src/webhooks/webhook-subscriptions.js';
import { type Receiver, startReceiver } from './receiver.js';

const schema = freshSchema('mlplane_webhooks');
let store: PostgresMetadataStore;
let dir: string;
let receiver: Receiver;

beforeAll(async () => {
  store = await PostgresMetadataStore.connect({ connectionString: pgUrl(), schema });
  dir = await mkdtemp(join(tmpdir(), 'mlplane-webhooks-pg-'));
  receiver = await startReceiver();
});

afterAll(async () => {
  await receiver?.close();
  await store?.close();
  await rm(dir, { recursive: true, force: true });
  await dropSchema(schema);
});

describe('on the PostgreSQL peer', () => {
  it('delivers relayed outbox events to a webhook with retries and keeps the delivery log', async () => {
    const secrets = new EnvFileSecretStore({
      path: join(dir, 'secrets.enc'),
      masterKey: randomBytes(32).toString('base64'),
      env: {},
    });
    const bus = new InProcessEventBus();
    const subscriptions = await WebhookSubscriptions.open({ store, secrets });
    const { subscription, secret } = await subscriptions.create({ url: receiver.url, eventTypes: ['model.*'] });
    const dispatcher = new WebhookDispatcher({
      store,
      bus,
      secrets,
      subscriptions,
      backoff: { initialMs: 10, maxMs: 50 },
    });
    await dispatcher.start();
    const relay = await OutboxRelay.open({ store, bus, pollIntervalMs: 20 });
    relay.start();
    try {
      receiver.script(502);
      const e = domainEvent('model.alias.set', 'model:fraud', { name: 'fraud', alias: 'champion', version: 1 });
      await store.transaction((trx) => recordEvent(trx, e));
      relay.notify();
      await waitFor('two requests', () => receiver.requests.length === 2);
      const last = receiver.requests[1]!;
      expect(verifyWebhook({ secret: secret!, body: last.body, headers: last.headers })).toEqual({ ok: true });
      await waitFor('two log rows', async () => (await dispatcher.deliveries(subscription.id)).length === 2);
      const log = [...(await dispatcher.deliveries(subscription.id))].reverse();
      expect(log.map((r) => [r.attempt, r.outcome, r.statusCode])).toEqual([
        [1, 'retrying', 502],
        [2, 'delivered', 200],
      ]);
      expect(log[1]!.at).toBeInstanceOf(Date);
      expect((await subscriptions.get(subscription.id)).createdAt).toEqual(subscription.createdAt);
    } finally {
      await relay.stop();
      await dispatcher.stop();
      await bus.close();
    }
  });
});
