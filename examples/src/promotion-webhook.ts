import { randomUUID } from 'node:crypto';
import { coreServices, createServiceRef, definePlugin, STAGE_LATE, signWebhook, WEBHOOK_HEADERS } from '@mlplane/core';
import { z } from 'zod';

/** The event type of the requests this plugin sends (`x-mlplane-event-type`). */
export const PROMOTION_EVENT_TYPE = 'model.promoted';

/** Posts a signed JSON webhook whenever a model version is promoted. */
export interface PromotionNotifier {
  /** Sends one request; rejects with an error naming the URL when the receiver does not answer 2xx. */
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
          const eventId = randomUUID();
          const timestamp = String(Math.floor(Date.now() / 1000));
          // The platform's own webhook scheme, so a receiver checks these requests with verifyWebhook from
          // @mlplane/core like any other mlplane webhook: the MAC binds time, id and type to the body.
          const res = await fetch(config.url, {
            method: 'POST',
            headers: {
              'content-type': 'application/json',
              [WEBHOOK_HEADERS.eventId]: eventId,
              [WEBHOOK_HEADERS.eventType]: PROMOTION_EVENT_TYPE,
              [WEBHOOK_HEADERS.timestamp]: timestamp,
              [WEBHOOK_HEADERS.signature]: signWebhook(
                config.signingKey,
                timestamp,
                eventId,
                PROMOTION_EVENT_TYPE,
                payload,
              ),
            },
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
        // Late stage: other taps (audit, cache invalidation) see the promotion first. The tap is named
        // 'promotion-webhook/notify': the kernel prefixes every tap with the plugin's id.
        hooks.model.promoted.tapPromise({ name: 'notify', stage: STAGE_LATE }, async (version, promotion) => {
          await notifier.notify({ model: version.name, version: version.version, ...promotion });
          logger.info({ model: version.name, to: promotion.to }, 'promotion webhook sent');
        });
      },
    });
  },
});
