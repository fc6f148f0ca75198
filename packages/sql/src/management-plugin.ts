import { randomUUID } from 'node:crypto';
import {
  artifactStoreRef,
  auditLogRef,
  authorizerRef,
  coreServices,
  createServiceRef,
  DEFAULT_MAX_TOKEN_LIFETIME_MS,
  type DomainEvent,
  definePlugin,
  eventBusRef,
  experimentTrackerRef,
  metadataStoreRef,
  modelRegistryRef,
  secretStoreRef,
  telemetryRef,
} from '@mlplane/core';
import { z } from 'zod';
import { DEFAULT_CHECKPOINT_PREFIX } from './audit/checkpoints.js';
import { auditEventHandler } from './audit/from-event.js';
import { DEFAULT_AUDIT_KEY_SECRET, DEFAULT_CHECKPOINT_INTERVAL_MS, SqlAuditLog } from './audit/sql-audit-log.js';
import { FAILED_CHECK_MAX_GROUPS, FAILED_CHECK_WINDOW_MS } from './authz/failed-checks.js';
import { DEFAULT_TOKEN_CACHE_TTL_MS, SqlAuthorizer } from './authz/sql-authorizer.js';
import { SqlLeaseManager } from './leases/sql-lease.js';
import { OUTBOX_MIGRATIONS, OUTBOX_OWNER, purgeRelayed } from './outbox/outbox.js';
import { SqlModelRegistry } from './registry/sql-model-registry.js';
import { OutboxRelay } from './relay/outbox-relay.js';
import { RetentionSweeper } from './retention/retention-sweeper.js';
import { SqlExperimentTracker } from './tracker/sql-experiment-tracker.js';
import { purgeDeliveries, WebhookDispatcher } from './webhooks/webhook-dispatcher.js';
import { WebhookSubscriptions } from './webhooks/webhook-subscriptions.js';

/** Webhook subscriptions (create, list, rotate the signing secret); the platform delivers events to them. */
export const webhookSubscriptionsRef = createServiceRef<WebhookSubscriptions>({
  id: 'management.webhookSubscriptions',
});

const DAY_MS = 86_400_000;
const TOKEN_DEFAULTS = Object.freeze({
  maxLifetimeMs: DEFAULT_MAX_TOKEN_LIFETIME_MS,
  failedCheckWindowMs: FAILED_CHECK_WINDOW_MS,
  failedCheckGroups: FAILED_CHECK_MAX_GROUPS,
  cacheTtlMs: DEFAULT_TOKEN_CACHE_TTL_MS,
});
const AUDIT_CHECKPOINT_DEFAULTS = Object.freeze({
  enabled: true,
  intervalMs: DEFAULT_CHECKPOINT_INTERVAL_MS,
  prefix: DEFAULT_CHECKPOINT_PREFIX,
});
const RETENTION_DEFAULTS = Object.freeze({
  enabled: true,
  sweepIntervalMs: 600_000,
  relayedEventsMs: 7 * DAY_MS,
  webhookDeliveriesMs: 30 * DAY_MS,
});

/**
 * The management layer on SQL: the default ExperimentTracker, ModelRegistry, AuditLog and Authorizer on the chosen
 * MetadataStore. It also moves domain events from the transactional outbox to the EventBus, records every event in the audit log,
 * delivers events to webhook subscriptions (signed, retried, logged), and purges relayed events and delivery
 * records past their retention.
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
    /** Default project recorded in audit entries for events that name none. */
    defaultProject: z.string().min(1).default('default'),
    /** Consumer group that writes events into the audit log; every process joins it, each event is audited once. */
    auditGroup: z.string().min(1).default('audit'),
    /** The audit log's tamper evidence; docs/security.md says what each setting protects against. */
    audit: z
      .object({
        /**
         * Secret in the SecretStore holding the key the audit chain is written with (HMAC). Created on first use when
         * the SecretStore is writable; with a read-only one, create it first (32 random bytes, base64).
         */
        keySecret: z.string().min(1).default(DEFAULT_AUDIT_KEY_SECRET),
        /** Signed checkpoints of the audit head in the ArtifactStore, compared with the database at every start. */
        checkpoints: z
          .object({
            enabled: z.boolean().default(true),
            /** Entries appended within the last interval can be lost or cut off unnoticed; 0: only on stop. */
            intervalMs: z.number().int().nonnegative().default(DEFAULT_CHECKPOINT_INTERVAL_MS),
            prefix: z.string().min(1).default(DEFAULT_CHECKPOINT_PREFIX),
          })
          .default(AUDIT_CHECKPOINT_DEFAULTS),
        /**
         * Accepts that exactly these audit entries are gone, when a start refused because the database lost them
         * (the refusal names the range). The loss is recorded in the log; any other loss still refuses.
         */
        acceptLoss: z
          .object({ fromSeq: z.number().int().positive(), toSeq: z.number().int().positive() })
          .refine((r) => r.fromSeq <= r.toSeq, { message: 'fromSeq must not exceed toSeq' })
          .optional(),
      })
      .default({ keySecret: DEFAULT_AUDIT_KEY_SECRET, checkpoints: AUDIT_CHECKPOINT_DEFAULTS }),
    webhooks: z
      .object({
        enabled: z.boolean().default(true),
        maxAttempts: z.number().int().positive().max(50).default(8),
        timeoutMs: z.number().int().positive().default(10_000),
      })
      .default({ enabled: true, maxAttempts: 8, timeoutMs: 10_000 }),
    /**
     * How long rows that only serve operations are kept: relayed outbox events (the audit log keeps its own copy)
     * and webhook delivery records. One process sweeps at a time (a lease).
     */
    retention: z
      .object({
        enabled: z.boolean().default(true),
        sweepIntervalMs: z.number().int().positive().default(RETENTION_DEFAULTS.sweepIntervalMs),
        relayedEventsMs: z.number().int().positive().default(RETENTION_DEFAULTS.relayedEventsMs),
        webhookDeliveriesMs: z.number().int().positive().default(RETENTION_DEFAULTS.webhookDeliveriesMs),
      })
      .default(RETENTION_DEFAULTS),
    /** API tokens issued by the authorizer. */
    tokens: z
      .object({
        /** Longest lifetime a token may be given (expiresAt - now); a longer one is refused. Default 365 days. */
        maxLifetimeMs: z.number().int().positive().default(TOKEN_DEFAULTS.maxLifetimeMs),
        /** Failed token checks of one source and reason within this window are written as one audit entry. */
        failedCheckWindowMs: z.number().int().positive().default(TOKEN_DEFAULTS.failedCheckWindowMs),
        /** Source/reason groups kept per window; failures beyond are counted per reason, so memory stays bounded. */
        failedCheckGroups: z.number().int().positive().max(100_000).default(TOKEN_DEFAULTS.failedCheckGroups),
        /**
         * How long a verified token is answered from memory (0: every request reads its row). A revocation, grant or
         * role change empties it at once in the process that made it, and in the others on its `authz.*` event;
         * the TTL bounds how long an event lost on the way could leave a revoked token working. Default 5 s.
         */
        cacheTtlMs: z.number().int().min(0).max(300_000).default(TOKEN_DEFAULTS.cacheTtlMs),
      })
      .default(TOKEN_DEFAULTS),
  }),
  register(env) {
    // Defaults for the management ports: they run on whichever MetadataStore is chosen (SQLite, PostgreSQL), and give
    // way to any other provider (an MLflow tracker and registry, say) without further config.
    env.provide(experimentTrackerRef, {
      asDefault: true,
      deps: { store: metadataStoreRef, artifacts: artifactStoreRef },
      factory: ({ store, artifacts }) => SqlExperimentTracker.open({ store, artifacts }),
    });
    env.provide(modelRegistryRef, {
      asDefault: true,
      deps: { store: metadataStoreRef, tracker: experimentTrackerRef },
      factory: ({ store, tracker }) => SqlModelRegistry.open({ store, tracker }),
    });
    env.provide(auditLogRef, {
      asDefault: true,
      deps: {
        store: metadataStoreRef,
        secrets: secretStoreRef,
        artifacts: artifactStoreRef,
        logger: coreServices.logger,
      },
      factory: ({ store, secrets, artifacts, logger, config }) =>
        SqlAuditLog.open({
          store,
          secrets,
          keySecret: config.audit.keySecret,
          defaultProject: config.defaultProject,
          ...(config.audit.checkpoints.enabled
            ? {
                checkpoints: {
                  artifacts,
                  prefix: config.audit.checkpoints.prefix,
                  intervalMs: config.audit.checkpoints.intervalMs,
                },
              }
            : {}),
          ...(config.audit.acceptLoss ? { acceptLoss: config.audit.acceptLoss } : {}),
          logger,
        }),
      // Runs after every plugin's shutdown hooks (the audit consumer has stopped), so the last checkpoint covers all.
      dispose: (log) => (log instanceof SqlAuditLog ? log.close() : undefined),
    });
    // The authorizer this plugin made, if it is the one chosen: its token cache hears other processes' changes.
    let sqlAuthorizer: SqlAuthorizer | undefined;
    env.provide(authorizerRef, {
      asDefault: true,
      deps: { store: metadataStoreRef, audit: auditLogRef, logger: coreServices.logger },
      factory: async ({ store, audit, logger, config }) => {
        sqlAuthorizer = await SqlAuthorizer.open({
          store,
          audit,
          logger,
          maxTokenLifetimeMs: config.tokens.maxLifetimeMs,
          maxTokenLifetimeSetting: 'management.tokens.maxLifetimeMs',
          failedChecks: { windowMs: config.tokens.failedCheckWindowMs, maxGroups: config.tokens.failedCheckGroups },
          tokenCacheTtlMs: config.tokens.cacheTtlMs,
        });
        return sqlAuthorizer;
      },
      // Writes the failed-check counts still coalescing, before the audit log and the store are disposed.
      dispose: (authorizer) => authorizer.close(),
    });
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
        // Resolved here so that, when it is this plugin's, its token cache is subscribed below.
        authorizer: authorizerRef,
      },
      async init({ store, bus, audit, telemetry, secrets, webhooks, lifecycle, config }) {
        const subscription = await bus.subscribe({ group: config.auditGroup, handler: auditEventHandler(audit) });
        lifecycle.addShutdownHook(() => subscription.close(), 'audit consumer');
        if (sqlAuthorizer && config.tokens.cacheTtlMs > 0) {
          const tokens = sqlAuthorizer;
          // A group of this process's own, so every process hears every change (a shared group would deliver each
          // event to one of them). A bus that replays to new groups replays old changes: each only empties a cache.
          const cacheSubscription = await bus.subscribe({
            group: `authz-token-cache-${randomUUID()}`,
            types: ['authz.*'],
            handler: async (event) => tokenCacheEvent(tokens, event),
          });
          lifecycle.addShutdownHook(() => cacheSubscription.close(), 'token cache invalidation');
        }
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
        if (config.retention.enabled) {
          await store.migrate(OUTBOX_OWNER, OUTBOX_MIGRATIONS);
          const sweeper = new RetentionSweeper({
            store,
            leases: await SqlLeaseManager.open(store),
            telemetry,
            intervalMs: config.retention.sweepIntervalMs,
            rules: [
              { name: 'outbox', keepMs: config.retention.relayedEventsMs, purge: purgeRelayed },
              { name: 'webhook_deliveries', keepMs: config.retention.webhookDeliveriesMs, purge: purgeDeliveries },
            ],
          });
          lifecycle.addStartHook(() => sweeper.start(), 'retention sweeper');
          lifecycle.addShutdownHook(() => sweeper.stop(), 'retention sweeper');
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

/** What a change made in another process does to this process's verified-token cache. */
function tokenCacheEvent(authorizer: SqlAuthorizer, event: DomainEvent): void {
  if (event.type === 'authz.token.created') return;
  const tokenId = (event.payload as { tokenId?: unknown } | null)?.tokenId;
  if (event.type === 'authz.token.revoked' && typeof tokenId === 'string') authorizer.forgetToken(tokenId);
  // Grants and roles decide what every token of their holders may do.
  else authorizer.invalidate();
}
