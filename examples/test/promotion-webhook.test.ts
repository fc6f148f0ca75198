import { createHmac } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ModelPromotion, ModelVersion } from '@mlplane/core';
import { startTestPlatform } from '@mlplane/defaults/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { promotionWebhookPlugin } from '../src/promotion-webhook.js';

const signingKey = 'a-webhook-signing-key-of-32-chars';

/** A real HTTP receiver on loopback that records each delivery. */
async function receiver(status = 200) {
  const deliveries: { body: string; signature: string | undefined }[] = [];
  const server: Server = createServer(async (req: IncomingMessage, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    deliveries.push({ body, signature: req.headers['x-mlplane-signature'] as string | undefined });
    res.writeHead(status).end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return { url, deliveries, close: () => new Promise((r) => server.close(r)) };
}

const version = { name: 'fraud', version: 3, tags: {} } as unknown as ModelVersion;
const promotion: ModelPromotion = {
  kind: 'stage',
  from: 'Staging',
  to: 'Production',
  actor: 'ana',
  reason: 'review ok',
};

describe('promotion-webhook example plugin', () => {
  beforeEach(() => {
    // The embedded SecretStore reads MLPLANE_SECRET_<NAME> before its encrypted file.
    process.env.MLPLANE_SECRET_WEBHOOK_SIGNING_KEY = signingKey;
  });
  afterEach(() => {
    delete process.env.MLPLANE_SECRET_WEBHOOK_SIGNING_KEY;
  });

  it('posts a signed webhook when a model version is promoted', async () => {
    const hook = await receiver();
    await using platform = await startTestPlatform({
      plugins: [promotionWebhookPlugin()],
      config: { 'promotion-webhook': { url: hook.url, signingKey: '${secret:webhook-signing-key}' } },
    });
    await platform.hooks.model.promoted.promise(version, promotion);
    expect(hook.deliveries).toHaveLength(1);
    const [delivery] = hook.deliveries;
    expect(JSON.parse(delivery!.body)).toEqual({ model: 'fraud', version: 3, ...promotion });
    const expected = createHmac('sha256', signingKey).update(delivery!.body).digest('hex');
    expect(delivery!.signature).toBe(`sha256=${expected}`);
    await hook.close();
  });

  it('surfaces a failing receiver as an error naming the URL', async () => {
    const hook = await receiver(500);
    await using platform = await startTestPlatform({
      plugins: [promotionWebhookPlugin({ url: hook.url, signingKey })],
    });
    await expect(platform.hooks.model.promoted.promise(version, promotion)).rejects.toThrow(
      `webhook ${hook.url} answered 500`,
    );
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
