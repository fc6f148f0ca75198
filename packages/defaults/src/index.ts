/**
 * @mlplane/defaults: the embedded defaults (SQLite metadata store, local artifact store, in-process event bus,
 * env + encrypted-file secrets, telemetry) and the batteries-included `createPlatform`, which installs them with the
 * SQL management layer of @mlplane/sql so that one process runs a whole platform with no servers.
 */

export { LocalArtifactStore } from './artifact-store/local-artifact-store.js';
export type { JobTracking, LocalCapacityOptions, LocalComputeBackendOptions } from './compute/local-compute-backend.js';
export { DEFAULT_INHERITED_ENV, LocalComputeBackend } from './compute/local-compute-backend.js';
export type { CreatePlatformWithDefaultsOptions } from './create-platform.js';
export { createPlatform } from './create-platform.js';
export { InProcessEventBus } from './event-bus/in-process-event-bus.js';
export type { SqliteMetadataStoreOptions } from './metadata-store/sqlite-metadata-store.js';
export { SqliteMetadataStore } from './metadata-store/sqlite-metadata-store.js';
export type { EmbeddedConfig, LocalComputeConfig } from './plugin.js';
export { embeddedConfigSchema, embeddedPlugin, localComputeConfigSchema, localComputeTrackingRef } from './plugin.js';
export { EnvFileSecretStore } from './secret-store/file-secret-store.js';
export { createEmbeddedTelemetry } from './telemetry/embedded-telemetry.js';
