import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { modelRegistryRef, verifyWebhook, WEBHOOK_HEADERS } from '@mlplane/core';
import { startTestPlatform, type TestPlatform } from '@mlplane/defaults/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PROMOTION_EVENT_TYPE, promotionNotifierRef, promotionWebhookPlugin } from '../src/promotion-webhook.js';

const signingKey = 'a-webhook-signing-key-of-32-chars';

/** A real HTTP receiver on loopback that records each delivery with its raw body and headers. */
async function receiver(status = 200) {
  const deliveries: { body: string; headers: IncomingHttpHeaders }[] = [];
  const server: Server = createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    deliveries.push({ body, headers: req.headers });
    res.writeHead(status).end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return { url, deliveries, close: () => new Promise((r) => server.close(r)) };
}

/** Registers model `fraud` version 1 and moves it to Production through the platform's (guarded) registry. */
async function promote(platform: TestPlatform) {
  const registry = await platform.get(modelRegistryRef);
  await registry.createModel({ name: 'fraud' });
  const v1 = await registry.createVersion({ name: 'fraud', source: 's3://models/fraud/1' });
  return registry.transitionStage({ name: 'fraud', version: v1.version, to: 'Production', actor: 'ana', reason: 'ok' });
}

describe('promotion-webhook example plugin', () => {
  beforeEach(() => {
    // The embedded SecretStore reads MLPLANE_SECRET_<NAME> before its encrypted file.
    process.env.MLPLANE_SECRET_WEBHOOK_SIGNING_KEY = signingKey;
  });
  afterEach(() => {
    delete process.env.MLPLANE_SECRET_WEBHOOK_SIGNING_KEY;
  });

  it('posts a webhook that verifyWebhook accepts when a version is promoted through the registry', async () => {
    const hook = await receiver();
    await using platform = await startTestPlatform({
      plugins: [promotionWebhookPlugin()],
      config: { 'promotion-webhook': { url: hook.url, signingKey: '${secret:webhook-signing-key}' } },
    });
    expect(platform.hooks.model.promoted.taps.map((t) => t.name)).toContain('promotion-webhook/notify');

    await promote(platform);

    expect(hook.deliveries).toHaveLength(1);
    const [delivery] = hook.deliveries;
    expect(JSON.parse(delivery!.body)).toEqual({
      model: 'fraud',
      version: 1,
      kind: 'stage',
      from: 'None',
      to: 'Production',
      actor: 'ana',
      reason: 'ok',
    });
    expect(delivery!.headers[WEBHOOK_HEADERS.eventType]).toBe(PROMOTION_EVENT_TYPE);
    expect(delivery!.headers[WEBHOOK_HEADERS.eventId]).toMatch(/^[0-9a-f-]{36}$/);
    expect(verifyWebhook({ secret: signingKey, body: delivery!.body, headers: delivery!.headers })).toEqual({
      ok: true,
    });
    // The signature covers the body, the key and the labels: a change to any of them fails verification.
    expect(verifyWebhook({ secret: signingKey, body: `${delivery!.body} `, headers: delivery!.headers })).toEqual({
      ok: false,
      reason: 'signature mismatch',
    });
    expect(
      verifyWebhook({ secret: 'another-key-of-enough-length', body: delivery!.body, headers: delivery!.headers }),
    ).toEqual({ ok: false, reason: 'signature mismatch' });
    expect(
      verifyWebhook({
        secret: signingKey,
        body: delivery!.body,
        headers: { ...delivery!.headers, [WEBHOOK_HEADERS.eventType]: 'model.deleted' },
      }),
    ).toEqual({ ok: false, reason: 'signature mismatch' });
    await hook.close();
  });

  it('keeps the promotion when the receiver fails, and the notifier names the URL in its error', async () => {
    const hook = await receiver(500);
    await using platform = await startTestPlatform({
      plugins: [promotionWebhookPlugin({ url: hook.url, signingKey })],
    });
    // model.promoted runs after the change: a failing tap is logged, the promotion stands.
    const promoted = await promote(platform);
    expect(promoted.stage).toBe('Production');
    expect(hook.deliveries).toHaveLength(1);

    const notifier = await platform.get(promotionNotifierRef);
    await expect(notifier.notify({ model: 'fraud' })).rejects.toThrow(`webhook ${hook.url} answered 500`);
    expect(hook.deliveries).toHaveLength(2);
    await hook.close();
  });

  it('refuses to start with invalid config, naming the key and never the secret', async () => {
    const err = await startTestPlatform({
      plugins: [promotionWebhookPlugin()],
      config: { 'promotion-webhook': { url: 'not a url', signingKey: '${secret:webhook-signing-key}', timeoutMs: 0 } },
    }).catch((e: Error) => e);
    expect(String(err)).toContain('promotion-webhook.url: ');
    expect(String(err)).toContain('promotion-webhook.timeoutMs: ');
    expect(String(err)).not.toContain(signingKey);
  });

  it('fails at start when the referenced secret does not exist', async () => {
    delete process.env.MLPLANE_SECRET_WEBHOOK_SIGNING_KEY;
    await expect(
      startTestPlatform({
        plugins: [promotionWebhookPlugin()],
        config: { 'promotion-webhook': { url: 'http://127.0.0.1:1/x', signingKey: '${secret:webhook-signing-key}' } },
      }),
    ).rejects.toThrow("promotion-webhook.signingKey: references secret 'webhook-signing-key', which cannot be read");
  });
});
