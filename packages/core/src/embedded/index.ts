export type { CacheInvalidationOptions, Invalidation, InvalidationRule } from '../infra/cache/cache-invalidation.js';
export { subscribeCacheInvalidation } from '../infra/cache/cache-invalidation.js';
export type { CachedModelRegistryOptions } from '../infra/cache/cached-model-registry.js';
export {
  CachedModelRegistry,
  modelRegistryInvalidation,
  registryCacheKeys,
} from '../infra/cache/cached-model-registry.js';
export type { CacheCodec, LoadOptions, NearCacheOptions, RedisCacheOptions } from '../infra/cache/redis-cache.js';
export { jsonCodec, RedisCache } from '../infra/cache/redis-cache.js';
export type { HeldLease, LeaseContext, LeaseManager, WithLeaseOptions } from '../infra/locks/lease.js';
export { withLease } from '../infra/locks/lease.js';
export type { RedisLeaseManagerOptions } from '../infra/locks/redis-lease.js';
export { RedisLeaseManager } from '../infra/locks/redis-lease.js';
export { LEASES_MIGRATIONS, LEASES_OWNER, SqlLeaseManager } from '../infra/locks/sql-lease.js';
export type { PostgresMetadataStoreOptions, SessionSetting } from '../infra/postgres/postgres-metadata-store.js';
export { DEFAULT_SESSION_SETTINGS, PostgresMetadataStore } from '../infra/postgres/postgres-metadata-store.js';
export type { OutboxEntry } from '../infra/sql/outbox.js';
export {
  domainEvent,
  markRelayed,
  OUTBOX_MIGRATIONS,
  OUTBOX_OWNER,
  purgeRelayed,
  readOutbox,
  recordEvent,
} from '../infra/sql/outbox.js';
export { LocalArtifactStore } from './artifact-store/local-artifact-store.js';
export { auditEventHandler, auditFromEvent, DEFAULT_AUDIT_PROJECT, SYSTEM_ACTOR } from './audit/from-event.js';
export type { SqlAuditLogOptions } from './audit/sql-audit-log.js';
export { AUDIT_OUTCOMES, SqlAuditLog } from './audit/sql-audit-log.js';
export type { PortOperation } from './authz/port-permissions.js';
export { PORT_PERMISSIONS, permissionFor } from './authz/port-permissions.js';
export type { SqlAuthorizerOptions } from './authz/sql-authorizer.js';
export { PROJECT_PATTERN, SqlAuthorizer } from './authz/sql-authorizer.js';
export { InProcessEventBus } from './event-bus/in-process-event-bus.js';
export { managementPlugin, webhookSubscriptionsRef } from './management-plugin.js';
export type { SqliteMetadataStoreOptions } from './metadata-store/sqlite-metadata-store.js';
export { SqliteMetadataStore } from './metadata-store/sqlite-metadata-store.js';
export type { EmbeddedConfig } from './plugin.js';
export { embeddedConfigSchema, embeddedPlugin } from './plugin.js';
export type { AliasMove, SqlModelRegistryOptions } from './registry/sql-model-registry.js';
export { SqlModelRegistry } from './registry/sql-model-registry.js';
export {
  MODEL_NAME_LENGTH,
  runIdOfSource,
  validateModelName,
  validateOptionalString,
  validateRunId,
  validateSignature,
  validateTag,
  validateTags,
  validateVersionNumber,
} from './registry/validation.js';
export type { OutboxRelayOptions, OutboxRelayStats } from './relay/outbox-relay.js';
export { OutboxRelay } from './relay/outbox-relay.js';
export type { RetentionRule, RetentionSweeperOptions } from './retention/retention-sweeper.js';
export { RetentionSweeper } from './retention/retention-sweeper.js';
export { EnvFileSecretStore } from './secret-store/file-secret-store.js';
export { createEmbeddedTelemetry } from './telemetry/embedded-telemetry.js';
// Filter language and registry input rules, shared with adapters that validate before calling their backend.
export type { Comparator, Comparison, Entity as FilterEntity, FilterAst, OrderTerm } from './tracker/filter/parser.js';
export { parseFilter, parseOrderTerm } from './tracker/filter/parser.js';
export { syntaxError } from './tracker/filter/tokenizer.js';
export type { SqlExperimentTrackerOptions } from './tracker/sql-experiment-tracker.js';
export { SqlExperimentTracker } from './tracker/sql-experiment-tracker.js';
export { WEBHOOKS_MIGRATIONS, WEBHOOKS_OWNER } from './webhooks/schema.js';
export type { VerifyWebhookInput, VerifyWebhookResult } from './webhooks/signature.js';
export { signedContent, signWebhook, verifyWebhook, WEBHOOK_HEADERS } from './webhooks/signature.js';
export type { WebhookDelivery, WebhookDispatcherOptions } from './webhooks/webhook-dispatcher.js';
export { purgeDeliveries, WebhookDispatcher } from './webhooks/webhook-dispatcher.js';
export type {
  CreatedWebhook,
  CreateWebhookInput,
  UpdateWebhookInput,
  WebhookSubscription,
} from './webhooks/webhook-subscriptions.js';
export { WebhookSubscriptions } from './webhooks/webhook-subscriptions.js';
