import { createHmac } from 'node:crypto';
import { coreServices, createServiceRef, definePlugin, STAGE_LATE } from '@mlplane/core';
import { z } from 'zod';

/** Posts a signed JSON webhook whenever a model version is promoted. */
export interface PromotionNotifier {
  notify(body: unknown): Promise<void>;
}
export const promotionNotifierRef = createServiceRef<PromotionNotifier>({ id: 'examples.promotionNotifier' });

export const promotionWebhookPlugin = definePlugin({
  id: 'promotion-webhook',
  configSchema: z.object({
    url: z.url(),
    /** Shared with the receiver; use `${secret:name}` so it never sits in the config file. */
    signingKey: z.string().min(16),
    timeoutMs: z.number().int().positive().default(5_000),
  }),
  register(env) {
    env.provide(promotionNotifierRef, {
      factory: ({ config }) => ({
        async notify(body) {
          const payload = JSON.stringify(body);
          const signature = createHmac('sha256', config.signingKey).update(payload).digest('hex');
          const res = await fetch(config.url, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-mlplane-signature': `sha256=${signature}` },
            body: payload,
            signal: AbortSignal.timeout(config.timeoutMs),
          });
          if (!res.ok) throw new Error(`webhook ${config.url} answered ${res.status}`);
        },
      }),
    });
    env.registerInit({
      deps: { hooks: coreServices.hooks, notifier: promotionNotifierRef, logger: coreServices.logger },
      init({ hooks, notifier, logger }) {
        // Late stage: other taps (audit, cache invalidation) see the promotion first.
        hooks.model.promoted.tapPromise(
          { name: 'promotion-webhook', stage: STAGE_LATE },
          async (version, promotion) => {
            await notifier.notify({ model: version.name, version: version.version, ...promotion });
            logger.info({ model: version.name, to: promotion.to }, 'promotion webhook sent');
          },
        );
      },
    });
  },
});
