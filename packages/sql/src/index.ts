/**
 * @mlplane/sql: the management layer on any SQL MetadataStore (SQLite, PostgreSQL): experiment tracker, model
 * registry, audit log, authorizer, webhooks, the transactional outbox and its relay, leases, retention and the durable
 * job scheduler. It speaks only kysely, so it loads no driver: the store's plugin brings one.
 */

export type { AuditCheckpoint } from './audit/checkpoints.js';
export { DEFAULT_CHECKPOINT_PREFIX } from './audit/checkpoints.js';
export { auditEventHandler, auditFromEvent, DEFAULT_AUDIT_PROJECT, SYSTEM_ACTOR } from './audit/from-event.js';
export type { SqlAuditLogOptions } from './audit/sql-audit-log.js';
export {
  AUDIT_CHAIN_KEYED,
  AUDIT_LOSS_ACCEPTED,
  AUDIT_OUTCOMES,
  DEFAULT_AUDIT_KEY_SECRET,
  DEFAULT_CHECKPOINT_INTERVAL_MS,
  SqlAuditLog,
} from './audit/sql-audit-log.js';
export type { FailedCheck, FailedCheckAuditOptions, FailedCheckReason } from './authz/failed-checks.js';
export { FAILED_CHECK_MAX_GROUPS, FAILED_CHECK_WINDOW_MS, FailedCheckAudit } from './authz/failed-checks.js';
export type { PortOperation } from './authz/port-permissions.js';
export { PORT_PERMISSIONS, permissionFor } from './authz/port-permissions.js';
export type { SqlAuthorizerOptions } from './authz/sql-authorizer.js';
export {
  PRINCIPAL_ID_LENGTH,
  PROJECT_PATTERN,
  ROLE_DESCRIPTION_LENGTH,
  SqlAuthorizer,
} from './authz/sql-authorizer.js';
export * from './dialect/dialect.js';
export * from './dialect/errors.js';
export * from './dialect/migrator.js';
export * from './dialect/prepared.js';
export { LEASES_MIGRATIONS, LEASES_OWNER, SqlLeaseManager } from './leases/sql-lease.js';
export { managementPlugin, webhookSubscriptionsRef } from './management-plugin.js';
export type { OutboxEntry } from './outbox/outbox.js';
export {
  countUnrelayed,
  domainEvent,
  markRelayed,
  OUTBOX_MIGRATIONS,
  OUTBOX_OWNER,
  purgeRelayed,
  readOutbox,
  recordEvent,
} from './outbox/outbox.js';
export type { AliasMove, SqlModelRegistryOptions } from './registry/sql-model-registry.js';
export { SqlModelRegistry } from './registry/sql-model-registry.js';
export type { OutboxRelayOptions, OutboxRelayStats } from './relay/outbox-relay.js';
export { OutboxRelay } from './relay/outbox-relay.js';
export type { RetentionRule, RetentionSweeperOptions } from './retention/retention-sweeper.js';
export { RetentionSweeper } from './retention/retention-sweeper.js';
export type { Candidate, ProjectUsage } from './scheduler/admission.js';
export { dominantShare, pickAdmissions } from './scheduler/admission.js';
export type { JobDemand, ProjectQuota, QueueConfig, ResolvedQuota } from './scheduler/config.js';
export { DEFAULT_PRIORITY_CLASSES, jobDemand } from './scheduler/config.js';
export type { SchedulerQueues } from './scheduler/scheduler-plugin.js';
export { schedulerPlugin, schedulerQueuesRef } from './scheduler/scheduler-plugin.js';
export { SCHEDULER_MIGRATIONS, SCHEDULER_OWNER } from './scheduler/schema.js';
export type {
  QueueState,
  ResourceUse,
  RoundStats,
  Schedule,
  ScheduleInput,
  SqlSchedulerOptions,
} from './scheduler/sql-scheduler.js';
export { FencedError, SCHEDULE_ANNOTATIONS, SqlScheduler } from './scheduler/sql-scheduler.js';
export type { SqlExperimentTrackerOptions } from './tracker/sql-experiment-tracker.js';
export { SqlExperimentTracker } from './tracker/sql-experiment-tracker.js';
export { WEBHOOKS_MIGRATIONS, WEBHOOKS_OWNER } from './webhooks/schema.js';
export type { WebhookDelivery, WebhookDispatcherOptions } from './webhooks/webhook-dispatcher.js';
export { purgeDeliveries, WEBHOOK_GROUP_PREFIX, WebhookDispatcher } from './webhooks/webhook-dispatcher.js';
export type {
  CreatedWebhook,
  CreateWebhookInput,
  UpdateWebhookInput,
  WebhookSubscription,
} from './webhooks/webhook-subscriptions.js';
export { WebhookSubscriptions } from './webhooks/webhook-subscriptions.js';
