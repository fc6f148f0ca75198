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
export { InProcessEventBus } from './event-bus/in-process-event-bus.js';
export type { SqliteMetadataStoreOptions } from './metadata-store/sqlite-metadata-store.js';
export { SqliteMetadataStore } from './metadata-store/sqlite-metadata-store.js';
export type { EmbeddedConfig } from './plugin.js';
export { embeddedConfigSchema, embeddedPlugin } from './plugin.js';
export { EnvFileSecretStore } from './secret-store/file-secret-store.js';
export { createEmbeddedTelemetry } from './telemetry/embedded-telemetry.js';
export type { SqlExperimentTrackerOptions } from './tracker/sql-experiment-tracker.js';
export { SqlExperimentTracker } from './tracker/sql-experiment-tracker.js';
