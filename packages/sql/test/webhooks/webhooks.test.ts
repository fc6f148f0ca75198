import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DomainEvent } from '@mlplane/core';
import {
  NotFoundError,
  signedContent,
  ValidationError,
  verifyWebhook,
  WEBHOOK_HEADERS,
  withTraceContext,
} from '@mlplane/core';
import { createEmbeddedTelemetry, EnvFileSecretStore, InProcessEventBus, SqliteMetadataStore } from '@mlplane/defaults';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { captureLogger, waitFor } from '../../../../test-support/wait.js';
import { domainEvent, readOutbox, recordEvent } from '../../src/outbox/outbox.js';
import { OutboxRelay } from '../../src/relay/outbox-relay.js';
import { WebhookDispatcher } from '../../src/webhooks/webhook-dispatcher.js';
import { WebhookSubscriptions } from '../../src/webhooks/webhook-subscriptions.js';
import { type Receiver, startReceiver } from './receiver.js';

let dir: string;
let store: SqliteMetadataStore;
let secrets: EnvFileSecretStore;
let bus: InProcessEventBus;
let subscriptions: WebhookSubscriptions;
let receiver: Receiver;
const cleanups: (() => Promise<void>)[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mlplane-webhooks-'));
  store = await SqliteMetadataStore.open({ path: join(dir, 'meta.sqlite') });
  secrets = new EnvFileSecretStore({
    path: join(dir, 'secrets.enc'),
    masterKey: randomBytes(32).toString('base64'),
    env: {},
  });
  bus = new InProcessEventBus();
  subscriptions = await WebhookSubscriptions.open({ store, secrets });
  receiver = await startReceiver();
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await bus.close();
  await receiver.close();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

async function dispatcher(options: Partial<ConstructorParameters<typeof WebhookDispatcher>[0]> = {}) {
  const d = new WebhookDispatcher({
    store,
    bus,
    secrets,
    subscriptions,
    backoff: { initialMs: 10, maxMs: 50 },
    maxAttempts: 4,
    timeoutMs: 2_000,
    ...options,
  });
  await d.start();
  cleanups.push(() => d.stop());
  return d;
}

function event(type = 'model.alias.set', payload: unknown = { name: 'fraud', alias: 'champion', version: 3 }) {
  return domainEvent(type, 'model:fraud', payload, { actor: 'alice', project: 'risk' });
}

describe('webhook subscriptions', () => {
  it('generates a secret kept only in the SecretStore and returned once', async () => {
    const { subscription, secret } = await subscriptions.create({
      url: receiver.url,
      eventTypes: ['model.*', 'run.created', 'model.*'],
      description: 'risk team',
    });
    expect(secret).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
    expect(subscription).toMatchObject({
      url: receiver.url,
      eventTypes: ['model.*', 'run.created'],
      secretName: `webhooks/${subscription.id}`,
      description: 'risk team',
      active: true,
    });
    expect(await secrets.get(subscription.secretName)).toBe(secret);
    expect(await subscriptions.get(subscription.id)).toEqual(subscription);
    const rows = await store.db().selectFrom('webhook_subscriptions').selectAll().execute();
    expect(JSON.stringify(rows)).not.toContain(secret!);
    const events = (await readOutbox(store.db())).map((e) => e.event);
    expect(events.map((e) => e.type)).toEqual(['webhook.subscription.created']);
    expect(JSON.stringify(events)).not.toContain(secret!);
  });

  it('leaves no generated secret behind when the subscription cannot be stored', async () => {
    const other = await SqliteMetadataStore.open({ path: join(dir, 'other.sqlite') });
    const orphaned = await WebhookSubscriptions.open({ store: other, secrets });
    await other.close();
    const err = await orphaned.create({ url: receiver.url, eventTypes: ['*'] }).catch((e: unknown) => e);
    // The store was closed, so the insert failed after the secret had been written.
    expect(err).toBeInstanceOf(Error);
    expect(await secrets.list()).toEqual([]);
  });

  it('uses a named existing secret, updates fields and deletes only generated secrets', async () => {
    await secrets.set('team/hook-secret', 'shared-secret');
    const { subscription, secret } = await subscriptions.create({
      url: 'https://hooks.example.com/x?token=abc',
      eventTypes: ['*'],
      secretName: 'team/hook-secret',
    });
    expect(secret).toBeUndefined();
    const updated = await subscriptions.update(subscription.id, { active: false, eventTypes: ['run.*'] });
    expect(updated).toMatchObject({ active: false, eventTypes: ['run.*'] });
    expect(await subscriptions.list({ activeOnly: true })).toEqual([]);
    expect(await subscriptions.list()).toHaveLength(1);
    await subscriptions.delete(subscription.id);
    await subscriptions.delete(subscription.id);
    await expect(subscriptions.get(subscription.id)).rejects.toThrow(NotFoundError);
    expect(await secrets.get('team/hook-secret')).toBe('shared-secret');
    const events = (await readOutbox(store.db())).map((e) => e.event);
    expect(events.map((e) => e.type)).toEqual([
      'webhook.subscription.created',
      'webhook.subscription.updated',
      'webhook.subscription.deleted',
    ]);
    // The URL's query string may carry a token: events leave it out.
    expect(JSON.stringify(events)).not.toContain('token=abc');

    const generated = await subscriptions.create({ url: receiver.url, eventTypes: ['*'] });
    await subscriptions.delete(generated.subscription.id);
    await expect(secrets.get(generated.subscription.secretName)).rejects.toThrow(NotFoundError);
  });

  it.each([
    [{ url: 'ftp://example.com/x', eventTypes: ['*'] }, 'url', /url must use http or https, not 'ftp'/],
    [{ url: 'not a url', eventTypes: ['*'] }, 'url', /url 'not a url' is not an absolute URL/],
    [{ url: 'https://user:pw@example.com/', eventTypes: ['*'] }, 'url', /url must not contain credentials/],
    [{ url: 42, eventTypes: ['*'] }, 'url', /url must be a string of 1 to 2048 characters/],
    [{ url: 'https://example.com/', eventTypes: [] }, 'eventTypes', /eventTypes must list 1 to 100 event types/],
    [
      { url: 'https://example.com/', eventTypes: ['Model.Created'] },
      'eventTypes',
      /event type "Model.Created" must be/,
    ],
    [{ url: 'https://example.com/', eventTypes: ['model'] }, 'eventTypes', /event type "model" must be/],
    [
      { url: 'https://example.com/', eventTypes: ['*'], secretName: 'missing' },
      'secretName',
      /secret 'missing' does not exist/,
    ],
    [
      { url: 'https://example.com/', eventTypes: ['*'], secretName: '../x' },
      'secretName',
      /is not a valid secret name/,
    ],
    [{ url: 'https://example.com/', eventTypes: ['*'], description: 'x'.repeat(1001) }, 'description', /at most 1000/],
    // The URL parser would drop these and deliver to https://example.com/hook, not the URL shown.
    [{ url: 'https://exa\tmple.com/hook', eventTypes: ['*'] }, 'url', /control character \(U\+0009/],
    [{ url: 'https://example.com/hook\r\n', eventTypes: ['*'] }, 'url', /control character \(U\+000D/],
    [{ url: ' https://example.com/hook', eventTypes: ['*'] }, 'url', /must not contain spaces/],
    [{ url: 'https://example.com/', eventTypes: ['*'], description: 'ok\u001b[2J' }, 'description', /U\+001B/],
  ])('rejects %j with ValidationError on %s', async (input, field, message) => {
    const err = await subscriptions.create(input as never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).field).toBe(field);
    expect((err as Error).message).toMatch(message);
  });

  it('rotates the signing secret: new value stored and returned once, named secrets left alone', async () => {
    await secrets.set('team/hook-secret', 'shared-secret');
    const { subscription } = await subscriptions.create({
      url: receiver.url,
      eventTypes: ['*'],
      secretName: 'team/hook-secret',
    });
    const rotated = await subscriptions.rotateSecret(subscription.id, 'alice');
    expect(rotated.secret).toMatch(/^whsec_/);
    expect(rotated.subscription.secretName).toBe(`webhooks/${subscription.id}`);
    expect(await secrets.get(rotated.subscription.secretName)).toBe(rotated.secret);
    expect(await secrets.get('team/hook-secret')).toBe('shared-secret');
    const again = await subscriptions.rotateSecret(subscription.id);
    expect(again.secret).not.toBe(rotated.secret);
    expect(await secrets.get(again.subscription.secretName)).toBe(again.secret);
    const events = (await readOutbox(store.db())).map((e) => e.event);
    expect(events.at(-1)).toMatchObject({ type: 'webhook.subscription.updated', payload: { secretRotated: true } });
    expect(JSON.stringify(events)).not.toContain(again.secret);
    await expect(subscriptions.rotateSecret('nope')).rejects.toThrow(NotFoundError);
    // Deliveries are signed with the new secret from the next attempt on.
    await dispatcher();
    const e = event();
    await bus.publish(e);
    await waitFor('the delivery', () => receiver.requests.length === 1);
    const [req] = receiver.requests;
    expect(verifyWebhook({ secret: again.secret, body: req!.body, headers: req!.headers })).toEqual({ ok: true });
  });

  it('refuses to generate a secret on a read-only SecretStore', async () => {
    const readOnly = await WebhookSubscriptions.open({
      store,
      secrets: { capabilities: { writable: false }, get: async () => 'x', list: async () => [] },
    });
    await expect(readOnly.create({ url: receiver.url, eventTypes: ['*'] })).rejects.toThrow(
      /SecretStore is read-only.*pass its secretName/,
    );
  });

  it('update raises NotFoundError for an unknown id and ValidationError for bad changes', async () => {
    await expect(subscriptions.update('nope', { active: false })).rejects.toThrow(NotFoundError);
    const { subscription } = await subscriptions.create({ url: receiver.url, eventTypes: ['*'] });
    await expect(subscriptions.update(subscription.id, { url: 'mailto:a@b.c' })).rejects.toThrow(ValidationError);
  });
});

describe('WebhookDispatcher options', () => {
  it.each([
    [{ maxAttempts: 0 }, 'maxAttempts must be a positive integer, got 0'],
    [{ timeoutMs: 1.5 }, 'timeoutMs must be a positive integer, got 1.5'],
    [{ refreshIntervalMs: -1 }, 'refreshIntervalMs must be a positive integer, got -1'],
    [{ backoff: { initialMs: 100, maxMs: 10 } }, 'backoff needs 0 < initialMs <= maxMs'],
  ])('rejects %j with ValidationError', (options, message) => {
    const make = () => new WebhookDispatcher({ store, bus, secrets, subscriptions, ...options });
    expect(make).toThrow(ValidationError);
    expect(make).toThrow(message);
  });
});

describe('WebhookDispatcher against a real HTTP receiver', () => {
  it('POSTs the event as JSON with a signature that verifies over timestamp, id, type and raw body', async () => {
    const { subscription, secret } = await subscriptions.create({ url: receiver.url, eventTypes: ['model.*'] });
    const d = await dispatcher();
    const e = event();
    await bus.publish(e);
    await waitFor('the delivery', () => receiver.requests.length === 1);
    const [req] = receiver.requests;
    expect(req!.method).toBe('POST');
    expect(req!.path).toBe('/hooks/mlplane');
    expect(req!.headers['content-type']).toBe('application/json');
    expect(req!.headers[WEBHOOK_HEADERS.eventId]).toBe(e.id);
    expect(req!.headers[WEBHOOK_HEADERS.eventType]).toBe('model.alias.set');
    expect(JSON.parse(req!.body)).toEqual(e);
    expect(verifyWebhook({ secret: secret!, body: req!.body, headers: req!.headers })).toEqual({ ok: true });

    // The documented construction, recomputed independently.
    const { createHmac } = await import('node:crypto');
    const ts = req!.headers[WEBHOOK_HEADERS.timestamp] as string;
    const mac = createHmac('sha256', secret!).update(`${ts}.${e.id}.${e.type}.${req!.body}`).digest('hex');
    expect(req!.headers[WEBHOOK_HEADERS.signature]).toBe(`sha256=${mac}`);
    expect(signedContent(ts, e.id, e.type, req!.body)).toBe(`${ts}.${e.id}.${e.type}.${req!.body}`);

    expect(verifyWebhook({ secret: secret!, body: `${req!.body} `, headers: req!.headers })).toEqual({
      ok: false,
      reason: 'signature mismatch',
    });
    expect(verifyWebhook({ secret: 'wrong', body: req!.body, headers: req!.headers }).ok).toBe(false);
    expect(
      verifyWebhook({
        secret: secret!,
        body: req!.body,
        headers: { ...req!.headers, [WEBHOOK_HEADERS.eventType]: 'x.y' },
      }),
    ).toEqual({ ok: false, reason: 'signature mismatch' });
    expect(verifyWebhook({ secret: secret!, body: req!.body, headers: req!.headers, now: Number(ts) + 301 })).toEqual({
      ok: false,
      reason: 'timestamp outside the tolerance',
    });

    await waitFor('the log row', async () => (await d.deliveries(subscription.id)).length === 1);
    expect(await d.deliveries(subscription.id)).toEqual([
      expect.objectContaining({
        eventId: e.id,
        eventType: 'model.alias.set',
        attempt: 1,
        outcome: 'delivered',
        statusCode: 200,
      }),
    ]);
  });

  it('sends the trace context of a traced event as traceparent and tracestate headers, and none for others', async () => {
    await subscriptions.create({ url: receiver.url, eventTypes: ['model.*'] });
    await dispatcher();
    const traceContext = {
      traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      tracestate: 'vendor=opaque',
    };
    const traced = withTraceContext(traceContext, () => event());
    await bus.publish(traced);
    await bus.publish(event());
    await waitFor('both deliveries', () => receiver.requests.length === 2);
    const [first, second] = receiver.requests;
    expect(first!.headers.traceparent).toBe(traceContext.traceparent);
    expect(first!.headers.tracestate).toBe(traceContext.tracestate);
    expect(JSON.parse(first!.body).traceContext).toEqual(traceContext);
    expect(second!.headers.traceparent).toBeUndefined();
    expect(second!.headers.tracestate).toBeUndefined();
  });

  it('retries on 500 with backoff, then succeeds; every attempt is logged', async () => {
    const { subscription } = await subscriptions.create({ url: receiver.url, eventTypes: ['*'] });
    const telemetry = createEmbeddedTelemetry({ logger: captureLogger() });
    const d = await dispatcher({ telemetry });
    receiver.script(500, 500);
    const e = event();
    await bus.publish(e);
    await waitFor('three requests', () => receiver.requests.length === 3);
    await waitFor('three log rows', async () => (await d.deliveries(subscription.id)).length === 3);
    const log = [...(await d.deliveries(subscription.id))].reverse();
    expect(log.map((r) => [r.attempt, r.outcome, r.statusCode])).toEqual([
      [1, 'retrying', 500],
      [2, 'retrying', 500],
      [3, 'delivered', 200],
    ]);
    expect(log[0]!.error).toBe('receiver answered HTTP 500');
    expect(new Set(receiver.requests.map((r) => r.headers[WEBHOOK_HEADERS.eventId]))).toEqual(new Set([e.id]));
    expect(receiver.requests[1]!.at - receiver.requests[0]!.at).toBeGreaterThanOrEqual(9);
    expect(await d.deadLetters(subscription.id)).toEqual([]);
    const text = await telemetry.metrics.metricsText();
    expect(text).toMatch(/mlplane_webhook_attempts_total\{outcome="retrying"\} 2/);
    expect(text).toMatch(/mlplane_webhook_attempts_total\{outcome="delivered"\} 1/);
  });

  it('retries 429 after its Retry-After', async () => {
    const { subscription } = await subscriptions.create({ url: receiver.url, eventTypes: ['*'] });
    const d = await dispatcher({ backoff: { initialMs: 10, maxMs: 5_000 } });
    receiver.script({ status: 429, headers: { 'retry-after': '1' } });
    await bus.publish(event());
    await waitFor('two requests', () => receiver.requests.length === 2, 10_000);
    expect(receiver.requests[1]!.at - receiver.requests[0]!.at).toBeGreaterThanOrEqual(900);
    await waitFor('delivered', async () => (await d.deliveries(subscription.id))[0]?.outcome === 'delivered');
  });

  it('does not retry a 4xx other than 408/429: one attempt, logged as failed, dead-lettered', async () => {
    const { subscription } = await subscriptions.create({ url: receiver.url, eventTypes: ['*'] });
    const d = await dispatcher();
    receiver.script(400);
    const e = event();
    await bus.publish(e);
    await waitFor('the dead letter', async () => (await d.deadLetters(subscription.id)).length === 1);
    await new Promise((r) => setTimeout(r, 100));
    expect(receiver.requests).toHaveLength(1);
    expect(await d.deliveries(subscription.id)).toEqual([
      expect.objectContaining({ attempt: 1, outcome: 'failed', statusCode: 400, error: 'receiver answered HTTP 400' }),
    ]);
    const [letter] = await d.deadLetters(subscription.id);
    expect(letter).toMatchObject({ group: `webhook.${subscription.id}`, lastError: 'receiver answered HTTP 400' });
    expect(letter!.event.id).toBe(e.id);

    // Once the receiver is fixed, a redelivery goes through.
    await d.redeliver(subscription.id, e.id);
    await waitFor('the redelivery', () => receiver.requests.length === 2);
    await waitFor('delivered', async () => (await d.deliveries(subscription.id))[0]?.outcome === 'delivered');
  });

  it('gives up after maxAttempts of 503 into the dead letters', async () => {
    const { subscription } = await subscriptions.create({ url: receiver.url, eventTypes: ['*'] });
    const d = await dispatcher({ maxAttempts: 3 });
    receiver.script(503, 503, 503, 503);
    await bus.publish(event());
    await waitFor('the dead letter', async () => (await d.deadLetters(subscription.id)).length === 1);
    expect(receiver.requests).toHaveLength(3);
    const log = [...(await d.deliveries(subscription.id))].reverse();
    expect(log.map((r) => r.outcome)).toEqual(['retrying', 'retrying', 'failed']);
  });

  it('retries network errors and records them', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const { subscription } = await subscriptions.create({ url: `http://127.0.0.1:${port}/gone`, eventTypes: ['*'] });
    const d = await dispatcher({ maxAttempts: 2 });
    await bus.publish(event());
    await waitFor('the dead letter', async () => (await d.deadLetters(subscription.id)).length === 1);
    const log = [...(await d.deliveries(subscription.id))].reverse();
    expect(log.map((r) => [r.outcome, r.statusCode, r.error])).toEqual([
      ['retrying', undefined, 'network error: ECONNREFUSED'],
      ['failed', undefined, 'network error: ECONNREFUSED'],
    ]);
  });

  it('filters by event type, skips events older than the subscription, and picks up new subscriptions', async () => {
    const d = await dispatcher();
    const old = event('model.tag.set', { name: 'fraud' });
    const { subscription } = await subscriptions.create({ url: receiver.url, eventTypes: ['model.alias.set'] });
    const other = await startReceiver();
    cleanups.push(() => other.close());
    await subscriptions.create({ url: other.url, eventTypes: ['run.*'] });
    await d.sync();
    await bus.publish([
      { ...event('model.alias.set'), occurredAt: old.occurredAt, id: old.id },
      event('run.created', { runId: 'r1' }),
      event('model.alias.set'),
      event('model.version.created', { name: 'fraud', version: 1 }),
    ]);
    await waitFor('one delivery each', () => receiver.requests.length === 1 && other.requests.length === 1);
    await new Promise((r) => setTimeout(r, 150));
    expect(receiver.requests.map((r) => r.headers[WEBHOOK_HEADERS.eventType])).toEqual(['model.alias.set']);
    expect(other.requests.map((r) => r.headers[WEBHOOK_HEADERS.eventType])).toEqual(['run.created']);
    expect(await d.deliveries(subscription.id)).toHaveLength(1);
  });

  it('does not send an event the log shows as delivered again (restart with a fresh bus)', async () => {
    const { subscription } = await subscriptions.create({ url: receiver.url, eventTypes: ['*'] });
    const first = await dispatcher();
    const e: DomainEvent = event();
    await bus.publish(e);
    await waitFor('delivered', async () => (await first.deliveries(subscription.id)).length === 1);
    await first.stop();
    const freshBus = new InProcessEventBus();
    cleanups.push(() => freshBus.close());
    await dispatcher({ bus: freshBus });
    await freshBus.publish(e);
    await freshBus.publish(event());
    await waitFor('the new event', () => receiver.requests.length === 2);
    await new Promise((r) => setTimeout(r, 100));
    expect(receiver.requests.filter((r) => r.headers[WEBHOOK_HEADERS.eventId] === e.id)).toHaveLength(1);
  });

  it('stops subscriptions that are deactivated or deleted', async () => {
    const { subscription } = await subscriptions.create({ url: receiver.url, eventTypes: ['*'] });
    await dispatcher();
    await bus.publish(event());
    await waitFor('first', () => receiver.requests.length === 1);
    await subscriptions.update(subscription.id, { active: false });
    await new Promise((r) => setTimeout(r, 50));
    await bus.publish(event());
    await new Promise((r) => setTimeout(r, 150));
    expect(receiver.requests).toHaveLength(1);
  });

  it('stop() cuts retries short after the grace period into dead letters that the next start() redelivers', async () => {
    const { subscription } = await subscriptions.create({ url: receiver.url, eventTypes: ['*'] });
    const first = new WebhookDispatcher({
      store,
      bus,
      secrets,
      subscriptions,
      backoff: { initialMs: 5_000, maxMs: 5_000 },
      stopGraceMs: 50,
    });
    await first.start();
    receiver.script(500);
    const e = event();
    await bus.publish(e);
    await waitFor('first attempt', () => receiver.requests.length === 1);
    const t0 = performance.now();
    await first.stop();
    expect(performance.now() - t0).toBeLessThan(2_000);
    expect((await first.deadLetters(subscription.id)).map((l) => l.event.id)).toEqual([e.id]);
    await dispatcher();
    await waitFor('the redelivery', () => receiver.requests.length === 2);
    expect(receiver.requests[1]!.headers[WEBHOOK_HEADERS.eventId]).toBe(e.id);
  });

  it('delivers events recorded in the outbox end to end through the relay', async () => {
    const { subscription } = await subscriptions.create({ url: receiver.url, eventTypes: ['model.*'] });
    const d = await dispatcher();
    const relay = await OutboxRelay.open({ store, bus, pollIntervalMs: 20 });
    cleanups.push(() => relay.stop());
    relay.start();
    const e = event('model.version.created', { name: 'fraud', version: 1 });
    await store.transaction((trx) => recordEvent(trx, e));
    relay.notify();
    await waitFor('the delivery', () => receiver.requests.length === 1);
    expect(JSON.parse(receiver.requests[0]!.body).id).toBe(e.id);
    await waitFor('log', async () => (await d.deliveries(subscription.id)).length === 1);
  });
});
