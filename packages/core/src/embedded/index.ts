export type { PostgresMetadataStoreOptions } from '../infra/postgres/postgres-metadata-store.js';
export { PostgresMetadataStore } from '../infra/postgres/postgres-metadata-store.js';
export type { OutboxEntry } from '../infra/sql/outbox.js';
export {
  domainEvent,
  markRelayed,
  OUTBOX_MIGRATIONS,
  OUTBOX_OWNER,
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
export { managementPlugin } from './management-plugin.js';
export type { SqliteMetadataStoreOptions } from './metadata-store/sqlite-metadata-store.js';
export { SqliteMetadataStore } from './metadata-store/sqlite-metadata-store.js';
export type { EmbeddedConfig } from './plugin.js';
export { embeddedConfigSchema, embeddedPlugin } from './plugin.js';
export type { AliasMove, SqlModelRegistryOptions } from './registry/sql-model-registry.js';
export { SqlModelRegistry } from './registry/sql-model-registry.js';
export { EnvFileSecretStore } from './secret-store/file-secret-store.js';
export { createEmbeddedTelemetry } from './telemetry/embedded-telemetry.js';
export type { SqlExperimentTrackerOptions } from './tracker/sql-experiment-tracker.js';
export { SqlExperimentTracker } from './tracker/sql-experiment-tracker.js';
