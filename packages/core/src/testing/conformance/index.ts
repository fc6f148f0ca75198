export { type ArtifactStoreFixture, artifactStoreConformance } from './artifact-store.js';
export { type AuditLogFixture, type AuditTamper, auditLogConformance } from './audit-log.js';
export { type AuthorizerFixture, authorizerConformance } from './authorizer.js';
export { type EventBusConformanceOptions, type EventBusFixture, eventBusConformance } from './event-bus.js';
export { type ExperimentTrackerFixture, experimentTrackerConformance } from './experiment-tracker.js';
export { type MetadataStoreFixture, metadataStoreConformance } from './metadata-store.js';
export { type AliasMoveRecord, type ModelRegistryFixture, modelRegistryConformance } from './model-registry.js';
export { type SecretStoreFixture, secretStoreConformance } from './secret-store.js';
export { type TelemetryFixture, telemetryConformance } from './telemetry.js';
