import { z } from 'zod';
import { coreServices } from '../kernel/core-services.js';
import { definePlugin } from '../kernel/plugin.js';
import { createServiceRef } from '../kernel/service-ref.js';
import { auditLogRef } from '../ports/audit-log.js';
import { eventBusRef } from '../ports/event-bus.js';
import { metadataStoreRef } from '../ports/metadata-store.js';
import { secretStoreRef } from '../ports/secret-store.js';
import { telemetryRef } from '../ports/telemetry.js';
import { auditEventHandler } from './audit/from-event.js';
import { OutboxRelay } from './relay/outbox-relay.js';
import { WebhookDispatcher } from './webhooks/webhook-dispatcher.js';
import { WebhookSubscriptions } from './webhooks/webhook-subscriptions.js';

/** Webhook subscriptions (create, list, rotate the signing secret); the platform delivers events to them. */
export const webhookSubscriptionsRef = createServiceRef<WebhookSubscriptions>({
  id: 'management.webhookSubscriptions',
});

/**
 * Moves domain events from the transactional outbox to the EventBus, records every event in the audit log, and
 * delivers events to webhook subscriptions (signed, retried, logged).
 * It works on whichever MetadataStore, EventBus and AuditLog are chosen, so it runs unchanged in production.
 */
export const managementPlugin = definePlugin({
  id: 'management',
  configSchema: z.object({
    relay: z
      .object({
        enabled: z.boolean().default(true),
        batchSize: z.number().int().positive().max(10_000).default(500),
        pollIntervalMs: z.number().int().positive().default(200),
      })
      .default({ enabled: true, batchSize: 500, pollIntervalMs: 200 }),
    /** Consumer group that writes events into the audit log; every process joins it, each event is audited once. */
    auditGroup: z.string().min(1).default('audit'),
    webhooks: z
      .object({
        enabled: z.boolean().default(true),
        maxAttempts: z.number().int().positive().max(50).default(8),
        timeoutMs: z.number().int().positive().default(10_000),
      })
      .default({ enabled: true, maxAttempts: 8, timeoutMs: 10_000 }),
  }),
  register(env) {
    env.provide(webhookSubscriptionsRef, {
      deps: { store: metadataStoreRef, secrets: secretStoreRef },
      factory: ({ store, secrets }) => WebhookSubscriptions.open({ store, secrets }),
    });
    env.registerInit({
      deps: {
        store: metadataStoreRef,
        bus: eventBusRef,
        audit: auditLogRef,
        telemetry: telemetryRef,
        secrets: secretStoreRef,
        webhooks: webhookSubscriptionsRef,
        lifecycle: coreServices.lifecycle,
      },
      async init({ store, bus, audit, telemetry, secrets, webhooks, lifecycle, config }) {
        const subscription = await bus.subscribe({ group: config.auditGroup, handler: auditEventHandler(audit) });
        lifecycle.addShutdownHook(() => subscription.close(), 'audit consumer');
        if (config.webhooks.enabled) {
          const dispatcher = new WebhookDispatcher({
            store,
            bus,
            secrets,
            subscriptions: webhooks,
            telemetry,
            maxAttempts: config.webhooks.maxAttempts,
            timeoutMs: config.webhooks.timeoutMs,
          });
          lifecycle.addStartHook(() => dispatcher.start(), 'webhook dispatcher');
          lifecycle.addShutdownHook(() => dispatcher.stop(), 'webhook dispatcher');
        }
        if (!config.relay.enabled) return;
        const relay = await OutboxRelay.open({
          store,
          bus,
          telemetry,
          batchSize: config.relay.batchSize,
          pollIntervalMs: config.relay.pollIntervalMs,
        });
        lifecycle.addStartHook(() => relay.start(), 'outbox relay');
        // Registered after the audit consumer's hook, so it runs first: stop relaying, then stop consuming.
        lifecycle.addShutdownHook(() => relay.stop(), 'outbox relay');
      },
    });
  },
});
